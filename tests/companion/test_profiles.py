"""Notebook parameters: profile files, overrides, and errors for misspelled knobs."""
import json
import types
from pathlib import Path

import pytest
import yaml

from xcf.companion.profiles import (ParameterError, notebook_parameters, params_dir, profile_knobs,
                          record_metrics, resolve_profile)


@pytest.fixture(autouse=True)
def _restore_folder_variables(monkeypatch):
    """notebook_parameters may set XCF_RUNS_DIR / XCF_DATA / XCF_DATA_DIR: undo it after each
    test (setenv first, so that delenv records the original state)."""
    for name in ("XCF_RUNS_DIR", "XCF_DATA", "XCF_DATA_DIR"):
        monkeypatch.setenv(name, "placeholder")
        monkeypatch.delenv(name)


@pytest.fixture
def params(tmp_path):
    for prof, n in (("smoke", 10), ("cpu", 100), ("gpu", 500), ("full", 1000)):
        (tmp_path / f"{prof}.yaml").write_text(yaml.safe_dump({"nb": {"n": n, "eps": 0.1}}))
    return tmp_path


def test_knobs_come_from_the_profile_file(params):
    P = notebook_parameters("nb", {"profile": "cpu", "n": None, "eps": None}, params)
    assert P == {"profile": "cpu", "n": 100, "eps": 0.1} and P.n == 100


def test_a_given_knob_overrides_the_profile(params):
    P = notebook_parameters("nb", {"profile": "full", "n": 3, "eps": None}, params)
    assert P.n == 3 and P.eps == 0.1


def test_kernel_names_modules_and_functions_are_not_parameters(params):
    ns = {"profile": "smoke", "n": None, "In": [], "Out": {}, "_": 1, "sys": types,
          "helper": lambda: 0}
    assert notebook_parameters("nb", ns, params).n == 10


def test_misspelled_knob_is_named(params):
    with pytest.raises(ParameterError, match=r"unknown parameter\(s\) \['epz'\].*allowed: \['profile', 'eps', 'n'\]"):
        notebook_parameters("nb", {"profile": "smoke", "epz": 0.2}, params)


def test_unknown_profile_and_missing_section(params):
    with pytest.raises(ParameterError, match="unknown profile 'huge'"):
        notebook_parameters("nb", {"profile": "huge"}, params)
    with pytest.raises(ParameterError, match="no section 'other'"):
        notebook_parameters("other", {"profile": "smoke"}, params)


def test_auto_profile_without_gpu_is_smoke(params, monkeypatch):
    import torch
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert notebook_parameters("nb", {"profile": "auto"}, params).profile == "smoke"


def test_auto_on_a_gpu_is_the_gpu_profile_never_full_and_says_so(params, monkeypatch):
    import torch
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    said = []
    assert resolve_profile("auto", say=said.append) == "gpu"
    assert "'gpu'" in said[0] and '"full"' in said[0]
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    said.clear()
    assert resolve_profile("auto", say=said.append) == "smoke" and "'smoke'" in said[0]


def test_a_fraction_is_read_as_its_float(params):
    assert notebook_parameters("nb", {"profile": "cpu", "eps": "8/255"}, params).eps == 8 / 255


def test_a_notebook_in_a_checkout_shares_the_clis_runs_and_data_folders(tmp_path, monkeypatch):
    """Notebooks run in notebooks/; `xcf train` from the root writes ./runs: both must mean
    <root>/runs (and <root>/data)."""
    from xcf.runs.folder import default_runs_dir

    params = tmp_path / "notebooks" / "params"
    params.mkdir(parents=True)
    (params / "smoke.yaml").write_text(yaml.safe_dump({"nb": {"n": 1}}))
    monkeypatch.chdir(tmp_path / "notebooks")
    notebook_parameters("nb", {"profile": "smoke"})
    assert default_runs_dir().resolve() == (tmp_path / "runs").resolve()
    import os
    assert Path(os.environ["XCF_DATA"]).resolve() == (tmp_path / "data").resolve()


