"""xcf.claims: the rules that decide C1-C5 and the beyond-paper measures, on run folders
written by hand with known answers."""
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from xcf import claims
from xcf.runs import Run

# Running and exporting the studies knows the checkout's layout, so it lives in tools/.
_spec = importlib.util.spec_from_file_location(
    "run_claims", Path(__file__).resolve().parent.parent / "tools" / "run_claims.py")
run_claims = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(run_claims)


def make_run(folder, ra, cas, *, train_ra=None, extra=None, matrices=None, name="run"):
    """A finished run folder with the given per-epoch test RA and CAS."""
    path = folder / name
    (path / "matrices").mkdir(parents=True)
    rows = []
    for e, (a, c) in enumerate(zip(ra, cas), start=1):
        row = {"epoch": e, "test_robust_acc": a, "test_clean_acc": a + 0.2, "cas": c, "cas_clean": c / 2,
               "train_robust_acc": (train_ra or [0.1 * e] * len(ra))[e - 1]}
        row.update((extra or {}).get(e, {}))
        rows.append(row)
        C = (matrices or {}).get(e, np.eye(3))
        np.save(path / "matrices" / f"epoch_{e:04d}.npy", np.asarray(C, dtype=np.float32))
    (path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    best = max(rows, key=lambda r: r["test_robust_acc"])["epoch"]
    (path / "final.json").write_text(json.dumps({"best_epoch": best, "last_epoch": len(rows)}))
    (path / "config.yaml").write_text(yaml.safe_dump({"epochs": len(rows)}))
    return Run(path)


def test_overfitting_needs_a_drop_of_three_points_and_rising_train_accuracy(tmp_path):
    run = make_run(tmp_path, [0.30, 0.50, 0.46, 0.44], [1, 2, 3, 4], train_ra=[0.3, 0.5, 0.7, 0.9])
    o = claims.overfitting(run, window=1)
    assert (o["peak_epoch"], o["ra_peak"], o["ra_last"]) == (2, 0.50, 0.44)
    assert o["ra_drop"] == pytest.approx(0.06) and o["overfits"]
    flat = make_run(tmp_path, [0.30, 0.50, 0.49, 0.48], [1, 2, 3, 4], name="flat")
    assert not claims.overfitting(flat, window=1)["overfits"]            # only 2 points
    stuck = make_run(tmp_path, [0.30, 0.50, 0.40, 0.40], [1, 2, 3, 4], train_ra=[0.3, 0.6, 0.5, 0.5],
                     name="stuck")
    assert not claims.overfitting(stuck, window=1)["overfits"]           # train RA fell too


def test_overfitting_is_judged_on_trailing_means_so_one_lucky_epoch_does_not_count(tmp_path):
    spike = [0.50] * 5 + [0.58] + [0.50] * 6          # one evaluation 8 points high, then flat
    run = make_run(tmp_path, spike, [1] * len(spike), train_ra=[0.1 * e for e in range(1, 13)])
    o = claims.overfitting(run, window=3)
    assert o["raw_ra_best"] == 0.58 and o["raw_best_epoch"] == 6          # the raw rule sees 8 points
    assert o["ra_drop"] == pytest.approx(0.08 / 3) and not o["overfits"]  # the smoothed one sees 2.7
    decline = [0.50, 0.56, 0.57, 0.56, 0.55, 0.53, 0.52, 0.51, 0.51, 0.50]
    o = claims.overfitting(make_run(tmp_path, decline, [1] * 10, name="decline"), window=3)
    assert o["peak_epoch"] == 4 and o["ra_peak"] == pytest.approx((0.56 + 0.57 + 0.56) / 3)
    assert o["ra_last"] == pytest.approx((0.51 + 0.51 + 0.50) / 3) and o["overfits"]


def test_collapse_is_the_first_epoch_after_the_best_at_a_quarter_of_its_accuracy(tmp_path):
    assert claims.collapse_epoch(make_run(tmp_path, [0.3, 0.4, 0.2, 0.09, 0.0], [5] * 5)) == 4
    assert claims.collapse_epoch(make_run(tmp_path, [0.05, 0.4, 0.2, 0.2], [5] * 4, name="b")) is None


def test_label_free_selection_reports_the_test_accuracy_lost_by_each_selector(tmp_path):
    extra = {1: {"holdout_cas": 3.0, "holdout_robust_acc": 0.2}, 2: {"holdout_cas": 5.0, "holdout_robust_acc": 0.3},
             3: {"holdout_cas": 9.0, "holdout_robust_acc": 0.6}, 4: {"holdout_cas": 1.0, "holdout_robust_acc": 0.5}}
    run = make_run(tmp_path, [0.30, 0.50, 0.45, 0.40], [1, 2, 3, 4], extra=extra)
    s = claims.label_free_selection(run)
    assert (s["test_best_epoch"], s["cas_epoch"], s["holdout_ra_epoch"]) == (2, 3, 3)
    assert s["cas_regret"] == pytest.approx(0.05) and s["last_regret"] == pytest.approx(0.10)
    with pytest.raises(ValueError, match="holdout_n"):
        claims.label_free_selection(make_run(tmp_path, [0.3], [1], name="plain"))


def test_planted_concentration_finds_a_drop_that_lies_on_the_sharing_pair(tmp_path):
    share = np.zeros((3, 3), bool)
    share[0, 1] = share[1, 0] = True
    best = np.array([[1, .8, .1], [.8, 1, .1], [.1, .1, 1]])
    last = np.array([[1, .2, .1], [.2, 1, .1], [.1, .1, 1]])
    run = make_run(tmp_path, [0.5, 0.4], [1.8, 0.6], matrices={1: best, 2: last})
    p = claims.planted_concentration(run, share)
    assert p["drop_share_of_cas_drop"] == pytest.approx(1.0)
    assert p["C_share_best"] == pytest.approx(0.8) and p["C_share_last"] == pytest.approx(0.2, abs=1e-6)
    assert p["C_other_best"] == pytest.approx(0.1) and p["share_fraction_of_pairs"] == pytest.approx(1 / 3)


P = {"seeds": [0, 1, 2], "eps_list": [0.05, 0.1, 0.15], "train": {},
     "fast": [{"label": "a", "overrides": {"eps": 0.2}}, {"label": "b", "overrides": {"eps": 0.1}}]}


def test_decide_applies_each_rule_to_hand_made_runs(tmp_path):
    found = {f"C1 seed {s}": make_run(tmp_path, [0.3, 0.5, 0.4], [4, 10, 10 - g], name=f"s{s}")
             for s, g in zip(P["seeds"], [3.0, 1.0, 2.0])}
    found["C2 KD-AT"] = make_run(tmp_path, [0.3, 0.5, 0.45], [4, 10, 9.5], name="kd")
    for e, g in zip(P["eps_list"], [0.5, 1.0, 0.7]):
        found[f"C3 eps {e:g}"] = make_run(tmp_path, [0.3, 0.5, 0.4], [4, 10, 10 - g], name=f"e{e}")
    found["C4 fast AT a"] = make_run(tmp_path, [0.1, 0.2, 0.18], [6, 8, 7], name="fast_a")  # no collapse
    found["C4 fast AT b"] = make_run(tmp_path, [0.3, 0.5, 0.1], [6, 8, 2], name="fast_b")
    found["C5 standard"] = make_run(tmp_path, [0.0, 0.0], [4, 12], name="std")  # cas_clean 6 at the end
    rows = {r["claim"]: r for r in claims.decide(found, P)}
    assert rows["C1"]["verdict"] == "holds" and "gap 2.00 ± 1.00" in rows["C1"]["ours"]
    assert rows["C2"]["verdict"] == "holds" and "gap KD-AT 0.50" in rows["C2"]["ours"]
    assert rows["C3"]["verdict"] == "does not hold"            # 0.5, 1.0, 0.7 does not rise
    assert rows["C4"]["verdict"] == "holds" and rows["C4"]["ours"].startswith("b: CAS 8.00")
    assert "epoch 3" in rows["C4"]["ours"] and "also tried a: no collapse" in rows["C4"]["ours"]
    assert rows["C5"]["verdict"] == "holds" and "standard 6.00" in rows["C5"]["ours"]
    assert all(r["paper"] for r in rows.values())


def test_decide_says_not_run_or_not_tested_rather_than_guessing(tmp_path):
    found = {"C4 fast AT a": make_run(tmp_path, [0.3, 0.5, 0.45], [6, 8, 7], name="fast")}
    rows = {r["claim"]: r["verdict"] for r in claims.decide(found, P)}
    assert rows == {"C1": "not run", "C2": "not run", "C3": "not run", "C4": "not tested", "C5": "not run"}


def test_export_leaves_checkpoints_behind_and_refuses_unfinished_runs(tmp_path):
    run = make_run(tmp_path, [0.3, 0.5], [1, 2])
    (run.path / "checkpoints").mkdir()
    (run.path / "checkpoints" / "last.pt").write_bytes(b"x" * 10)
    out = run_claims.export_run(run, tmp_path / "results")
    assert (out / "metrics.jsonl").read_text() == (run.path / "metrics.jsonl").read_text()
    assert not (out / "checkpoints").exists() and (out / "matrices" / "epoch_0002.npy").exists()
    (run.path / "final.json").unlink()
    with pytest.raises(ValueError, match="not finished"):
        run_claims.export_run(Run(run.path), tmp_path / "results2")


def test_a_single_fast_setting_is_labelled_by_its_eps_and_step():
    assert claims.fast_settings({"fast": {"objective": "fast_at", "eps": 0.1, "fast_at": {"alpha": 0.2}}}) == [
        {"label": "ε 0.1, step 0.2", "overrides": {"objective": "fast_at", "eps": 0.1, "fast_at": {"alpha": 0.2}}}]


def test_export_writes_repository_paths_relative_and_leaves_the_source_run_alone(tmp_path):
    run = make_run(tmp_path, [0.3, 0.5], [1, 2])
    repo = tmp_path / "repo"
    teacher = f"{repo}/runs/cpu/teacher-run"
    (run.path / "config.yaml").write_text(yaml.safe_dump({"kd": {"teacher": teacher}}))
    (run.path / "provenance.json").write_text(json.dumps({"teacher": {"path": teacher + "/best.pt"},
                                                        "elsewhere": "/data/cifar"}))
    out = run_claims.export_run(run, tmp_path / "results", root=repo)
    assert yaml.safe_load((out / "config.yaml").read_text())["kd"]["teacher"] == "runs/cpu/teacher-run"
    prov = json.loads((out / "provenance.json").read_text())
    assert prov == {"teacher": {"path": "runs/cpu/teacher-run/best.pt"}, "elsewhere": "/data/cifar"}
    assert yaml.safe_load((run.path / "config.yaml").read_text())["kd"]["teacher"] == teacher


class _Found:
    def __init__(self, label):
        self.path = label


def test_located_studies_gives_the_kd_student_the_first_seeds_run_as_teacher():
    P = {"train": {}, "seeds": [0, 1], "eps_list": [0.1], "fast": [], "kd_lambda": 0.5, "kd_temperature": 2}
    calls = []

    def locate(config, **overrides):
        calls.append(overrides)
        teacher = (overrides.get("kd") or {}).get("teacher")
        return _Found(f"student of {teacher}" if teacher else f"seed {overrides.get('seed')}")

    found = dict(claims.located_studies(P, locate))
    assert found["C2 KD-AT"].path == "student of seed 0"
    assert len(calls) == len(found)  # the teacher was not located twice
    # when C1 is skipped the teacher is located first, from C1's first seed
    calls.clear()
    only_kd = dict(claims.located_studies(P, locate, only=lambda name: name.startswith("C2")))
    assert list(only_kd) == ["C2 KD-AT"] and calls[0] == {"seed": 0}
    assert only_kd["C2 KD-AT"].path == "student of seed 0"
    # without a teacher the student is reported missing, and nothing is located for it
    nothing = dict(claims.located_studies(P, lambda config, **o: None))
    assert nothing["C2 KD-AT"] is None
