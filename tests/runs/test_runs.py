"""Run folders: atomic writes, config keys, reuse of finished runs, and resume after a
crash or a SIGKILL giving the same metrics as an uninterrupted run."""
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from xcf import atomic
from xcf.runs import checkpoints, provenance, lock as run_lock, folder as runs
from xcf.train import runner
from xcf.runs.config import TrainConfig
from xcf.runs.identity import folder_name
from xcf.data.dataset import stratified_indices
from xcf.train.setup import prepare
from xcf.train.runner import train

ROOT = Path(__file__).resolve().parents[2]
QUIET = dict(progress=False, log=lambda s: None)


def tiny(**overrides):
    from conftest import tiny_config

    return tiny_config(**{"epochs": 3, **overrides})


def deterministic(rows):
    """Metrics without wall-clock times, which differ between runs by nature."""
    return [{k: v for k, v in r.items() if k != "seconds"} for r in rows]


def assert_same_metrics(a, b):
    a, b = deterministic(a), deterministic(b)
    assert [r["epoch"] for r in a] == [r["epoch"] for r in b]
    for ra, rb in zip(a, b):
        assert ra.keys() == rb.keys()
        for k in ra:
            if isinstance(ra[k], float):
                assert ra[k] == pytest.approx(rb[k], abs=1e-6), (ra["epoch"], k)
            else:
                assert ra[k] == rb[k], (ra["epoch"], k)


# ----------------------------------------------------------------------------- atomic writes

def test_torn_temp_file_never_replaces_a_good_checkpoint(tmp_path):
    path = tmp_path / "last.pt"
    good = {"model": {"w": torch.arange(5.0)}, "epoch": 3}
    atomic.torch_save(good, path)

    def torn(f):  # a writer that dies halfway
        f.write(b"PK\x03\x04 half a zip file")
        raise KeyboardInterrupt("killed while writing")

    with pytest.raises(KeyboardInterrupt):
        atomic.write(path, torn)
    assert torch.equal(checkpoints.load_torch(path)["model"]["w"], torch.arange(5.0))
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"], "temp file cleaned up"

    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError("cannot pickle")

    with pytest.raises(RuntimeError, match="cannot pickle"):
        atomic.torch_save({"model": {"w": torch.zeros(3)}, "bad": Unpicklable()}, path)
    assert checkpoints.load_torch(path)["epoch"] == 3


def test_each_atomic_writer_round_trips_and_leaves_no_temp(tmp_path):
    atomic.write_bytes(tmp_path / "b.bin", b"\x00\x01")
    atomic.write_text(tmp_path / "t.txt", "é\n")
    atomic.write_json(tmp_path / "j.json", {"b": 1, "a": [0.5]})
    atomic.save_npy(np.arange(4, dtype=np.float32), tmp_path / "m.npy")
    assert (tmp_path / "b.bin").read_bytes() == b"\x00\x01"
    assert (tmp_path / "t.txt").read_text(encoding="utf-8") == "é\n"
    assert (tmp_path / "j.json").read_text() == '{\n  "a": [\n    0.5\n  ],\n  "b": 1\n}\n'
    assert np.load(tmp_path / "m.npy").tolist() == [0.0, 1.0, 2.0, 3.0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.bin", "j.json", "m.npy", "t.txt"]
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / ".x.pt.123.tmp").write_bytes(b"torn")
    assert [p.name for p in atomic.remove_stale_temps(tmp_path)] == [".x.pt.123.tmp"]


def test_runs_go_to_XCF_RUNS_DIR_or_else_runs_in_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("XCF_RUNS_DIR", raising=False)
    assert runs.default_runs_dir() == Path("runs")
    run = train(tiny(epochs=1), **QUIET)
    assert run.path.parent.resolve() == (tmp_path / "runs").resolve()
    monkeypatch.setenv("XCF_RUNS_DIR", str(tmp_path / "elsewhere"))
    assert runs.default_runs_dir() == tmp_path / "elsewhere"
    assert train(tiny(epochs=1), **QUIET).path.parent == tmp_path / "elsewhere"


