"""Full-profile results in the book (issue 16, item 8): the Claims page and the figures page
read ``notebooks/results/full`` when it holds runs, label what they show with its profile,
and say "not run" without them; ``tools/run_claims.py --profile full`` trains exactly the
runs the full profile's section notebooks train."""
import importlib.util
import os
from pathlib import Path

import pytest

from run_folders import make_run
from xcf.companion import claim_verdicts, gallery, costs as plan, claim_runs as study_plan
from xcf.runs import identity
from xcf.runs.config import make_config
from xcf.companion.locate import kd_overrides
from xcf.companion.profiles import ParameterError, profile_knobs

ROOT = Path(__file__).resolve().parents[2]
PARAMS = ROOT / "notebooks" / "params"
FULL = profile_knobs("11_claims", "full", PARAMS)
BOOK_NOTEBOOKS = ("03_at_dynamics", "04_soft_labels", "05_perturbation_bound",
                  "06_norms_datasets_architectures", "07_fast_at",
                  "08_instance_wise_and_standard", "09_saliency")

_spec = importlib.util.spec_from_file_location("run_claims", ROOT / "tools" / "run_claims.py")
run_claims = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(run_claims)


def folder_name(config, **overrides) -> str:
    return identity.folder_name(make_config(dict(config), **overrides))


def test_the_full_study_is_exactly_the_runs_the_full_notebooks_train():
    """So run_claims --profile full reuses the notebooks' runs and trains nothing else,
    and the Claims page and the figures page read the same run folders."""
    book = {folder_name(config) for nb in BOOK_NOTEBOOKS
            for _, config in plan.notebook_runs(nb, profile_knobs(nb, "full", PARAMS))}
    study = set()
    for s in study_plan.studies_of(FULL):
        overrides = s.overrides
        if s.teacher_seed is not None:  # taught by C1's run, named by its folder
            teacher = folder_name(s.config, seed=s.teacher_seed)
            overrides = {**kd_overrides(Path("runs") / teacher, FULL["kd_lambda"],
                                        FULL["kd_temperature"], s.kd_form),
                         "seed": s.teacher_seed}
        study.add(folder_name(s.config, **overrides))
    assert study == book
    assert len(study) == 13  # the paper's 13 CIFAR/Tiny-ImageNet runs (issue 16)
    assert make_config(FULL["train"]).epochs == 200 and len(set(FULL["eps_list"])) >= 6


def write_full_results(root: Path) -> None:
    """``root/full`` with two finished runs of the full study: C1 (seed 0) robust-overfits
    with CAS best 5 [4, 6] vs last 2 [1, 3]; standard training keeps clean CAS 1."""
    full = root / "full"
    full.mkdir(parents=True)
    ci = {2: {"cas_ci95": [4.0, 6.0]}, 3: {"cas_ci95": [1.0, 3.0]}}
    make_run(full, [0.3, 0.5, 0.4], [1.0, 5.0, 2.0], extra=ci,
             name=folder_name(FULL["train"], seed=0))
    make_run(full, [0.6, 0.7, 0.8], [2.0, 2.0, 2.0],
             name=folder_name(FULL["train"], objective="standard", seed=0))


def test_the_claims_page_reads_full_results_and_labels_them_full(tmp_path):
    write_full_results(tmp_path)
    cpu, full = study_plan.claims_results("cpu", root=tmp_path, directory=PARAMS)
    assert (cpu.profile, full.profile) == ("cpu", "full")
    assert not cpu.found and "**cpu profile**: not run" in cpu.caption()
    # C3's ε = 8/255 run is C1's run: one folder, two studies
    assert sorted(full.found) == ["C1 seed 0", "C3 eps 0.0313725 seed 0", "C5 standard seed 0"]
    assert all(run.path.parent == tmp_path / "full" for run in full.found.values())
    assert full.caption().startswith(f"**full profile**: 3 of its {full.n_studies} studies")
    assert full.caption().endswith("trained in fp32 (2 runs).")  # 2 folders, amp: none
    verdicts = {v["claim"]: v["verdict"] for v in claim_verdicts.decide(full.found, full.studies)}
    # by hand: RA 0.3, 0.5, 0.4 over 3 epochs has one 3-epoch mean, which cannot fall:
    # no robust overfitting, so C1's fall is not tested (a best before the last is not
    # enough); its rise has no epoch before the best but epoch 1 (Table 1's 10 of 200,
    # scaled to 3 epochs), one seed: no interval
    assert verdicts["C1 fall"] == "not tested"
    assert verdicts["C1 rise"] == "inconclusive"
    # standard: clean CAS 1.0 below PGD-AT's best CAS 5, one seed: no interval either
    assert verdicts["C5"] == "inconclusive"
    assert verdicts["C2"] == verdicts["C4"] == "not run"  # no KD or fast-AT run exported
    assert verdicts["C3"] == "not run"  # one ε of the six: not decided from part of them


