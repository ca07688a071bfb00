"""A reused or resumed run folder checks itself against ``checkpoints/last.pt`` (the commit
point) and repairs what a kill or an edit left wrong, losing nothing; a killed session is
shown as interrupted; a KD student's key follows the content of its teacher."""
from __future__ import annotations

import json

import pytest
import torch

from xcf.runs import checkpoints, folder as runs
from xcf.runs.files import RunFileError
from xcf.train import final_test, runner
from xcf.runs.config import make_config
from xcf.runs.config_file import ConfigError
from xcf.train.runner import train

QUIET = dict(progress=False, log=lambda s: None)


def tiny(**overrides):
    from conftest import tiny_config
    return tiny_config(**{"epochs": 2, **overrides})


class Crash(Exception):
    pass


def crash_after(epoch):
    def callback(row, model, run):
        if row["epoch"] == epoch:
            raise Crash
    return callback


def stamps(run):
    return {p: p.stat().st_mtime_ns for p in run.path.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished 2-epoch run, copied afresh by each test that edits it."""
    return train(tiny(), runs_dir=tmp_path_factory.mktemp("ref"), **QUIET)


@pytest.fixture
def copy(finished, tmp_path):
    import shutil
    shutil.copytree(finished.path, tmp_path / finished.path.name)
    return runs.Run(tmp_path / finished.path.name)


# --------------------------------------------------------------------------- metrics.jsonl

def test_a_half_written_last_line_is_dropped_and_the_file_rewritten_on_reuse(copy, finished):
    good = (finished.path / "metrics.jsonl").read_text()
    with open(copy.path / "metrics.jsonl", "a") as f:
        f.write('{"epoch": 3, "cas": 1.2')  # killed half-way through a line
    with pytest.raises(RunFileError, match="line 3"):
        copy.metrics()
    said = []
    again = train(tiny(), runs_dir=copy.path.parent, progress=False, log=said.append)
    assert again.path == copy.path and any(s.startswith("reusing") for s in said)
    assert (copy.path / "metrics.jsonl").read_text() == good
    assert any("metrics.jsonl" in s and "half-written" in s for s in said)
    assert [r["epoch"] for r in copy.metrics()] == [1, 2]


def test_rows_after_last_pt_are_dropped_and_missing_rows_restored(tmp_path):
    with pytest.raises(Crash):
        train(tiny(epochs=3), runs_dir=tmp_path, callbacks=[crash_after(1)], **QUIET)
    (path,) = tmp_path.iterdir()
    run = runs.Run(path)
    row1 = (path / "metrics.jsonl").read_text()
    # Epoch 2 was never committed (last.pt holds epoch 1): a row for it is not trusted.
    (path / "metrics.jsonl").write_text(row1 + '{"epoch": 2, "cas": 0.5}\n{"epoch": 3, "c')
    (done,) = run.repair()
    assert "epochs [2]" in done and "last.pt's epoch 1" in done and "half-written" in done
    assert (path / "metrics.jsonl").read_text() == row1
    (path / "metrics.jsonl").write_text("")  # a row lost: restored from last.pt's history
    assert "epochs [1]" in run.repair()[0]
    assert (path / "metrics.jsonl").read_text() == row1
    assert run.repair() == []  # in order now: nothing more to do
    resumed = train(tiny(epochs=3), runs_dir=tmp_path, **QUIET)
    assert [r["epoch"] for r in resumed.metrics()] == [1, 2, 3]


def test_a_run_in_order_is_reused_without_a_write(copy):
    before = stamps(copy)
    assert copy.repair() == []
    train(tiny(), runs_dir=copy.path.parent, **QUIET)
    assert stamps(copy) == before


# --------------------------------------------------------------------------- final.json

def test_a_final_json_edited_to_another_best_epoch_is_refused_and_left_as_it_is(copy):
    final = copy.final()
    best = final["best_epoch"]
    final["best_epoch"] = 7
    (copy.path / "final.json").write_text(json.dumps(final))
    before = (copy.path / "final.json").read_bytes()
    with pytest.raises(RunFileError,
                       match=rf"final\.json gives best epoch 7 .* has {best} and 2: it was edited"):
        train(tiny(), runs_dir=copy.path.parent, **QUIET)
    assert (copy.path / "final.json").read_bytes() == before  # nothing lost


def test_a_garbled_final_json_is_refused_and_rewritten_once_moved_away(copy, finished):
    garbled = b'{"best_epoch": 2, "la'
    (copy.path / "final.json").write_bytes(garbled)
    with pytest.raises(RunFileError, match=r"final\.json is unreadable.*move it away"):
        copy.repair()
    assert (copy.path / "final.json").read_bytes() == garbled
    (copy.path / "final.json").rename(copy.path / "final.garbled")
    again = train(tiny(), runs_dir=copy.path.parent, **QUIET)  # resumes after epoch 2: finishes
    assert again.final()["best_epoch"] == finished.best_epoch
    assert again.final()["last"] == finished.final()["last"]


def test_a_final_json_of_an_unfinished_run_is_refused(tmp_path):
    with pytest.raises(Crash):
        train(tiny(), runs_dir=tmp_path, callbacks=[crash_after(1)], **QUIET)
    (path,) = tmp_path.iterdir()
    (path / "final.json").write_text('{"best_epoch": 1, "epochs": 2}\n')  # copied in
    with pytest.raises(RunFileError, match=r"last\.pt holds epoch 1 of 2"):
        train(tiny(), runs_dir=tmp_path, **QUIET)
    (path / "final.json").unlink()
    run = train(tiny(), runs_dir=tmp_path, **QUIET)
    assert [r["epoch"] for r in run.metrics()] == [1, 2] and run.final()["last"]["epoch"] == 2


def test_a_replaced_best_checkpoint_is_refused_on_reuse(copy):
    model = copy.load_model("best")
    with torch.no_grad():
        model.head.bias.add_(1.0)
    checkpoints.save_model(model, model.meta, copy.checkpoint_path("best"), epoch=1)
    with pytest.raises(RunFileError, match=r"checkpoints/best\.pt is not the best checkpoint"):
        train(tiny(), runs_dir=copy.path.parent, **QUIET)


# --------------------------------------------------------------------------- stale provenance

def test_a_killed_session_is_shown_interrupted_unless_a_live_process_holds_the_lock(copy):
    prov = json.loads((copy.path / "provenance.json").read_text())
    prov["sessions"].append({"start": "t", "end": None, "status": "running", "pid": 1})
    (copy.path / "provenance.json").write_text(json.dumps(prov))
    assert copy.status == "interrupted" and not copy.locked
    with copy.lock():  # a live holder: its session is running
        assert copy.locked and copy.status == "running"
        assert copy.repair() == []  # and its holder's files are left alone
    (done,) = copy.repair()
    assert "interrupted" in done
    raw = json.loads((copy.path / "provenance.json").read_text())
    assert [s["status"] for s in raw["sessions"]] == ["finished", "interrupted"]


# --------------------------------------------------------------------------- KD teacher content

def test_a_replaced_teacher_gives_its_student_a_new_key_and_a_new_run(tmp_path):
    teacher = train(tiny(epochs=1), runs_dir=tmp_path / "t", **QUIET)
    assert teacher.final()["best_sha256"] == checkpoints.file_digest(teacher.checkpoint_path("best"))
    digest = teacher.final()["best_weights_sha256"]
    assert digest == checkpoints.weights_digest(teacher.checkpoint_path("best"))
    kd = tiny(epochs=1, objective="kd_at", kd={"teacher": str(teacher.path)})
    old_key = make_config(kd).key()
    assert make_config(kd).identity()["kd"]["teacher_weights_sha256"] == digest
    student = train(kd, runs_dir=tmp_path / "s", **QUIET)
    assert student.key == old_key

    # Replace the teacher (another model in best.pt, and its digest in final.json).
    model = teacher.load_model("best")
    with torch.no_grad():
        model.head.weight.mul_(-1)
    checkpoints.save_model(model, model.meta, teacher.checkpoint_path("best"), epoch=1)
    final = teacher.final()
    final["best_sha256"] = checkpoints.file_digest(teacher.checkpoint_path("best"))
    final["best_weights_sha256"] = checkpoints.weights_digest(teacher.checkpoint_path("best"))
    (teacher.path / "final.json").write_text(json.dumps(final))

    assert make_config(kd).key() != old_key
    said = []
    again = train(kd, runs_dir=tmp_path / "s", progress=False, log=said.append)
    assert not any(s.startswith("reusing") for s in said), "the old student was reused"
    assert again.path != student.path and again.finished and student.finished
    from xcf.companion.locate import Committed
    assert Committed(tmp_path / "s", "test")(kd).path == again.path


def test_a_teacher_checkpoint_replaced_behind_its_final_json_is_refused(tmp_path):
    teacher = train(tiny(epochs=1), runs_dir=tmp_path, **QUIET)
    model = teacher.load_model("best")
    with torch.no_grad():
        model.head.bias.add_(1.0)
    checkpoints.save_model(model, model.meta, teacher.checkpoint_path("best"), epoch=1)
    kd = tiny(epochs=1, objective="kd_at", kd={"teacher": str(teacher.path)})
    with pytest.raises(ConfigError, match=r"kd\.teacher.*best\.pt is not the best checkpoint"):
        train(kd, runs_dir=tmp_path / "s", **QUIET)


def test_a_teacher_trained_again_bit_for_bit_gives_its_student_the_same_key(tmp_path):
    """best.pt also holds its epoch's wall-clock seconds, so a second training of the same
    teacher writes another file; the student's key follows the weights, not the file."""
    first = train(tiny(epochs=1), runs_dir=tmp_path / "a", **QUIET)
    again = train(tiny(epochs=1), runs_dir=tmp_path / "b", **QUIET)
    a, b = (checkpoints.read_checkpoint(r.path, "best")[0] for r in (first, again))
    assert a["model"].keys() == b["model"].keys()
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])  # premise
    keys = [make_config(tiny(epochs=1, objective="kd_at", kd={"teacher": str(r.path)})).key()
            for r in (first, again)]
    assert keys[0] == keys[1]


