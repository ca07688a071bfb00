"""Notebook tier: execute each notebook with papermill at the smoke profile (pyhf style:
kernel ``python3``, explicit cwd, ``MPLBACKEND=agg``), then read the metrics it recorded
back and check them against tolerances."""
import json
import os
from pathlib import Path

import pytest

papermill = pytest.importorskip("papermill")

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"


def run_notebook(name: str, tmp_path: Path, **parameters) -> dict:
    """Execute ``notebooks/<name>.ipynb`` at smoke; return its recorded metrics (or {})."""
    env = {"MPLBACKEND": "agg", "TQDM_DISABLE": "1", "XCF_RUNS_DIR": str(tmp_path)}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        papermill.execute_notebook(str(NOTEBOOKS / f"{name}.ipynb"), str(tmp_path / f"{name}.ipynb"),
                                   parameters={"profile": "smoke", **parameters},
                                   kernel_name="python3", cwd=str(NOTEBOOKS), progress_bar=False)
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    path = tmp_path / "metrics" / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else {}


@pytest.mark.notebook
def test_02_measuring_ranks_planted_pairs_first(tmp_path):
    m = run_notebook("02_measuring_cross_class_features", tmp_path)
    assert m["profile"] == "smoke"
    assert m["top_pairs_are_shared"] is True
    assert m["min_c_shared"] - m["max_c_other"] >= 0.3      # same margin as the unit test
    assert m["robust_accuracy"] > 1 / 6 + 0.1                # above chance for 6 classes
    assert m["robust_accuracy"] <= m["clean_accuracy"] + 1e-9


@pytest.mark.notebook
def test_misspelled_parameter_fails_the_notebook(tmp_path):
    with pytest.raises(papermill.PapermillExecutionError, match="unknown parameter.*epochz"):
        run_notebook("02_measuring_cross_class_features", tmp_path, epochz=3)


@pytest.mark.notebook
def test_unknown_profile_fails_the_notebook(tmp_path):
    with pytest.raises(papermill.PapermillExecutionError, match="unknown profile 'gpu'"):
        run_notebook("02_measuring_cross_class_features", tmp_path, profile="gpu")
