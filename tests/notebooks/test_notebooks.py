"""Notebook tier: the metrics each notebook recorded at the smoke profile, checked against
tolerances.

CI builds the book first (which executes every notebook at smoke) and points
``XCF_TEST_RUNS_DIR`` at its ``_build/runs``: each test then reads the metrics that build
recorded there, so CI executes each notebook once.  Without them (``make test`` alone, or
a notebook edited after the build) the test executes the notebook itself with papermill
(pyhf style: kernel ``python3``, explicit cwd, ``MPLBACKEND=agg``).  What the book never
runs, a misspelled parameter or an unknown profile, is always executed here."""
import json
import math
import os
import sys
from pathlib import Path

import pytest

papermill = pytest.importorskip("papermill")
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools"))
import build_book  # noqa: E402  (the book build's fingerprint of a notebook's sources)

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ROOT / "notebooks"
CHANCE_10 = 0.1


@pytest.fixture(scope="session")
def runs_root(tmp_path_factory) -> Path:
    """Run folders shared by the section notebooks of one session, so that a run one
    notebook trained is reused by the next, as in the book.  ``XCF_TEST_RUNS_DIR`` points
    it at an existing folder (CI passes the book's ``_build/runs``, built just before)."""
    given = os.environ.get("XCF_TEST_RUNS_DIR")
    return Path(given) if given else tmp_path_factory.mktemp("runs")


def run_notebook(name: str, tmp_path: Path, runs: Path | None = None,
                 env: dict | None = None, **parameters) -> dict:
    """Execute ``notebooks/<name>.ipynb`` at smoke (``env``: more environment for its
    kernel); return its recorded metrics (or {})."""
    runs = runs or tmp_path
    env = {"MPLBACKEND": "agg", "TQDM_DISABLE": "1", "XCF_RUNS_DIR": str(runs), **(env or {})}
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
    path = runs / "metrics" / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else {}


def book_runs() -> Path:
    """Where the book build recorded its metrics: ``$XCF_TEST_RUNS_DIR`` (CI), else the
    checkout's ``_build/runs`` (``make test`` after ``make book``)."""
    given = os.environ.get("XCF_TEST_RUNS_DIR")
    return Path(given) if given else ROOT / "_build" / "runs"


def book_metrics(name: str) -> dict | None:
    """The metrics the book build recorded for ``name`` at smoke, or None.

    Only a record the build stamped with the fingerprint of the notebook and of every
    source it runs, unchanged since (``tools/build_book.py``'s ``source_fingerprint``),
    and made at smoke: an old build, or one from before an edit, is executed again."""
    path = book_runs() / "metrics" / f"{name}.json"
    stamp = build_book.fingerprint_path(book_runs(), NOTEBOOKS / f"{name}.ipynb")
    if not path.is_file() or not stamp.is_file():
        return None
    current = f"smoke {build_book.source_fingerprint(NOTEBOOKS / f'{name}.ipynb', ROOT)}"
    if stamp.read_text().strip() != current:
        return None
    m = json.loads(path.read_text())
    return m if m.get("profile") == "smoke" else None


def notebook_metrics(name: str, tmp_path: Path, runs: Path | None = None) -> dict:
    """What the book recorded for ``name`` (see :func:`book_metrics`), else what executing
    it here records."""
    recorded = book_metrics(name)
    return recorded if recorded is not None else run_notebook(name, tmp_path, runs)


def test_book_metrics_are_used_only_when_fresh_and_at_smoke(tmp_path, monkeypatch):
    """The reuse rule itself: a missing, unstamped, stale or non-smoke record means
    execute; a record stamped with the current sources is reused."""
    name = "02_measuring_cross_class_features"
    notebook = NOTEBOOKS / f"{name}.ipynb"
    monkeypatch.setenv("XCF_TEST_RUNS_DIR", str(tmp_path))
    assert book_metrics(name) is None
    path = tmp_path / "metrics" / f"{name}.json"
    path.parent.mkdir()
    path.write_text(json.dumps({"profile": "smoke", "x": 1}))
    assert book_metrics(name) is None                       # no stamp: not from a build
    stamp = build_book.fingerprint_path(tmp_path, notebook)
    stamp.write_text("smoke " + "0" * 64 + "\n")            # sources changed since
    assert book_metrics(name) is None
    stamp.write_text(f"smoke {build_book.source_fingerprint(notebook, ROOT)}\n")
    assert book_metrics(name) == {"profile": "smoke", "x": 1}
    path.write_text(json.dumps({"profile": "cpu", "x": 1}))
    assert book_metrics(name) is None
    monkeypatch.delenv("XCF_TEST_RUNS_DIR")                 # make test after make book
    assert book_runs() == ROOT / "_build" / "runs"


