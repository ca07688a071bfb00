"""xcf.companion.claim_runs: the names, order and teachers of the Claims page's runs."""
from pathlib import Path

from xcf.companion import claim_runs


class _Found:
    def __init__(self, label):
        self.path = label


def test_a_single_fast_setting_is_labelled_by_its_eps_and_step():
    assert claim_runs.fast_settings({"fast": {"objective": "fast_at", "eps": 0.1,
                                              "fast_at": {"alpha": 0.2}}}) == [
        {"label": "ε 0.1, step 0.2",
         "overrides": {"objective": "fast_at", "eps": 0.1, "fast_at": {"alpha": 0.2}}}]


def test_studies_name_every_claim_seed_and_put_teachers_first():
    P = {"train": {}, "seeds": [0, 1], "kd_forms": ["eq3", "hinton"], "kd_seeds": [1],
         "eps_list": [0.05, 0.2], "eps_seeds": [0], "fast": [{"label": "x", "overrides": {}}],
         "standard_seeds": [2], "across": [{"label": "w16", "overrides": {"model": "m"}}]}
    names = [s.name for s in claim_runs.studies_of(P)]
    assert names == ["C1 seed 0", "C1 seed 1", "C2 KD-AT eq3 seed 1", "C2 KD-AT hinton seed 1",
                     "C3 eps 0.05 seed 0", "C3 eps 0.2 seed 0", "C4 fast AT x seed 0",
                     "C4 fast AT x seed 1", "C5 standard seed 2", "C1 w16 seed 0",
                     "C1 w16 seed 1"]
    across = [s for s in claim_runs.studies_of(P) if s.name == "C1 w16 seed 1"][0]
    assert across.overrides == {"model": "m", "seed": 1}


def test_each_kd_student_is_taught_by_the_c1_run_of_its_own_seed():
    P = {"train": {}, "seeds": [0, 1], "eps_list": [], "fast": [], "kd_lambda": 0.5,
         "kd_temperature": 2, "kd_forms": ["eq3", "hinton"], "standard_seeds": []}
    calls = []

    def locate(config, **overrides):
        calls.append(overrides)
        kd = overrides.get("kd") or {}
        if kd:
            return _Found(f"{kd['form']} student of {kd['teacher']}")
        return _Found(f"seed {overrides.get('seed')}")

    found = dict(claim_runs.located_studies(P, locate))
    assert found["C2 KD-AT eq3 seed 1"].path == "eq3 student of seed 1"
    assert found["C2 KD-AT hinton seed 0"].path == "hinton student of seed 0"
    assert len(calls) == len(found)  # no teacher was located twice
    calls.clear()  # C1 skipped: each teacher is located first, once
    only = dict(claim_runs.located_studies(P, locate, only=lambda n: n.startswith("C2")))
    assert list(only) == ["C2 KD-AT eq3 seed 0", "C2 KD-AT eq3 seed 1",
                          "C2 KD-AT hinton seed 0", "C2 KD-AT hinton seed 1"]
    assert [c for c in calls if "kd" not in c] == [{"seed": 0}, {"seed": 1}]
    # without a teacher the student is reported missing, and nothing is located for it
    nothing = dict(claim_runs.located_studies(P, lambda config, **o: None))
    assert nothing["C2 KD-AT eq3 seed 0"] is None