def test_folders_given_by_the_user_are_kept(tmp_path, monkeypatch):
    params = tmp_path / "notebooks" / "params"
    params.mkdir(parents=True)
    (params / "smoke.yaml").write_text(yaml.safe_dump({"nb": {"n": 1}}))
    monkeypatch.setenv("XCF_RUNS_DIR", str(tmp_path / "drive" / "runs"))
    monkeypatch.setenv("XCF_DATA_DIR", str(tmp_path / "drive" / "data"))
    notebook_parameters("nb", {"profile": "smoke"}, params)
    import os
    assert os.environ["XCF_RUNS_DIR"] == str(tmp_path / "drive" / "runs")
    assert os.environ["XCF_DATA"] == str(tmp_path / "drive" / "data")  # what loaders read


def test_record_metrics_writes_json_atomically(tmp_path, monkeypatch):
    monkeypatch.setenv("XCF_RUNS_DIR", str(tmp_path))
    path = record_metrics("nb", {"cas": 1.5})
    assert path.read_text().strip().startswith("{") and not list(path.parent.glob("*.tmp"))


def test_record_metrics_goes_to_the_trainers_runs_folder(tmp_path, monkeypatch):
    """No XCF_RUNS_DIR: ./runs of the working directory, the folder train() uses too."""
    monkeypatch.delenv("XCF_RUNS_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    path = record_metrics("nb", {"ra": 0.25})
    assert path.resolve() == tmp_path / "runs" / "metrics" / "nb.json"
    assert json.loads(path.read_text()) == {"ra": 0.25}


def test_params_are_found_from_the_working_directory_upwards(tmp_path, monkeypatch):
    monkeypatch.delenv("XCF_PARAMS_DIR", raising=False)
    repo = tmp_path / "repo"
    (repo / "notebooks" / "deep").mkdir(parents=True)
    (repo / "notebooks" / "params").mkdir()
    (repo / "notebooks" / "params" / "smoke.yaml").write_text(yaml.safe_dump({"nb": {"n": 7}}))
    monkeypatch.chdir(repo / "notebooks" / "deep")
    assert params_dir() == repo / "notebooks" / "params"
    assert notebook_parameters("nb", {"profile": "smoke"}).n == 7
    monkeypatch.chdir(repo)
    assert params_dir() == repo / "notebooks" / "params"


def test_xcf_params_dir_wins(params, tmp_path, monkeypatch):
    monkeypatch.setenv("XCF_PARAMS_DIR", str(params))
    monkeypatch.chdir(tmp_path)
    assert notebook_parameters("nb", {"profile": "cpu"}).n == 100


def test_no_params_anywhere_is_a_clear_error_not_a_path_into_the_install(tmp_path, monkeypatch):
    monkeypatch.delenv("XCF_PARAMS_DIR", raising=False)
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.chdir(empty)
    if any((d / "params" / "smoke.yaml").is_file() or (d / "notebooks" / "params" / "smoke.yaml").is_file()
           for d in empty.parents):
        pytest.skip("a folder above the temp dir holds profile files")
    with pytest.raises(ParameterError, match="XCF_PARAMS_DIR"):
        params_dir()


def test_every_profiles_early_epoch_is_table_1s_epoch_scaled_to_its_runs():
    """One definition of the under-fitted checkpoint on every page (issue 26): the ε
    page's Table 1 column is the epoch the rule book reads, Table 1's 10 of 200 scaled."""
    from xcf.companion.evidence import paper_epoch

    for profile in ("smoke", "cpu", "gpu", "full"):
        K = profile_knobs("05_perturbation_bound", profile)
        epochs = K["train"].get("epochs", 200)
        assert K["early_epoch"] == round(10 / 200 * epochs) or (
            K["early_epoch"] == 1 and round(10 / 200 * epochs) == 0), profile
        assert K["early_epoch"] == paper_epoch(10, epochs), profile
