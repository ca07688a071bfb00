"""Notebook parameters: profile files, overrides, and errors for misspelled knobs."""
import types

import pytest
import yaml

from xcf.profiles import ParameterError, notebook_parameters, record_metrics


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