def test_the_weights_digest_follows_the_weights_and_the_architecture_not_the_file(tmp_path, tiny_net):
    meta = {"model": "small_cnn", "num_classes": 3, "in_channels": 1}
    one, two, other = tmp_path / "one.pt", tmp_path / "two.pt", tmp_path / "other.pt"
    checkpoints.save_model(tiny_net, meta, one, epoch=3, metrics={"seconds": 1.5})
    checkpoints.save_model(tiny_net, meta, two, epoch=3, metrics={"seconds": 2.5})
    assert checkpoints.file_digest(one) != checkpoints.file_digest(two)
    assert checkpoints.weights_digest(one) == checkpoints.weights_digest(two)
    checkpoints.save_model(tiny_net, {**meta, "model_kwargs": {"mean": [0.5], "std": [0.25]}}, other)
    assert checkpoints.weights_digest(other) != checkpoints.weights_digest(one)
    with torch.no_grad():
        next(tiny_net.parameters()).view(-1)[0] += 1e-6  # one value of one tensor
    checkpoints.save_model(tiny_net, meta, other, epoch=3, metrics={"seconds": 1.5})
    assert checkpoints.weights_digest(other) != checkpoints.weights_digest(one)


def test_a_teacher_with_only_a_file_digest_keeps_the_key_it_had(tmp_path):
    """Teachers whose final.json records best_sha256 but no weights digest (the committed
    results of before): the student's identity still carries the file digest."""
    folder = tmp_path / "planted-small_cnn-pgd_at-0123456789ab"
    folder.mkdir()
    (folder / "final.json").write_text(json.dumps({"best_epoch": 1, "best_sha256": "ab" * 32}))
    kd = dict(objective="kd_at", kd={"teacher": str(folder)})
    identity = make_config(kd).identity()["kd"]
    assert identity["teacher_sha256"] == "ab" * 32 and "teacher_weights_sha256" not in identity