def test_provenance_records_the_git_commit_of_the_working_directory_or_none(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # not a git work tree: recorded as unknown, no error
    assert provenance.git_commit() == {"commit": None, "dirty": None}
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t", "PATH": os.environ["PATH"], "HOME": str(tmp_path)}
    try:
        for args in (["init", "-q"], ["commit", "-q", "--allow-empty", "-m", "x"]):
            subprocess.run(["git", *args], cwd=tmp_path, env=env, check=True, capture_output=True)
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("git is not available")
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=tmp_path, env=env, text=True,
                          capture_output=True, check=True).stdout.strip()
    assert provenance.environment(torch.device("cpu"))["git"] == {"commit": head, "dirty": False}
    (tmp_path / "new.txt").write_text("x")
    assert provenance.git_commit()["dirty"] is True


def test_leftover_temp_of_a_killed_writer_is_ignored_and_removed(tmp_path):
    cfg = tiny(epochs=2)
    run = train(cfg, runs_dir=tmp_path, **QUIET)
    # Fake a process killed while rewriting last.pt: a torn temp beside the good file, and
    # a half-finished session in the provenance.
    (run.path / "checkpoints" / ".last.pt.99999.tmp").write_bytes(b"PK\x03\x04 torn")
    (run.path / "final.json").unlink()
    state = run.load_state()
    assert state["epoch"] == 2
    again = train(cfg, runs_dir=tmp_path, **QUIET)
    assert again.path == run.path and again.finished
    assert not list(run.path.rglob("*.tmp"))


def test_unreadable_checkpoint_is_named(tmp_path):
    bad = tmp_path / "best.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(checkpoints.CheckpointError, match="best.pt is unreadable"):
        checkpoints.load_torch(bad)
    with pytest.raises(checkpoints.CheckpointError, match="does not exist"):
        checkpoints.load_torch(tmp_path / "none.pt")


# ----------------------------------------------------------------------------- keys

def test_run_key_depends_on_what_changes_the_result_only():
    base = TrainConfig(**tiny())
    assert base.key() == TrainConfig(**tiny()).key()
    # Spelling out a default gives the same run.
    assert TrainConfig(**tiny(eps=None)).key() == TrainConfig(**tiny(eps=8 / 255, alpha=2 / 255)).key()
    # Where it runs, and whether AutoAttack is added at the end, do not change the run.
    assert base.key() == TrainConfig(**tiny(device="auto", autoattack=True)).key()
    # Sections of other objectives do not matter; the active one does.
    assert base.key() == TrainConfig(**tiny(trades={"beta": 1.0})).key()
    t1, t6 = (TrainConfig(**tiny(objective="trades", trades={"beta": b})) for b in (1.0, 6.0))
    assert t1.key() != t6.key()
    for change in ({"seed": 1}, {"lr": 0.1}, {"epochs": 4}, {"amp": "bf16"}, {"eval_n": 30}):
        assert TrainConfig(**tiny(**change)).key() != base.key(), change


def test_saved_config_rebuilds_the_same_run(tmp_path):
    run = train(tiny(epochs=1), runs_dir=tmp_path, **QUIET)
    again = TrainConfig.from_dict(yaml.safe_load((run.path / "config.yaml").read_text()))
    assert run.path.name.endswith(again.key())


# ----------------------------------------------------------------------------- folder contents

def test_log_train_clean_puts_the_clean_training_accuracy_in_the_rows_under_the_same_key(tmp_path):
    plain = train(tiny(epochs=1), runs_dir=tmp_path / "a", **QUIET)
    logged = train(tiny(epochs=1, log_train_clean=True), runs_dir=tmp_path / "b", **QUIET)
    assert plain.path.name == logged.path.name  # logging does not change the trained weights
    row, row_logged = plain.metrics()[0], logged.metrics()[0]
    assert row["train_clean_acc"] is None and 0 <= row_logged["train_clean_acc"] <= 1
    assert row_logged["test_robust_acc"] == row["test_robust_acc"] and row_logged["cas"] == row["cas"]