def test_seed_overrides_reach_every_run_of_that_seed_teacher_and_student_alike():
    """``seed_overrides`` (seeds trained in fp32 where bf16 is not native) change the runs
    of the seeds they name, and only those; a KD student's teacher is located with them."""
    P = {"train": {"amp": "bf16"}, "seeds": [0, 3], "eps_list": [0.1], "eps_seeds": [3],
         "fast": [], "kd_lambda": 0.5, "kd_temperature": 2, "kd_forms": ["hinton"],
         "standard_seeds": [3], "seed_overrides": {3: {"amp": "none"}}}
    by_name = {s.name: s.overrides for s in claim_runs.studies_of(P)}
    assert by_name["C1 seed 0"] == {"seed": 0}
    assert by_name["C1 seed 3"] == {"amp": "none", "seed": 3}
    assert by_name["C3 eps 0.1 seed 3"] == {"amp": "none", "eps": 0.1, "seed": 3}
    assert by_name["C5 standard seed 3"] == {"amp": "none", "objective": "standard", "seed": 3}
    calls = []

    def locate(config, **overrides):
        calls.append(overrides)
        return _Found(f"run {overrides}")

    dict(claim_runs.located_studies(P, locate, only=lambda n: n == "C2 KD-AT hinton seed 3"))
    teacher, student = calls
    assert teacher == {"amp": "none", "seed": 3}
    assert student["amp"] == "none" and student["kd"]["form"] == "hinton"


def test_one_kd_forms_seeds_can_grow_before_the_others():
    P = {"train": {}, "seeds": [0, 1, 2], "kd_forms": ["eq3", "hinton"], "kd_seeds": [0],
         "kd_seeds_by_form": {"hinton": [0, 2]}, "eps_list": [], "fast": [],
         "standard_seeds": []}
    names = [s.name for s in claim_runs.studies_of(P) if s.name.startswith("C2")]
    assert names == ["C2 KD-AT eq3 seed 0", "C2 KD-AT hinton seed 0", "C2 KD-AT hinton seed 2"]
    assert claim_runs.seeds_of(P, "kd", "eq3") == [0] and claim_runs.seeds_of(P, "kd") == [0]


def test_the_hypothesis_studies_keep_every_checkpoint_and_teach_with_the_controls():
    """H1's planted runs keep every epoch's checkpoint (the erasure is measured at the
    epoch the held-out images select, known only after training); H2's students are
    taught by C1's run of their seed with the control soft labels, in the ``h2`` form,
    and the paper's students keep their keys (no ``soft_labels`` entry)."""
    P = {"train": {"epochs": 4}, "seeds": [0, 1], "kd_forms": ["hinton"], "kd_seeds": [0],
         "eps_list": [], "fast": [], "standard_seeds": [], "kd_lambda": 0.5,
         "kd_temperature": 2, "h1": {"dataset": "planted", "epochs": 3}, "h1_seeds": [2],
         "h2": {"form": "hinton", "soft_labels": ["teacher", "shuffled", "smoothing"],
                "overrides": {"amp": "none"}}, "h2_seeds": [1]}
    by_name = {s.name: s for s in claim_runs.studies_of(P)}
    assert by_name["H1 planted seed 2"].overrides == {
        "dataset": "planted", "epochs": 3, "save_checkpoints_at": [1, 2, 3], "seed": 2}
    assert [n for n in by_name if n.startswith("H2")] == [
        "H2 KD-AT teacher seed 1", "H2 KD-AT shuffled seed 1", "H2 KD-AT smoothing seed 1"]
    found = dict(claim_runs.located_studies(
        P, lambda config, **o: _Found(o), only=lambda n: n.startswith(("C2", "H2"))))
    assert "soft_labels" not in found["C2 KD-AT hinton seed 0"].path["kd"]
    assert "amp" not in found["C2 KD-AT hinton seed 0"].path  # h2's overrides are H2's own
    real = found["H2 KD-AT teacher seed 1"].path
    assert "soft_labels" not in real["kd"] and real["amp"] == "none"
    student = found["H2 KD-AT smoothing seed 1"].path
    assert student["kd"]["soft_labels"] == "smoothing" and student["kd"]["form"] == "hinton"
    assert student["kd"]["teacher"] == str({"seed": 1})  # C1's run of seed 1
    assert student["amp"] == "none" and student["objective"] == "kd_at"