def test_without_full_results_every_full_verdict_is_not_run(tmp_path):
    cpu, full = study_plan.claims_results("cpu", root=tmp_path, directory=PARAMS)
    assert full.found == {} and not full.ran
    assert "**full profile**: not run" in full.caption()
    assert "tools/run_claims.py --profile full" in full.caption()
    rows = claim_verdicts.decide(full.found, full.studies)
    assert rows and {r["verdict"] for r in rows} == {"not run"}


def test_the_committed_cpu_results_are_read_as_before():
    results = study_plan.claims_results("cpu", directory=PARAMS)
    assert [r.profile for r in results] == ["cpu", "full"]
    S = profile_knobs("11_claims", "cpu", PARAMS)
    before = study_plan.find_studies(ROOT / "notebooks" / "results" / "cpu", S)
    paths = lambda found: {k: r.path for k, r in found.items()}  # noqa: E731
    assert paths(results[0].found) == paths(before)
    assert claim_verdicts.decide(results[0].found, results[0].studies) == claim_verdicts.decide(before, S)
    if not (ROOT / "notebooks" / "results" / "full").is_dir():
        assert not results[1].ran


def test_the_full_profile_leads_with_its_own_results_and_a_profile_without_studies_cannot():
    assert [r.profile for r in study_plan.claims_results("full", directory=PARAMS)] == [
        "full", "cpu"]
    assert study_plan.claims_profiles(PARAMS) == ["cpu", "full"]
    with pytest.raises(ParameterError, match=r"results = 'smoke'.*use one of cpu, full"):
        study_plan.claims_results("smoke", directory=PARAMS)


def test_the_figures_page_draws_full_results_and_says_not_run_for_the_others(tmp_path, capsys):
    train = profile_knobs("03_at_dynamics", "full", PARAMS)["train"]
    make_run(tmp_path / "results" / "full", [0.3, 0.5], [1.0, 2.0], name=folder_name(train))
    shown = gallery.Gallery(["cpu", "full"], "smoke", runs_dir=tmp_path / "runs",
                              directory=PARAMS, results_root=tmp_path / "results")
    assert sorted(shown.found) == ["full"] and shown.where["full"] == "committed results"
    asked = []
    shown.draw("Fig. X", "03_at_dynamics",
                 lambda locate, k: asked.append((locate.profile, locate(k["train"]))) or "fig")
    assert [(p, run.path.name) for p, run in asked] == [("full", folder_name(train))]
    assert "Fig. X [cpu profile]: not run" in capsys.readouterr().out
    assert shown.drawn == {"Fig. X": ["full"]}
    # at the full profile, without runs of this build, the committed ones are read
    page = gallery.Gallery(["full"], "full", runs_dir=tmp_path / "empty", directory=PARAMS,
                           results_root=tmp_path / "results")
    assert page.where["full"] == "committed results"


@pytest.fixture
def no_runs_dir(monkeypatch):
    monkeypatch.setenv("XCF_RUNS_DIR", "placeholder")
    monkeypatch.delenv("XCF_RUNS_DIR")  # restored (unset) after the test


def test_run_claims_trains_the_full_study_into_the_notebooks_runs_folder(monkeypatch,
                                                                        no_runs_dir):
    calls = []
    monkeypatch.setattr(run_claims, "run_studies", lambda P, **kw: calls.append((P, kw)))
    monkeypatch.setattr(run_claims, "_has_cuda", lambda: True)
    run_claims.main(["--profile", "full"])
    (P, kw), = calls
    assert P == FULL and kw["profile"] == "full"
    assert Path(kw["export_to"]) == ROOT / "notebooks" / "results" / "full"
    assert Path(os.environ["XCF_RUNS_DIR"]) == ROOT / "runs"  # where notebooks 03-08 train


def test_run_claims_keeps_the_cpu_study_in_runs_cpu(monkeypatch, no_runs_dir):
    calls = []
    monkeypatch.setattr(run_claims, "run_studies", lambda P, **kw: calls.append((P, kw)))
    run_claims.main([])
    (P, kw), = calls
    assert P == profile_knobs("11_claims", "cpu", PARAMS) and kw["profile"] == "cpu"
    assert Path(kw["export_to"]) == ROOT / "notebooks" / "results" / "cpu"
    assert Path(os.environ["XCF_RUNS_DIR"]) == ROOT / "runs" / "cpu"


def test_run_claims_refuses_an_unknown_profile_and_names_the_profiles_with_studies(
        monkeypatch, capsys, no_runs_dir):
    monkeypatch.setattr(run_claims, "run_studies", lambda *a, **k: pytest.fail("ran"))
    with pytest.raises(SystemExit) as err:
        run_claims.main(["--profile", "huge"])
    assert err.value.code == 2 and "huge" in capsys.readouterr().err
    with pytest.raises(SystemExit) as err:
        run_claims.main(["--profile", "smoke"])
    assert "the profiles that do: cpu, full" in str(err.value.code)