def test_run_folder_holds_config_provenance_metrics_matrices_checkpoints(tmp_path):
    run = train(tiny(epochs=4, save_matrices_every=3, save_checkpoints_at=[2]), runs_dir=tmp_path, **QUIET)
    rows = run.metrics()
    assert [r["epoch"] for r in rows] == [1, 2, 3, 4]
    for r in rows:
        for key in ("lr", "train_loss", "train_robust_acc", "test_clean_acc",
                    "test_robust_acc", "cas", "cas_clean"):
            assert isinstance(r[key], float) and np.isfinite(r[key]), key
        assert r["train_clean_acc"] is None  # pgd_at logs it only with log_train_clean
        assert r["eval_n"] == 60
    # Matrices: every 3rd epoch, the last, and every epoch that was best when it ended.
    bests, running = set(), -1.0
    for r in rows:
        if r["test_robust_acc"] > running:
            bests.add(r["epoch"])
            running = r["test_robust_acc"]
    saved = {int(p.stem[-4:]) for p in (run.path / "matrices").glob("epoch_*.npy")}
    assert saved == {3, 4} | bests
    C = run.matrix(4)
    assert C.shape == (6, 6) and np.allclose(np.diag(C), 1, atol=1e-5)
    off = ~np.eye(6, dtype=bool)
    assert rows[3]["cas"] == pytest.approx(float(np.clip(C[off], 0, None).sum()), abs=1e-5)
    assert run.matrix(4, clean=True).shape == (6, 6)
    names = {p.name for p in (run.path / "checkpoints").iterdir()}
    assert names == {"last.pt", "best.pt", "epoch_0002.pt"}
    assert checkpoints.load_torch(run.checkpoint_path(2))["epoch"] == 2
    prov = run.provenance()
    assert prov["versions"]["torch"] == torch.__version__ and "commit" in prov["git"]
    (session,) = prov["sessions"]
    assert session["status"] == "finished" and session["seed"] == 0
    assert session["start"] <= session["end"] and session["device"] == "cpu"
    assert run.final()["best_epoch"] == run.best_epoch
    model = run.load_model("last")
    assert not model.training and model.head.out_features == 6


# ----------------------------------------------------------------------------- reuse

def test_finished_run_is_reused_not_retrained(tmp_path, monkeypatch):
    first = train(tiny(epochs=2), runs_dir=tmp_path, **QUIET)
    stamp = {p: p.stat().st_mtime_ns for p in first.path.rglob("*") if p.is_file()}
    monkeypatch.setattr(runner, "train_epoch", lambda *a, **k: pytest.fail("retrained"))
    monkeypatch.setattr(runner, "prepare", lambda *a, **k: pytest.fail("reloaded data"))
    lines = []
    second = train(tiny(epochs=2), runs_dir=tmp_path, progress=False, log=lines.append)
    assert second.path == first.path and "reusing" in lines[0]
    assert {p: p.stat().st_mtime_ns for p in first.path.rglob("*") if p.is_file()} == stamp
    assert len(list(tmp_path.iterdir())) == 1


def test_overwrite_starts_afresh(tmp_path):
    first = train(tiny(epochs=1), runs_dir=tmp_path, **QUIET)
    (first.path / "marker").write_text("old")
    again = train(tiny(epochs=1), runs_dir=tmp_path, overwrite=True, **QUIET)
    assert again.path == first.path and not (again.path / "marker").exists()
    assert_same_metrics(first.metrics(), again.metrics())


def test_a_run_being_trained_is_locked_against_a_second_process(tmp_path):
    cfg = TrainConfig(**tiny(epochs=1))
    run = runs.Run(tmp_path / folder_name(cfg))
    with run.lock():  # as if another process were training it
        with pytest.raises(run_lock.RunLockedError, match=f"pid {os.getpid()}"):
            train(cfg, runs_dir=tmp_path, **QUIET)
        with pytest.raises(run_lock.RunLockedError):
            train(cfg, runs_dir=tmp_path, overwrite=True, **QUIET)
    assert train(cfg, runs_dir=tmp_path, **QUIET).finished  # released with its holder


# ----------------------------------------------------------------------------- resume in process

class Crash(Exception):
    pass