def test_a_teacher_without_a_recorded_digest_keeps_the_old_key(tmp_path):
    """Teachers trained before digests were recorded (as the committed results): the
    student's identity is what it was, the teacher named by its folder only."""
    folder = tmp_path / "planted-small_cnn-pgd_at-0123456789ab"
    folder.mkdir()
    (folder / "final.json").write_text(json.dumps({"best_epoch": 1}))
    kd = dict(objective="kd_at", kd={"teacher": str(folder)})
    absent = dict(objective="kd_at", kd={"teacher": "gone/planted-small_cnn-pgd_at-0123456789ab"})
    assert make_config(kd).identity() == make_config(absent).identity()
    assert not {"teacher_sha256", "teacher_weights_sha256"} & set(make_config(kd).identity()["kd"])


def test_a_pt_teacher_is_named_by_its_content(tmp_path, tiny_net):
    path = tmp_path / "teacher.pt"
    meta = {"model": "small_cnn", "num_classes": 3, "in_channels": 1}
    checkpoints.save_model(tiny_net, meta, path)
    kd = dict(objective="kd_at", kd={"teacher": str(path)})
    first = make_config(kd).key()
    assert make_config(kd).identity()["kd"]["teacher_weights_sha256"] == checkpoints.weights_digest(path)
    with torch.no_grad():
        tiny_net.head.bias.add_(1.0)
    checkpoints.save_model(tiny_net, meta, path)
    assert make_config(kd).key() != first


def test_the_finished_run_records_best_sha256_only_on_its_first_final_json(copy, monkeypatch):
    """Adding AutoAttack to an older run must not add a digest: its students keep their keys."""
    final = copy.final()
    del final["best_sha256"], final["best_weights_sha256"]
    (copy.path / "final.json").write_text(json.dumps(final))
    monkeypatch.setattr(final_test, "autoattack_accuracy", lambda *a, **k: 0.5)
    train(tiny(autoattack=True), runs_dir=copy.path.parent, **QUIET)
    assert copy.final()["autoattack"] == {"best": 0.5, "last": 0.5}
    assert not {"best_sha256", "best_weights_sha256"} & set(copy.final())
