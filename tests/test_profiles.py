"""Notebook parameters: profile files, overrides, and errors for misspelled knobs."""
import json
import types

import pytest
import yaml

from xcf.profiles import ParameterError, notebook_parameters, params_dir, record_metrics


@pytest.fixture
def params(tmp_path):
    for prof, n in (("smoke", 10), ("cpu", 100), ("full", 1000)):
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
    with pytest.raises(ParameterError, match="unknown profile 'gpu'"):
        notebook_parameters("nb", {"profile": "gpu"}, params)
    with pytest.raises(ParameterError, match="no section 'other'"):
        notebook_parameters("other", {"profile": "smoke"}, params)


def test_auto_profile_without_gpu_is_smoke(params, monkeypatch):
    import torch
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert notebook_parameters("nb", {"profile": "auto"}, params).profile == "smoke"


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