def test_resume_after_a_crash_matches_an_uninterrupted_run(tmp_path):
    ref = train(tiny(), runs_dir=tmp_path / "ref", **QUIET)

    def crash_after_epoch_1(row, model, run):
        if row["epoch"] == 1:
            raise Crash

    with pytest.raises(Crash):
        train(tiny(), runs_dir=tmp_path / "cut", callbacks=[crash_after_epoch_1], **QUIET)
    resumed = train(tiny(), runs_dir=tmp_path / "cut", **QUIET)
    assert_same_metrics(ref.metrics(), resumed.metrics())
    sessions = resumed.provenance()["sessions"]
    assert [s["status"] for s in sessions] == ["failed", "finished"]
    assert sessions[1]["resumed_from_epoch"] == 1


def test_kill_between_commit_and_derived_files_is_repaired(tmp_path, monkeypatch):
    # Die right after last.pt of epoch 2 is committed, before metrics.jsonl, matrices and
    # best.pt are written: resume must rebuild them from the committed state.
    ref = train(tiny(), runs_dir=tmp_path / "ref", **QUIET)
    real = runs.Run.publish

    def publish(self, state):
        if state["epoch"] == 2:
            raise Crash
        real(self, state)

    monkeypatch.setattr(runs.Run, "publish", publish)
    with pytest.raises(Crash):
        train(tiny(), runs_dir=tmp_path / "cut", **QUIET)
    monkeypatch.setattr(runs.Run, "publish", real)
    (cut,) = (tmp_path / "cut").iterdir()
    assert len(runs.Run(cut).metrics()) == 1 and runs.Run(cut).load_state()["epoch"] == 2
    resumed = train(tiny(), runs_dir=tmp_path / "cut", **QUIET)
    assert_same_metrics(ref.metrics(), resumed.metrics())
    for epoch in (1, 2, 3):
        assert np.array_equal(ref.matrix(epoch), resumed.matrix(epoch))
    assert ref.best_epoch == resumed.best_epoch


# ----------------------------------------------------------------------------- SIGKILL

BAR = re.compile(r"epoch 2/3:\s+\d+%\|[^|]*\|\s*(\d+)/(\d+)")


def _cli(cfg_path, runs_dir, **popen):
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    return subprocess.Popen([sys.executable, "-m", "xcf", "train", str(cfg_path), "--runs-dir",
                             str(runs_dir)], cwd=ROOT, env=env, **popen)


