"""One source for the paper's setting: each ``configs/cifar10_*.yaml`` is the run of a
notebook at the full profile (notebooks/params/full.yaml), so ``xcf train`` on it and the
notebook share a run folder (same config key).  The expected configs are built here from
the profile's knobs the way each notebook's cells build them (the figure calls of
notebooks 03-09)."""
from pathlib import Path

import pytest
import yaml

from xcf.runs.config import make_config
from xcf.companion.profiles import profile_knobs
from xcf.runs.identity import folder_name

ROOT = Path(__file__).resolve().parents[2]
PARAMS = ROOT / "notebooks" / "params"
CONFIGS = ROOT / "configs"


def full(notebook: str) -> dict:
    return profile_knobs(notebook, "full", PARAMS)


def _pgd_at():
    return make_config(full("03_at_dynamics")["train"])


def _kd_at():
    k = full("04_soft_labels")
    teacher = make_config(k["teacher"])
    folder = f"runs/{folder_name(teacher)}"  # the folder train() makes
    return make_config(k["teacher"], objective="kd_at", kd={
        "teacher": folder, "lambda": k["kd_lambda"], "temperature": k["kd_temperature"],
        "form": k["kd_form"]})


def _l2():
    k = full("06_norms_datasets_architectures")
    return make_config(k["train"], norm="l2", eps=k["l2_eps"])


def _fast_at():
    k = full("07_fast_at")
    return make_config(k["train"], objective="fast_at", eps=k["fast_eps"],
                       fast_at={"alpha": k["fast_alpha"]}, epochs=k["epochs"])


def _standard():
    return make_config(full("08_instance_wise_and_standard")["train"], objective="standard")


def _trades():  # no notebook trains TRADES: the PGD-AT setting with objective trades
    return make_config(full("03_at_dynamics")["train"], objective="trades")


EXPECTED = {"cifar10_pgd_at": _pgd_at, "cifar10_kd_at": _kd_at, "cifar10_pgd_at_l2": _l2,
            "cifar10_fast_at": _fast_at, "cifar10_standard": _standard,
            "cifar10_trades": _trades}


def test_every_paper_config_is_checked():
    assert sorted(p.stem for p in CONFIGS.glob("cifar10_*.yaml")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_the_config_file_is_the_full_profiles_run(name):
    got, want = make_config(CONFIGS / f"{name}.yaml"), EXPECTED[name]()
    assert got.identity() == want.identity(), (got.identity(), want.identity())
    assert got.key() == want.key()


def test_the_same_pgd_at_run_serves_notebooks_03_to_09():
    keys = {nb: make_config(full(nb)["train"]).key() for nb in (
        "03_at_dynamics", "05_perturbation_bound", "06_norms_datasets_architectures",
        "08_instance_wise_and_standard", "09_saliency")}
    keys["04_soft_labels"] = make_config(full("04_soft_labels")["teacher"]).key()
    assert set(keys.values()) == {make_config(CONFIGS / "cifar10_pgd_at.yaml").key()}, keys


def test_a_radius_typed_as_a_fraction_gives_the_key_of_its_decimal(tmp_path):
    """``8/255`` in YAML is the float 8/255: the same key as 0.0313725490 (9 digits) and as
    the full-precision decimal."""
    keys = set()
    for text in ("8/255", "0.0313725490", "0.03137254901960784"):
        path = tmp_path / "c.yaml"
        path.write_text(f"dataset: cifar10\neps: {text}\nfast_at: {{alpha: 10/255}}\n"
                        "objective: fast_at\n")
        c = make_config(path)
        assert abs(c.eps - 8 / 255) < 1e-10 and abs(c.fast_at.alpha - 10 / 255) < 1e-10
        keys.add(c.key())
    assert len(keys) == 1
    assert yaml.safe_load("eps: 8/255")["eps"] == "8/255"  # YAML itself reads a string
