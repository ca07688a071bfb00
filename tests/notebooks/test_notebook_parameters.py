"""Notebook parameters of the wrong type or out of range stop the notebook before any
training, with an error naming the parameter, the value and the allowed range (issue 14).
Each case is checked against the real profile files, so a knob's type comes from there."""
from pathlib import Path

import pytest

from xcf.companion.profiles import PROFILES, ParameterError, notebook_parameters

PARAMS = Path(__file__).resolve().parents[2] / "notebooks" / "params"


@pytest.fixture(autouse=True)
def _restore_folder_variables(monkeypatch):
    for name in ("XCF_RUNS_DIR", "XCF_DATA", "XCF_DATA_DIR"):
        monkeypatch.setenv(name, "placeholder")
        monkeypatch.delenv(name)


# (notebook, parameter, bad value, text the message must hold: the allowed range or type)
BAD = [
    ("02_measuring_cross_class_features", "epochs", 0, ">= 1"),
    ("02_measuring_cross_class_features", "eps", 5, "<= 1"),
    ("02_measuring_cross_class_features", "eps", 0.0, "> 0"),
    ("02_measuring_cross_class_features", "n_train", "abc", "integer"),
    ("02_measuring_cross_class_features", "lr", -0.1, "> 0"),
    ("02_measuring_cross_class_features", "seed", -1, ">= 0"),
    ("02_measuring_cross_class_features", "width", 2.5, "integer"),
    ("02_measuring_cross_class_features", "epochs", True, "integer"),
    ("01_theory_synthetic_model", "beta", 0.5, "< 0.3333"),
    ("01_theory_synthetic_model", "sigma", float("nan"), "finite"),
    ("01_theory_synthetic_model", "copies", [1, 0], ">= 1"),
    ("03_at_dynamics", "curve_eps", [0.1, 2.0], "<= 1"),
    ("03_at_dynamics", "curve_eps", "0.1", "list"),
    ("03_at_dynamics", "train", {"epochs": 0}, "epochs"),
    ("03_at_dynamics", "train", {"objectiv": "pgd_at"}, "objectiv"),
    ("04_soft_labels", "kd_lambda", 1.5, "<= 1"),
    ("04_soft_labels", "kd_form", "hintn", "eq3, hinton"),
    ("06_norms_datasets_architectures", "vit", {"model": "vit_huge"}, "vit_huge"),
    ("06_norms_datasets_architectures", "l2_eps", 100.0, "<= 64"),
    ("07_fast_at", "fast_alpha", "big", "number"),
    ("10_figures", "profiles", ["smoke", "medium"], "smoke, cpu, gpu, full"),
    ("11_claims", "results", "huge", "smoke, cpu, gpu, full"),
]


@pytest.mark.parametrize("notebook, name, value, allowed", BAD,
                         ids=[f"{n[:2]}-{k}-{v!r}" for n, k, v, _ in BAD])
def test_a_bad_parameter_is_named_with_its_value_and_range(notebook, name, value, allowed):
    with pytest.raises(ParameterError) as err:
        notebook_parameters(notebook, {"profile": "smoke", name: value}, PARAMS)
    text = str(err.value)
    assert f"parameter {name} = {value!r}" in text, text
    assert allowed in text, text
    assert "leave it None" in text  # the fix


def test_the_message_names_the_range_of_an_out_of_range_radius():
    with pytest.raises(ParameterError, match=r"eps = 5: 5 is out of range: allowed > 0 and <= 1"):
        notebook_parameters("02_measuring_cross_class_features", {"profile": "smoke", "eps": 5},
                            PARAMS)


@pytest.mark.parametrize("profile", PROFILES)
def test_every_profile_file_passes_its_own_checks(profile):
    import yaml

    table = yaml.safe_load((PARAMS / f"{profile}.yaml").read_text())
    for notebook in (k for k in table if not k.startswith("_")):
        P = notebook_parameters(notebook, {"profile": profile}, PARAMS)
        assert P.profile == profile


def test_good_values_at_the_edges_of_the_ranges_pass():
    P = notebook_parameters("02_measuring_cross_class_features",
                            {"profile": "smoke", "epochs": 1, "eps": 1.0, "seed": 0,
                             "lr": "1/10"}, PARAMS)
    assert (P.epochs, P.eps, P.seed, P.lr) == (1, 1.0, 0, 0.1)
