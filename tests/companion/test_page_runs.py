"""Each page's runs are declared once (xcf.companion.page_runs), and declaring them there
changed no run key: for every profile file and every notebook section, the keys of the
runs a page plans are those built here by hand from the profile's knobs, the way the
pages built them before (tests/companion/test_configs_match_profiles.py does the same for the
paper's config files); the cpu profile's runs are the committed result folders; and the
figures, the plans and the Claims page locate the very runs declared there."""
from pathlib import Path

import pytest
import yaml

from xcf.companion import claim_runs, costs, figures, observed, page_runs
from xcf.companion.profiles import PROFILES, profile_knobs
from xcf.runs.config import make_config
from xcf.runs.identity import run_slug

ROOT = Path(__file__).resolve().parents[2]
PARAMS = ROOT / "notebooks" / "params"
SECTIONS = [(profile, nb) for profile in PROFILES
            for nb in yaml.safe_load((PARAMS / f"{profile}.yaml").read_text())
            if not nb.startswith("_")]


def key(config, **overrides) -> str:
    return make_config(dict(config), **overrides).key()


def by_hand(nb: str, K: dict) -> list[str]:
    """The run keys of ``nb`` at knobs ``K``, written out as the pages wrote them."""
    if nb == "02_measuring_cross_class_features":
        return [key(dict(dataset="planted", n_train=K["n_train"], n_test=K["n_test"],
                         model="small_cnn", model_kwargs={"width": K["width"]},
                         normalize=False, eps=K["eps"], attack_steps=5,
                         eval_steps=K["attack_steps"], epochs=K["epochs"], batch_size=64,
                         lr=K["lr"], seed=K["seed"]))]
    if nb == "04_soft_labels":
        t = make_config(K["teacher"])
        return [t.key(), key(K["teacher"], objective="kd_at", kd={
            "teacher": f"runs/{run_slug(t)}-{t.key()}", "lambda": K["kd_lambda"],
            "temperature": K["kd_temperature"], "form": K["kd_form"]})]
    if "train" not in K:
        return []
    t = K["train"]
    if nb == "07_fast_at":
        return [key(t, objective="fast_at", eps=K["fast_eps"],
                    fast_at={"alpha": K["fast_alpha"]}, epochs=K["epochs"])]
    keys = [key(t)]
    if nb == "03_at_dynamics":
        keys += [key(t, eps=e) for e in K["curve_eps"]]
    elif nb == "05_perturbation_bound":
        keys += [key(t, eps=e) for e in [*K["eps_list"], *K["table_eps"]]]
    elif nb == "06_norms_datasets_architectures":
        keys += [key(t, **over) for over in K["datasets"].values()]
        keys += [key(t, norm="l2", eps=K["l2_eps"]), key(t, **K["vit"])]
    elif nb == "08_instance_wise_and_standard":
        keys += [key(t, norm="l2", eps=K["l2_eps"]), key(t, objective="standard")]
    return keys


@pytest.mark.parametrize("profile,nb", SECTIONS, ids=lambda x: str(x)[:12])
def test_every_pages_run_keys_are_the_hand_built_ones(profile, nb):
    K = profile_knobs(nb, profile, PARAMS)
    planned = [make_config(c).key() for _, c in costs.notebook_runs(nb, K)]
    # in training order, each run once (the PGD-AT run of ε 0.1 is Fig. 1's run of ε 0.1)
    assert list(dict.fromkeys(planned)) == list(dict.fromkeys(by_hand(nb, K)))


def test_the_cpu_pages_runs_are_the_committed_results():
    """Today's keys, pinned by folders committed before page_runs existed: every cpu run
    of pages 03-09 that was exported is found there by its key."""
    committed = {p.name.rsplit("-", 1)[-1] for p in (ROOT / "notebooks/results/cpu").iterdir()}
    found = {}
    for nb in ("03_at_dynamics", "05_perturbation_bound", "06_norms_datasets_architectures",
               "07_fast_at", "08_instance_wise_and_standard", "09_saliency"):
        for label, c in costs.notebook_runs(nb, profile_knobs(nb, "cpu", PARAMS)):
            found[f"{nb}: {label}"] = make_config(c).key() in committed
    not_exported = {"06_norms_datasets_architectures: PGD-AT, planted-10",
                    "06_norms_datasets_architectures: PGD-AT, DeiT-Ti"}
    assert {k for k, v in found.items() if not v} == not_exported
    assert sum(found.values()) == 18