def test_sigkill_mid_epoch_then_resume_gives_identical_metrics(tmp_path):
    # Long enough epochs (about a second each) to be caught in the middle of one.
    cfg = tiny(n_train=640, batch_size=32, attack_steps=3, epochs=3)
    cfg_path = tmp_path / "cfg.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg))

    ref = _cli(cfg_path, tmp_path / "ref", stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    assert ref.wait(timeout=300) == 0
    (ref_dir,) = (tmp_path / "ref").iterdir()

    err_path = tmp_path / "stderr.txt"
    with open(err_path, "wb") as err:
        proc = _cli(cfg_path, tmp_path / "cut", stdout=subprocess.DEVNULL, stderr=err)
        deadline = time.time() + 300
        while True:  # wait for epoch 1 to be saved and epoch 2 to be under way
            assert proc.poll() is None, "finished before it could be killed"
            assert time.time() < deadline
            done = [(int(a), int(b)) for a, b in BAR.findall(err_path.read_text(errors="replace"))]
            if any(1 <= a < b for a, b in done):
                break
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
    (cut_dir,) = (tmp_path / "cut").iterdir()
    cut = runs.Run(cut_dir)
    assert [r["epoch"] for r in cut.metrics()] == [1], "killed in the middle of epoch 2"
    assert cut.load_state()["epoch"] == 1 and not cut.finished
    # The killed session still says "running" in the file, but no live process holds the
    # lock (the kernel dropped it with the process): it is shown as interrupted.
    raw = json.loads((cut_dir / "provenance.json").read_text())
    assert raw["sessions"][-1]["status"] == "running" and not cut.locked
    assert cut.status == "interrupted"

    again = _cli(cfg_path, tmp_path / "cut", stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    out, _ = again.communicate(timeout=300)
    assert again.returncode == 0
    assert "resuming" in out.decode() and "after epoch 1" in out.decode()
    assert_same_metrics(runs.Run(ref_dir).metrics(), cut.metrics())
    assert cut_dir.name == ref_dir.name
    sessions = cut.provenance()["sessions"]
    raw = json.loads((cut_dir / "provenance.json").read_text())["sessions"]
    assert [r["status"] for r in raw] == ["interrupted", "finished"]  # written on resume
    assert sessions[0]["status"] == "interrupted" and sessions[0]["end"] is None  # the killed one
    assert sessions[1]["status"] == "finished" and sessions[1]["resumed_from_epoch"] == 1
    ref_best = checkpoints.load_torch(runs.Run(ref_dir).checkpoint_path("best"))
    cut_best = checkpoints.load_torch(cut.checkpoint_path("best"))
    assert ref_best["epoch"] == cut_best["epoch"]
    assert all(torch.allclose(ref_best["model"][k].float(), cut_best["model"][k].float(), atol=1e-6)
               for k in ref_best["model"])


# ----------------------------------------------------------------------------- objectives end to end

@pytest.mark.parametrize("change", [
    {"objective": "standard"},
    {"objective": "fast_at"},
    {"objective": "trades", "trades": {"beta": 3.0}},
    {"objective": "pgd_at", "norm": "l2", "eps": 0.5, "amp": "bf16"},
])
def test_each_objective_runs_end_to_end(tmp_path, change):
    run = train(tiny(epochs=1, **change), runs_dir=tmp_path, **QUIET)
    (row,) = run.metrics()
    assert np.isfinite(row["train_loss"]) and run.finished
    assert (row["train_robust_acc"] is None) == (change["objective"] == "standard")
    assert run.config["objective"] == change["objective"]


def test_autoattack_is_added_to_a_finished_run_without_retraining(tmp_path, monkeypatch):
    # The standard AutoAttack of torchattacks, with a shorter Square (its last attack, run
    # on the samples the three others left correct): 5000 queries on a surviving sample
    # were 80% of this test's time, and what is checked here is xcf's part, not Square's.
    import torchattacks.attacks.autoattack as torchattacks_autoattack

    square = torchattacks_autoattack.Square
    monkeypatch.setattr(torchattacks_autoattack, "Square",
                        lambda *a, **k: square(*a, **{**k, "n_queries": 250}))
    run = train(tiny(epochs=1), runs_dir=tmp_path, **QUIET)
    assert "autoattack" not in run.final()
    monkeypatch.setattr(runner, "train_epoch", lambda *a, **k: pytest.fail("retrained"))
    again = train(tiny(epochs=1, autoattack=True, autoattack_n=6), runs_dir=tmp_path, **QUIET)
    assert again.path == run.path
    aa = again.final()["autoattack"]
    # AutoAttack cannot do better than the clean accuracy of the same samples.
    for which in ("best", "last"):
        model = again.load_model(which)
        setup = prepare(TrainConfig(**tiny(epochs=1, autoattack_n=6)))
        idx = stratified_indices(
            setup.y_eval, 6, torch.Generator().manual_seed(0))
        with torch.no_grad():
            clean = (model(setup.x_eval[idx]).argmax(1) == setup.y_eval[idx]).float().mean().item()
        assert 0 <= aa[which] <= clean + 1e-9


def test_the_recorded_command_names_no_path_of_this_machine():
    """Committed provenance travels: the interpreter is 'python', paths under the working
    directory are relative, other absolute paths keep only their name."""
    import sys

    from xcf.runs.provenance import command

    argv = [sys.executable, "tools/run_claims.py", "/home/u/xcf/tools/a.yaml", "--only", "^C1",
            "--export-to", "/tmp/export", "--out=/srv/data/runs", "-v"]
    assert command(argv, cwd="/home/u/xcf") == (
        "python tools/run_claims.py tools/a.yaml --only ^C1 --export-to .../export"
        " --out=.../runs -v")