def test_hypothesis_inputs_pair_each_seeds_arms_and_skip_incomplete_seeds(tmp_path):
    import json

    from xcf.companion.hypotheses import ERASURE_FILE

    P = {"seeds": [0, 1], "h1": {"dataset": "planted"}, "h1_seeds": [0, 1],
         "h2": {"form": "hinton", "soft_labels": ["shuffled", "smoothing"]}, "h2_seeds": [0, 1]}
    (tmp_path / "p0").mkdir()
    (tmp_path / "p0" / ERASURE_FILE).write_text(json.dumps({"best": {"epoch": 3}}))
    (tmp_path / "p1").mkdir()  # trained, but its record was never measured
    found = {"H1 planted seed 0": _Found(tmp_path / "p0"),
             "H1 planted seed 1": _Found(tmp_path / "p1"),
             **{f"{name} seed {s}": _Found(f"{name} {s}") for s in (0, 1)
                for name in ("C1", "C2 KD-AT hinton", "H2 KD-AT shuffled")},
             "H2 KD-AT smoothing seed 1": _Found("smoothing 1")}
    h1, h2 = claim_runs.hypothesis_inputs(found, P)
    assert [(run.path.name, rec) for run, rec in h1] == [("p0", {"best": {"epoch": 3}})]
    assert [{arm: r.path for arm, r in seed.items()} for seed in h2] == [
        {"pgd_at": "C1 1", "kd": "C2 KD-AT hinton 1", "kd_shuffled": "H2 KD-AT shuffled 1",
         "label_smoothing": "smoothing 1"}]



def test_h2s_own_real_teacher_student_is_its_kd_arm_when_it_names_one():
    P = {"seeds": [0], "h2": {"form": "hinton",
                              "soft_labels": ["teacher", "shuffled", "smoothing"]}}
    found = {"C1 seed 0": _Found("C1"), "C2 KD-AT hinton seed 0": _Found("C2"),
             "H2 KD-AT teacher seed 0": _Found("H2 real"),
             "H2 KD-AT shuffled seed 0": _Found("H2 shuffled"),
             "H2 KD-AT smoothing seed 0": _Found("H2 smoothing")}
    _, (seed,) = claim_runs.hypothesis_inputs(found, P)
    assert {arm: r.path for arm, r in seed.items()} == {
        "pgd_at": "C1", "kd": "H2 real", "kd_shuffled": "H2 shuffled",
        "label_smoothing": "H2 smoothing"}
    del found["H2 KD-AT teacher seed 0"]  # C2's student does not stand in for H2's own
    assert claim_runs.hypothesis_inputs(found, P) == ([], [])


def test_the_caption_counts_a_run_two_studies_name_once():
    """A search row that is C3's run names the same folder twice; the caption's count of
    runs per precision counts folders, as many as the results hold."""
    class _Run:
        def __init__(self, path, amp):
            self.path, self.config = path, {"amp": amp}

    shared = _Run("r/eps", "bf16")
    found = {"C3 eps 0.3 seed 0": shared, "search: ε 0.3 (C3's run)": shared,
             "C1 seed 3": _Run("r/c1", "none")}
    res = claim_runs.StudyResults("cpu", {"train": {}, "seeds": [3]}, found, Path("r"), "r")
    assert res.precisions() == "bf16 autocast (1 run) and fp32 (1 run)"


def test_an_across_row_may_name_its_own_seeds():
    P = {"train": {}, "seeds": [0], "across_seeds": [0, 1], "eps_list": [], "fast": [],
         "standard_seeds": [], "across": [{"label": "a", "overrides": {}},
                                          {"label": "b", "overrides": {}, "seeds": [0, 1, 2]}]}
    names = [s.name for s in claim_runs.studies_of(P) if s.name.startswith("C1 ")]
    assert names == ["C1 seed 0", "C1 a seed 0", "C1 a seed 1", "C1 b seed 0", "C1 b seed 1",
                     "C1 b seed 2"]