def test_a_page_run_is_its_base_config_with_its_overrides():
    K = {"train": {"dataset": "planted", "epochs": 2}, "fast_eps": 0.2, "fast_alpha": 0.4,
         "epochs": 5}
    (run,) = page_runs.page_runs("07_fast_at", K)
    assert run.label == "fast AT" and run.teacher is None
    assert run.config() == {"dataset": "planted", "objective": "fast_at", "eps": 0.2,
                            "fast_at": {"alpha": 0.4}, "epochs": 5}
    assert page_runs.page_runs("07_fast_at", {"fast_eps": 0.2}) == []  # no train knob
    assert [r.label for r in page_runs.page_runs("09_saliency", K)] == ["PGD-AT"]
    assert page_runs.page_runs("10_figures", {"profiles": ["cpu"]}) == []


def test_a_kd_student_names_its_teachers_folder_and_needs_it():
    K = {"teacher": {"dataset": "planted"}, "kd_lambda": 0.5, "kd_temperature": 2.0,
         "kd_form": "hinton"}
    teacher, student = page_runs.page_runs("04_soft_labels", K)
    assert student.teacher is teacher and teacher.config() == {"dataset": "planted"}
    assert student.config("runs/t")["kd"] == {"teacher": "runs/t", "lambda": 0.5,
                                              "temperature": 2.0, "form": "hinton"}
    with pytest.raises(ValueError, match="teacher's run folder"):
        student.config()


class Recording:
    """A locator that finds nothing and records the key of every run it is asked for."""

    profile = "cpu"

    def __init__(self):
        self.keys = []

    def __call__(self, config, **overrides):
        self.keys.append(key(config, **overrides))
        return None


FIGURES = [  # (notebook, draw(locate, knobs)) of the figures that read a page's runs
    ("03_at_dynamics", lambda loc, k: figures.fig1_accuracy_curves(loc, k["train"],
                                                                   k["curve_eps"])),
    ("05_perturbation_bound", lambda loc, k: figures.fig4_differences(loc, k["train"],
                                                                      k["eps_list"])),
    ("06_norms_datasets_architectures", lambda loc, k: figures.fig6_norm_and_vit(
        loc, k["train"], k["l2_eps"], k["vit"])),
    ("07_fast_at", lambda loc, k: figures.fig7_fast_at(loc, k["train"], k["fast_eps"],
                                                       k["fast_alpha"], k["epochs"])),
    ("07_fast_at", lambda loc, k: observed.fast_at(loc, k["train"], k["fast_eps"],
                                                   k["fast_alpha"], k["epochs"])),
    ("08_instance_wise_and_standard", lambda loc, k: figures.fig8_instance_wise(
        loc, k["train"], k["l2_eps"])),
    ("08_instance_wise_and_standard", lambda loc, k: figures.fig9_standard(
        loc, k["train"], k["n_standard_matrices"])),
]


@pytest.mark.parametrize("nb,draw", FIGURES, ids=[f"{nb[:2]}-{i}" for i, (nb, _) in
                                                  enumerate(FIGURES)])
def test_figures_look_for_the_runs_the_page_declares(nb, draw, capsys):
    K = profile_knobs(nb, "cpu", PARAMS)
    locate = Recording()
    draw(locate, K)
    declared = {make_config(c).key() for _, c in costs.notebook_runs(nb, K)}
    assert locate.keys and set(locate.keys) <= declared


def test_the_claims_pages_seed_0_runs_are_the_pages_runs():
    """C3 (ε), C4 (the fast-AT setting of page 07) and C5 (standard training) of seed 0
    at the cpu profile are pages 05's, 07's and 08's runs: one folder each."""
    P = profile_knobs("11_claims", "cpu", PARAMS)
    studies = {s.name: key(s.config, **s.overrides) for s in claim_runs.studies_of(P)
               if s.teacher_seed is None}  # a KD student is keyed once its teacher is
    pages = {nb: {make_config(c).key() for _, c in
                  costs.notebook_runs(nb, profile_knobs(nb, "cpu", PARAMS))}
             for nb in ("05_perturbation_bound", "07_fast_at", "08_instance_wise_and_standard")}
    c3 = {v for name, v in studies.items() if name.startswith("C3") and name.endswith("seed 0")}
    assert c3 and c3 <= pages["05_perturbation_bound"]
    assert studies["C4 fast AT ε 0.2, step 0.4 seed 0"] in pages["07_fast_at"]
    assert studies["C5 standard seed 0"] in pages["08_instance_wise_and_standard"]


def test_the_launcher_plans_the_notebooks_page_runs_declares():
    from xcf.cli import launch

    assert launch.select_notebooks(None) == list(page_runs.TRAINING_NOTEBOOKS)
    assert set(page_runs.PAGES) - set(page_runs.TRAINING_NOTEBOOKS) == {
        "02_measuring_cross_class_features"}  # trained in memory: no run folder to plan