def test_the_fingerprint_follows_the_notebook_the_library_and_the_profiles(tmp_path):
    """A change to any source a notebook runs makes its recorded metrics stale; a file
    of another kind (a compiled cache) does not."""
    for rel in ("nb.ipynb", "xcf/attacks.py", "notebooks/params/smoke.yaml",
                "benchmarks/common.py"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("a")
    nb = tmp_path / "nb.ipynb"
    first = build_book.source_fingerprint(nb, tmp_path)
    (tmp_path / "xcf" / "cache.pyc").write_text("b")
    assert build_book.source_fingerprint(nb, tmp_path) == first
    for rel in ("nb.ipynb", "xcf/attacks.py", "notebooks/params/smoke.yaml",
                "benchmarks/common.py"):
        before = build_book.source_fingerprint(nb, tmp_path)
        (tmp_path / rel).write_text((tmp_path / rel).read_text() + "!")
        assert build_book.source_fingerprint(nb, tmp_path) != before, rel


@pytest.mark.notebook
def test_02_measuring_ranks_planted_pairs_first(tmp_path):
    m = notebook_metrics("02_measuring_cross_class_features", tmp_path)
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
    with pytest.raises(papermill.PapermillExecutionError, match="unknown profile 'huge'"):
        run_notebook("02_measuring_cross_class_features", tmp_path, profile="huge")


# --- section notebooks (one session-wide runs folder, in book order) -----------------------

def _ra_above_chance(gap: dict, margin: float = 0.1) -> None:
    assert gap["ra_best"] > CHANCE_10 + margin, gap
    assert gap["ra_best"] >= gap["ra_last"] - 1e-9, "the best checkpoint is chosen by test RA"
    assert 1 <= gap["best_epoch"] <= gap["last_epoch"]


@pytest.mark.notebook
def test_03_at_dynamics(tmp_path, runs_root):
    m = notebook_metrics("03_at_dynamics", tmp_path, runs_root)
    _ra_above_chance(m)
    assert set(m["overfit_by_eps"]) == {"0.05", "0.1", "0.15"}
    assert all(v >= 0 for v in m["overfit_by_eps"].values())  # peak minus last is never negative


@pytest.mark.notebook
def test_04_soft_labels(tmp_path, runs_root):
    m = notebook_metrics("04_soft_labels", tmp_path, runs_root)
    _ra_above_chance(m["kd"])
    _ra_above_chance(m["pgd_at"])


@pytest.mark.notebook
def test_05_perturbation_bound(tmp_path, runs_root):
    m = notebook_metrics("05_perturbation_bound", tmp_path, runs_root)
    rows = m["table1"]
    assert [r["eps"] for r in rows] == ["0.1", "0.15", "0.2"]
    # Independent truth: a larger attack radius leaves a trained model less robust
    # accuracy (each model is attacked at its own, larger ε).  Early epochs sit near chance,
    # where the order is noise, so the check uses the best checkpoints.
    ras = [r["ra_best"] for r in rows]
    assert all(a > b for a, b in zip(ras, ras[1:])), ras
    assert all(0 <= r["cas_best"] <= 90 for r in rows)  # CAS of a 10-class C lies in [0, 90]


@pytest.mark.notebook
def test_06_norms_datasets_architectures(tmp_path, runs_root):
    m = notebook_metrics("06_norms_datasets_architectures", tmp_path, runs_root)
    assert set(m) >= {"planted-10", "l2", "deit_tiny"}
    _ra_above_chance(m["l2"])
    _ra_above_chance(m["planted-10"])
    assert m["deit_tiny"]["ra_best"] >= 0  # a few epochs of DeiT: it must run, not excel


@pytest.mark.notebook
def test_07_fast_at(tmp_path, runs_root):
    m = notebook_metrics("07_fast_at", tmp_path, runs_root)
    # catastrophic overfitting, recomputed from the recorded curve: the first epoch after
    # the first best whose RA is at most a quarter of the best (xcf.companion.claims' premise of C4)
    ra = m["ra_curve"]
    best = ra.index(max(ra))
    after = [e + 1 for e in range(best + 1, len(ra)) if ra[e] <= 0.25 * ra[best]]
    assert m["collapse_epoch"] == (after[0] if after else None)
    assert m["ra_best"] > CHANCE_10


@pytest.mark.notebook
def test_08_instance_wise_and_standard(tmp_path, runs_root):
    m = notebook_metrics("08_instance_wise_and_standard", tmp_path, runs_root)
    assert len(m["i_cas"]) == 4 and all(0 <= v <= 90 for v in m["i_cas"].values())
    assert 0 <= m["standard_cas"] <= 90 and 0 <= m["at_cas"] <= 90


@pytest.mark.notebook
def test_09_saliency(tmp_path, runs_root):
    m = notebook_metrics("09_saliency", tmp_path, runs_root)
    assert m["n"] >= 1, "some test sample must be right for best and wrong for last"
    assert 0 < m["spread_best"] <= 1 and 0 < m["spread_last"] <= 1


@pytest.mark.notebook
def test_10_figures_finds_this_profile(tmp_path, runs_root):
    m = notebook_metrics("10_figures", tmp_path, runs_root)
    assert "smoke" in m["profiles_found"]


@pytest.mark.notebook
def test_11_claims_regenerates_its_verdicts_from_the_committed_results(tmp_path, runs_root):
    """The Claims page trains nothing; what it records must be what xcf.companion.claim_verdicts decides
    from the committed cpu artifacts, read here independently of the notebook."""
    from xcf.companion import claim_verdicts, claim_runs
    from xcf.companion.profiles import profile_knobs

    m = notebook_metrics("11_claims", tmp_path, runs_root)
    S = profile_knobs("11_claims", "cpu", NOTEBOOKS / "params")
    found = claim_runs.find_studies(NOTEBOOKS / "results" / "cpu", S)
    assert m["results"] == "cpu" and m["n_found"] == len(found)
    assert m["verdicts"] == {r["claim"]: r["verdict"] for r in claim_verdicts.decide(found, S)}


@pytest.mark.notebook
def test_12_performance_runs_both_benchmarks_live(tmp_path, runs_root):
    """Both benchmarks ran and printed a ratio for each contender: a number, or for bf16
    on a CPU without native bf16 "not native on this CPU".  Their size is not checked:
    speed belongs to benchmarks/, and a busy or bf16-emulating machine is no failure."""
    m = notebook_metrics("12_performance", tmp_path, runs_root)
    assert_live_ratios_recorded(m)


def assert_live_ratios_recorded(m: dict) -> None:
    from xcf.train.precision import NOT_NATIVE

    assert set(m["live_ratios"]) == {"train_step fp32", "train_step bf16", "attribution fp32", "attribution bf16"}
    native = m["cpu"]["native_bf16"]
    for name, ratio in m["live_ratios"].items():
        if name.endswith("bf16") and not native:
            assert ratio == NOT_NATIVE, (name, ratio)
        else:
            assert isinstance(ratio, float) and math.isfinite(ratio), (name, ratio)


@pytest.mark.notebook
def test_12_performance_on_a_cpu_without_native_bf16(tmp_path):
    """What a user on an AVX2-only CPU sees: the capability check forced off
    (``XCF_NATIVE_BF16=0``), the page runs, records fp32 ratios and reads bf16 as not
    native instead of timing an emulation.  The book's own record is that case already
    where the build machine lacks native bf16."""
    m = book_metrics("12_performance")
    if m is None or m["cpu"]["native_bf16"]:
        m = run_notebook("12_performance", tmp_path, env={"XCF_NATIVE_BF16": "0"})
    assert m["cpu"]["native_bf16"] is False
    assert_live_ratios_recorded(m)


@pytest.mark.notebook
def test_13_measure_your_model(tmp_path, runs_root):
    """The generic path (xcf measure-model on a wrapped checkpoint) gives what xcf's own
    measure gives on the same model and data."""
    m = notebook_metrics("13_measure_your_model", tmp_path, runs_root)
    assert m["cli_vs_own_max_abs_diff_c"] <= 1e-6 and m["cli_vs_own_cas_diff"] <= 1e-5
    assert m["cli_vs_own_accuracy_diff"] == 0
    assert m["cli"]["robust_accuracy"] > CHANCE_10 + 0.1


@pytest.mark.notebook
def test_14_testing_the_hypothesis_decides_by_the_committed_rules(tmp_path, runs_root):
    """The page trains nothing; its verdicts are what xcf.companion.hypotheses decides on the
    committed runs of the cpu profile, read here independently of the notebook."""
    from xcf.companion import hypotheses, claim_runs
    from xcf.companion.profiles import profile_knobs

    m = notebook_metrics("14_testing_the_hypothesis", tmp_path, runs_root)
    S = profile_knobs("11_claims", "cpu", NOTEBOOKS / "params")
    h1_in, h2_in = claim_runs.hypothesis_inputs(
        claim_runs.find_studies(NOTEBOOKS / "results" / "cpu", S), S)
    assert m["results"] == "cpu" and m["seeds"] == {"h1": len(h1_in), "h2": len(h2_in)}
    named = {h: len(claim_runs.seeds_of(S, h)) if S.get(h) else 0 for h in ("h1", "h2")}
    expected = {}
    for outcomes, n, h in ((hypotheses.h1(h1_in), len(h1_in), "h1"),
                           (hypotheses.h2(h2_in), len(h2_in), "h2")):
        if named[h] == 0 or n < named[h]:
            expected.update({o.name.split(":")[0]: "not run" for o in outcomes})
        else:
            expected.update({o.name: o.verdict for o in outcomes})
    assert m["verdicts"] == expected
