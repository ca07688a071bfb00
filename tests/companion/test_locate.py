"""xcf.companion.locate: the two locators and the one KD teacher -> student link."""
import json

import pytest

from xcf.companion import locate as L
from xcf.runs.config import make_config
from xcf.runs.folder import Run

CFG = {"dataset": "planted", "model": "small_cnn", "epochs": 2, "eps": 0.1}


def finished(root, config, name="planted-small_cnn-pgd_at", done=True, **overrides):
    d = root / f"{name}-{make_config(dict(config), **overrides).key()}"
    d.mkdir(parents=True)
    if done:
        (d / "final.json").write_text(json.dumps({"best_epoch": 1}))
    return Run(d)


def test_committed_finds_only_finished_runs_of_the_same_config(tmp_path):
    run = finished(tmp_path, CFG)
    finished(tmp_path, CFG, done=False, eps=0.2)
    found = L.Committed(tmp_path, "cpu")
    assert found(CFG).path == run.path
    assert found(CFG, eps=0.2) is None            # unfinished
    assert found(CFG, eps=0.3) is None            # never trained
    assert L.Committed(tmp_path / "absent", "cpu")(CFG) is None
    assert str(tmp_path) not in repr(found)        # printing it shows no machine path


def test_kd_overrides_name_the_teacher_run_and_eq3_knobs():
    assert L.kd_overrides("results/cpu/a-run", 0.5, 2.0) == {
        "objective": "kd_at", "kd": {"teacher": "results/cpu/a-run", "lambda": 0.5,
                                     "temperature": 2.0, "form": "eq3"}}
    assert L.kd_overrides("r", 0.3, 4.0, "hinton")["kd"]["form"] == "hinton"


def test_kd_pair_finds_the_student_of_the_teacher_it_found(tmp_path):
    teacher = finished(tmp_path, CFG)
    student = finished(tmp_path, CFG, name="planted-small_cnn-kd_at",
                       **L.kd_overrides(teacher.path, 0.5, 2.0))
    at, kd = L.kd_pair(L.Committed(tmp_path, "cpu"), CFG, 0.5, 2.0)
    assert at.path == teacher.path and kd.path == student.path
    assert L.kd_pair(L.Committed(tmp_path, "cpu"), CFG, 0.3, 2.0)[1] is None  # other λ
    assert L.kd_pair(L.Committed(tmp_path / "none", "cpu"), CFG, 0.5, 2.0) == (None, None)


class _FakeRun:
    def __init__(self, name):
        self.path = type("P", (), {"name": name})()
        self.best_epoch = 1
        self.config = {"amp": "bf16" if name.endswith("bf16") else "none"}

    def metrics(self):
        return [{"epoch": 1}, {"epoch": 2}]


def test_train_or_reuse_trains_once_per_config_and_says_what_it_did(monkeypatch, capsys):
    import xcf.companion.locate

    calls = []

    def fake_train(config, progress, log, **overrides):
        calls.append(overrides)
        if overrides.get("eps") == 0.2:
            log("reusing finished run")
        return _FakeRun(f"run-{overrides.get('eps')}")

    monkeypatch.setattr(xcf.companion.locate, "train", fake_train)
    locate = L.TrainOrReuse("smoke")
    a = locate(CFG, eps=0.1)
    assert locate(CFG, eps=0.1) is a and len(calls) == 1     # asked again: not again
    locate(CFG, eps=0.2)
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 2 and "run-0.1 (fp32): trained in" in out[0]
    assert out[1] == "run-0.2 (fp32): reused, best epoch 1 of 2"
    assert locate.profile == "smoke"


def test_a_smoke_locator_still_prints_a_wait_for_another_process(monkeypatch, capsys):
    """At smoke the epoch lines stay quiet, but a lock wait (xcf.runs.lock) is printed, or
    the cell would look hung while another process trains the run."""
    import xcf.companion.locate

    def fake_train(config, progress, log, **overrides):
        log("epoch 1/2  lr 0.1")
        log("waiting for run-x (trained by pid 7 on host h) ... 30 s")
        log("reusing finished run")
        return _FakeRun("run-x")

    monkeypatch.setattr(xcf.companion.locate, "train", fake_train)
    L.TrainOrReuse("smoke")(CFG)
    out = capsys.readouterr().out.splitlines()
    assert out == ["waiting for run-x (trained by pid 7 on host h) ... 30 s",
                   "run-x (fp32): reused, best epoch 1 of 2"]


@pytest.mark.parametrize("bad", ["studies.run_study", "studies.find_study"])
def test_nothing_in_studies_trains_or_locates(bad):
    from xcf.companion import readings as studies

    assert not hasattr(studies, bad.split(".")[1])


def test_the_printed_line_names_the_precision_a_run_trained_in(monkeypatch, capsys):
    """A committed bf16 run read on any machine is labelled bf16 (its key says so too)."""
    import xcf.companion.locate

    monkeypatch.setattr(xcf.companion.locate, "train", lambda config, progress, log, **o: (
        log("reusing finished run"), _FakeRun("run-bf16"))[1])
    L.TrainOrReuse("cpu")(CFG)
    assert capsys.readouterr().out.splitlines()[-1] == (
        "run-bf16 (bf16 autocast): reused, best epoch 1 of 2")
