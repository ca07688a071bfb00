"""Locks that wait (xcf.runs.lock): a second process waits for the run another one trains and
reuses it; a wait that runs out names the holder and the fix; the lock of a dead holder
(a dead pid on this host, a stale heartbeat from another host, a SIGKILL) is taken over;
a holder that lost its lock stops before it writes.  The lock files written by hand
follow the format of the xcf.runs.lock docstring."""
import json
import os
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
import yaml

from xcf.runs import lock as run_lock, folder as runs
from xcf.runs.config import TrainConfig
from xcf.runs.identity import folder_name
from xcf.inputs import ArgumentError
from xcf.train.runner import train

ROOT = Path(__file__).resolve().parents[2]
QUIET = dict(progress=False, log=lambda s: None)


def tiny(**overrides):
    from conftest import tiny_config

    return tiny_config(**{"epochs": 3, **overrides})


def run_of(cfg, runs_dir):
    c = TrainConfig(**cfg)
    return runs.Run(runs_dir / folder_name(c))


# A holder in a process of its own: trains the run with a pause after each epoch (so the
# test can act while it holds the lock), or only holds the lock.
HOLDER = textwrap.dedent("""
    import sys, time, yaml
    from xcf.train.runner import train
    from xcf.runs.folder import Run
    cfg, runs_dir, mode = yaml.safe_load(open(sys.argv[1])), sys.argv[2], sys.argv[3]
    pause = float(sys.argv[4])

    def report(row, model, run):
        print(f"epoch {row['epoch']}", flush=True)
        time.sleep(pause)

    if mode == "train":
        train(cfg, runs_dir=runs_dir, progress=False, log=lambda s: None, callbacks=[report])
    else:
        with Run(runs_dir).lock():
            print("held", flush=True)
            time.sleep(pause)
""")


def start_holder(tmp_path, cfg, target, mode, pause):
    script, cfg_path = tmp_path / "holder.py", tmp_path / "cfg.yaml"
    script.write_text(HOLDER)
    cfg_path.write_text(yaml.safe_dump(cfg))
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    return subprocess.Popen([sys.executable, str(script), str(cfg_path), str(target), mode,
                             str(pause)], stdout=subprocess.PIPE, text=True, env=env, cwd=ROOT)


def wait_for_line(proc, text, timeout=120):
    deadline = time.time() + timeout
    for line in proc.stdout:
        if text in line:
            return
        assert time.time() < deadline
    raise AssertionError(f"the holder ended (status {proc.wait()}) before printing {text!r}")


def write_lock(run, **record):
    """A lock file as another process would have written it (the documented record)."""
    run.path.mkdir(parents=True, exist_ok=True)
    full = {"pid": 1, "host": socket.gethostname(), "pid_namespace": None, "pid_start": None,
            "started": "2026-01-01T00:00:00+0000", "token": "someone-else", **record}
    (run.path / ".lock").write_text(json.dumps(full))
    return run.path / ".lock"


def this_pid_namespace():
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return None


# ----------------------------------------------------------------------------- waiting

def test_a_second_process_waits_for_the_first_and_reuses_the_run_it_finished(tmp_path):
    cfg = tiny()
    holder = start_holder(tmp_path, cfg, tmp_path / "runs", "train", 1.0)
    try:
        wait_for_line(holder, "epoch 1")  # the holder trains, and holds the lock
        run = run_of(cfg, tmp_path / "runs")
        assert run.locked and run.status == "running"
        lines = []
        t0 = time.monotonic()
        got = train(cfg, runs_dir=tmp_path / "runs", progress=False, log=lines.append, wait=120)
        waited = time.monotonic() - t0
        assert holder.wait(timeout=60) == 0
    finally:
        holder.kill()
    # It waited for the holder (two more epochs, a 1 s pause after each), then reused the
    # finished run: one session, the holder's; nothing trained twice.
    assert waited >= 1.0
    assert got.path == run.path and got.finished and not got.locked
    waiting = [line for line in lines if line.startswith("waiting for")]
    assert waiting and f"pid {holder.pid} on host {socket.gethostname()}" in waiting[0]
    assert any(line.startswith("reusing finished run") for line in lines)
    sessions = got.provenance()["sessions"]
    assert [(s["pid"], s["status"]) for s in sessions] == [(holder.pid, "finished")]
    assert [r["epoch"] for r in got.metrics()] == [1, 2, 3]
    assert not (run.path / ".lock").exists()  # released by its holder


def test_a_wait_that_runs_out_names_the_holder_and_the_fix(tmp_path):
    cfg = tiny(epochs=1)
    run = run_of(cfg, tmp_path / "runs")
    holder = start_holder(tmp_path, cfg, run.path, "lock", 120)
    try:
        wait_for_line(holder, "held")
        who = f"pid {holder.pid} on host {socket.gethostname()}"
        t0 = time.monotonic()
        with pytest.raises(run_lock.RunLockedError, match="gave up after waiting 1 s") as err:
            train(cfg, runs_dir=tmp_path / "runs", wait=1, **QUIET)
        assert 1.0 <= time.monotonic() - t0 < 30
        assert who in str(err.value) and "--wait SECONDS" in str(err.value)
        assert "wait=None" in str(err.value) and "stop that process" in str(err.value)
        t0 = time.monotonic()
        with pytest.raises(run_lock.RunLockedError, match="gave up at once"):
            train(cfg, runs_dir=tmp_path / "runs", wait=0, **QUIET)
        assert time.monotonic() - t0 < 5
        # The command line: exit status 1, one message naming the holder and the fix.
        cfg_path = tmp_path / "cfg.yaml"
        env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
        cli = subprocess.run([sys.executable, "-m", "xcf", "train", str(cfg_path), "--runs-dir",
                              str(tmp_path / "runs"), "--wait", "0"], capture_output=True,
                             text=True, env=env, cwd=ROOT, timeout=120)
        assert cli.returncode == 1, cli.stderr
        assert who in cli.stderr and "--wait SECONDS" in cli.stderr
        assert not (run.path / "config.yaml").exists()  # nothing was trained meanwhile
    finally:
        holder.kill()
        holder.wait()


def test_wait_must_be_a_number_of_seconds(tmp_path):
    run = runs.Run(tmp_path / "r")
    for bad in (-1, float("inf"), "10", True):
        with pytest.raises(ArgumentError, match=f"wait {bad!r} is not a number of seconds"):
            with run.lock(wait=bad):
                pass


# ----------------------------------------------------------------------------- stale locks

def test_the_lock_of_a_dead_process_on_this_host_is_taken_over_at_once(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    cfg = tiny(epochs=1)
    run = run_of(cfg, tmp_path)
    write_lock(run, pid=dead.pid, pid_namespace=this_pid_namespace())
    assert not run.locked  # its holder is gone
    t0 = time.monotonic()
    got = train(cfg, runs_dir=tmp_path, wait=0, **QUIET)  # wait=0: no waiting involved
    assert time.monotonic() - t0 < 60 and got.finished
    assert not (run.path / ".lock").exists()


def test_a_live_pid_on_this_host_holds_its_lock_but_the_same_pid_elsewhere_does_not(tmp_path):
    # pid 1 lives on this host.  Its lock holds while it lives; the same pid recorded for
    # another host says nothing about this host, and there only the heartbeat counts.
    run = runs.Run(tmp_path / "r")
    lock = write_lock(run, pid=1, pid_namespace=this_pid_namespace())
    assert run.locked
    write_lock(run, pid=1, host="another-host.example")
    assert run.locked  # a fresh heartbeat
    old = time.time() - 2 * run_lock.STALE_SECONDS
    os.utime(lock, (old, old))
    assert not run.locked  # no heartbeat for longer than the staleness limit


def test_a_stale_heartbeat_of_another_host_is_taken_over_after_the_staleness_limit(tmp_path):
    run = runs.Run(tmp_path / "r")
    lock = write_lock(run, pid=4242, host="another-host.example")
    stop = threading.Event()

    def beat():  # the other host's holder, alive: its heartbeat every 0.1 s
        while not stop.wait(0.1):
            os.utime(lock)

    beating = threading.Thread(target=beat)
    beating.start()
    try:
        t0 = time.monotonic()
        with pytest.raises(run_lock.RunLockedError, match="pid 4242 on host another-host.example"):
            with run.lock(wait=1.5, stale_after=0.5):
                pass
        assert time.monotonic() - t0 >= 1.5  # a live heartbeat is never taken over
    finally:
        stop.set()
        beating.join()
    lines = []
    t0 = time.monotonic()
    with run.lock(wait=30, stale_after=0.5, log=lines.append):  # the holder went silent
        taken = time.monotonic() - t0
        record = json.loads(lock.read_text())
        assert record["pid"] == os.getpid() and record["host"] == socket.gethostname()
    assert 0.5 <= taken < 10
    assert any("taking over" in line and "no heartbeat" in line for line in lines)
    assert not lock.exists()


def test_a_sigkilled_holder_leaves_no_stuck_lock_and_its_session_reads_interrupted(tmp_path):
    cfg = tiny(epochs=2)
    holder = start_holder(tmp_path, cfg, tmp_path / "runs", "train", 120)
    try:
        wait_for_line(holder, "epoch 1")
    finally:
        holder.kill()  # SIGKILL: no Python code runs, the lock file stays behind
        holder.wait()
    run = run_of(cfg, tmp_path / "runs")
    assert (run.path / ".lock").exists() and not run.locked
    assert run.status == "interrupted"
    got = train(cfg, runs_dir=tmp_path / "runs", wait=0, **QUIET)  # resumes at once
    sessions = got.provenance()["sessions"]
    assert [s["status"] for s in sessions] == ["interrupted", "finished"]
    assert sessions[1]["resumed_from_epoch"] == 1


def test_a_lock_of_an_older_xcf_is_held_while_its_flock_is(tmp_path):
    import fcntl

    run = runs.Run(tmp_path / "r")
    run.path.mkdir()
    with open(run.path / ".lock", "a+") as f:  # as older xcf held it: its pid, and flock
        f.write("4242")
        f.flush()
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        assert run.locked
        with pytest.raises(run_lock.RunLockedError, match="pid 4242"):
            with run.lock():
                pass
        fcntl.flock(f, fcntl.LOCK_UN)
    assert not run.locked  # left behind by a process that ended
    with run.lock():
        assert run.locked


# ----------------------------------------------------------------------------- a lost lock

def test_a_holder_that_lost_its_lock_stops_before_its_next_commit(tmp_path):
    def taken_over_after_epoch_1(row, model, run):
        if row["epoch"] == 1:  # another process broke the lock and took it
            (run.path / ".lock").write_text(json.dumps({"pid": 4242, "host": "elsewhere",
                                                        "token": "theirs"}))

    with pytest.raises(run_lock.RunLockedError, match="lost the run's lock"):
        train(tiny(), runs_dir=tmp_path, callbacks=[taken_over_after_epoch_1], **QUIET)
    (path,) = tmp_path.iterdir()
    run = runs.Run(path)
    assert run.load_state()["epoch"] == 1  # epoch 2 was not committed over the new holder
    assert json.loads((path / ".lock").read_text())["token"] == "theirs"  # theirs, kept
