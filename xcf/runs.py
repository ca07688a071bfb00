"""Run folders: one folder per training configuration, written so that a kill never corrupts it.

A run folder is named ``<dataset>-<model>-<objective>-<key>``, where ``key`` is a hash of
the configuration's identity (:meth:`xcf.config.TrainConfig.key`), and holds::

    config.yaml          the resolved configuration (what was hashed, plus runtime options)
    provenance.json      git commit, versions, device, seed, one entry per session
                         (start/end time, command, status)
    metrics.jsonl        one JSON object per finished epoch
    matrices/            C (Eq. 6) per chosen epoch: epoch_0010.npy (adversarial, Algorithm 1)
                         and clean_epoch_0010.npy (clean inputs, Fig. 9), float32 (K, K)
    checkpoints/last.pt  full training state of the last finished epoch (the commit point)
    checkpoints/best.pt  model of the best epoch (:func:`xcf.selection.select_best`)
    checkpoints/epoch_0010.pt   models of chosen epochs
    final.json           written when training has finished (best/last summary, AutoAttack)

**Write order.**  ``checkpoints/last.pt`` is the single commit point of an epoch: it holds
the model, optimiser, RNG states, the metrics history and the current epoch's matrices.
Everything else (metrics.jsonl, matrices, best/epoch checkpoints) is derived from it by
:meth:`Run.publish`, which is idempotent and is repeated on resume, so a kill between the
commit and the derived writes loses nothing.  Every file is written atomically
(:mod:`xcf.atomic`), so a reader sees either the old or the new version, never a torn one.
Checkpoint formats live in :mod:`xcf.checkpoints`, provenance in :mod:`xcf.provenance`.

**Reuse checks itself.**  :meth:`Run.repair` (called by :func:`xcf.runner.train` before a
run is reused or resumed) verifies the derived files against ``last.pt``: metrics.jsonl
is rewritten from the committed history when a line is torn, missing, or of an epoch
after last.pt's (training restarts from last.pt); a final.json that disagrees with it,
or a best.pt that is not the one final.json records, is an error naming the file; a
session whose process died is marked "interrupted".  A session still marked "running" is shown as
"interrupted" by :meth:`Run.provenance` when no live process holds the run's lock.

**The lock** (:meth:`Run.lock`) keeps two processes (a notebook and a Slurm job, say) from
training one folder, on a local disk or on the network file systems of clusters (NFS,
Lustre, GPFS), where ``flock`` may be local to each client or missing.  It is the file
``.lock``, created atomically: the record (JSON: ``pid``, ``host``, ``pid_namespace``,
``pid_start``, ``started``, ``token``, ``command``) is written to a private file and
hard-linked to ``.lock``, which fails when ``.lock`` exists (the classic NFS-safe lock; on
a file system without hard links, ``os.open(O_CREAT | O_EXCL)``).  The holder's heartbeat
is the file's modification time, refreshed every :data:`HEARTBEAT_SECONDS` by a thread and
by the trainer before each commit, so the record is written once and never read torn.
The holder deletes the file when it ends, an exception included.  A lock is *stale*,
and the next process takes it over, when

- its holder ran on this host (same host name and pid namespace) and that process has
  died: at once (SIGKILL included; the pid's start time tells a reused pid apart);
- its holder ran on another host and its heartbeat is older than the staleness limit
  (:data:`STALE_SECONDS`, 10 min) by this host's clock, or a waiter has watched it not
  change for that long by its own clock.

A stale lock is removed under a guard folder (``.lock.break``, ``mkdir`` is atomic), and
only if it still holds the record judged stale, so two waiters never remove each other's
new lock.  :meth:`Run.lock` waits for a live holder (``wait`` seconds; ``None``: as long
as it lives) with a progress line, or raises :class:`RunLockedError` naming the holder
and the fix.  Limits: clocks of the hosts must agree to within the staleness limit
(NTP gives milliseconds); a clock behind only delays a takeover, one ahead by more than
the limit can take over a live lock.  A holder that stalls for longer than the limit (a
suspended laptop, a hung file server) can lose its lock: its next heartbeat sees another
token, and the trainer stops with :class:`RunLockedError` before its next commit.  A
``.lock`` of an older xcf (a pid, held with ``flock``) counts as held while ``flock``
says so.
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import re
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Optional

import numpy as np
import torch
import torch.nn as nn
import yaml

from . import atomic
from .checkpoints import (FORMAT_VERSION, STATE_FORMAT, CheckpointError, Which, checkpoint_path,
                          file_digest, find_checkpoint, load_model, load_torch, model_checkpoint)
from .config import ConfigFileError, read_config_file
from .inputs import ArgumentError
from .provenance import RUNNING, command, mark_interrupted, now

__all__ = ["HEARTBEAT_SECONDS", "STALE_SECONDS", "Run", "LockHolder", "RunLockedError",
           "RunFileError", "find_run", "default_runs_dir"]

# The holder of a run's lock refreshes its heartbeat this often (seconds).
HEARTBEAT_SECONDS = 30.0
# A lock of another host whose heartbeat is older than this (seconds) is stale.
STALE_SECONDS = 600.0
# How often a waiter looks at the lock again, and when it writes a progress line: every
# 30 s, then every tenth of the time waited so far (a line an hour after ten hours).
POLL_SECONDS = 0.5
REPORT_SECONDS = 30.0


class RunLockedError(RuntimeError):
    """Another live process is working on the same run folder (or this process lost its
    lock to another one); the message names the holder and the fix."""


class RunFileError(ValueError):
    """A file of a run folder is missing, garbled, or disagrees with the rest of the run;
    the message names the file."""


def default_runs_dir() -> Path:
    """Where run folders go unless told otherwise: ``$XCF_RUNS_DIR`` if set, else ``./runs``
    (relative to the working directory, never to where the library is installed)."""
    return Path(os.environ.get("XCF_RUNS_DIR") or "runs")


# =========================================================================== the run folder

class Run:
    """A run folder (see the module docstring).  Cheap to create: nothing is read until
    asked for.

    >>> run = Run("runs/planted-small_cnn-pgd_at-3f2a9c0d1e4b")
    >>> run.metrics()[-1]["test_robust_acc"], run.best_epoch
    >>> model = run.load_model("best")
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._held: Optional[_HeldLock] = None  # the lock this object holds, if any

    def __repr__(self) -> str:
        return f"Run({str(self.path)!r})"

    # ------------------------------------------------------------------ paths
    @property
    def key(self) -> str:
        return self.path.name.rsplit("-", 1)[-1]

    @property
    def state_path(self) -> Path:
        return self.path / "checkpoints" / "last.pt"

    def checkpoint_path(self, which: Which) -> Path:
        """``checkpoints/best.pt``, ``last.pt`` or ``epoch_NNNN.pt``."""
        return checkpoint_path(self.path, which)

    def matrix_path(self, epoch: int, clean: bool = False) -> Path:
        return self.path / "matrices" / f"{'clean_' if clean else ''}epoch_{int(epoch):04d}.npy"

    # ------------------------------------------------------------------ reading
    @property
    def config(self) -> dict:
        """The resolved configuration this run was created with."""
        path = self.path / "config.yaml"
        if not path.is_file():
            raise RunFileError(f"{self.path} is not a run folder (no config.yaml)")
        try:
            data = read_config_file(path)  # the config reader's checks, as a run-file error
        except ConfigFileError as err:
            raise RunFileError(f"{err}; the run folder's config was emptied or edited") from err
        if not data:
            raise RunFileError(f"{path} must hold the run's config mapping, got {data!r:.60}; "
                               "it was emptied or edited")
        return data

    @property
    def finished(self) -> bool:
        return (self.path / "final.json").is_file()

    def final(self) -> dict:
        """Summary written when training finished ({} before that)."""
        return _read_object(self.path / "final.json")

    def provenance(self) -> dict:
        """provenance.json (``{}`` before the first session).  A session still marked
        "running" while no live process holds the run's lock is shown as "interrupted":
        its process died (SIGKILL, power loss) before it could end the session."""
        prov = self._read_provenance()
        if any(s.get("status") == RUNNING for s in prov.get("sessions") or []
               if isinstance(s, dict)) and not self.locked:
            mark_interrupted(prov)
        return prov

    @property
    def status(self) -> Optional[str]:
        """The last session's status: "running", "finished", "failed", "interrupted"
        (its process died), or ``None`` before the first session."""
        sessions = self.provenance().get("sessions") or []
        return sessions[-1].get("status") if sessions else None

    @property
    def locked(self) -> bool:
        """Whether a live process (this one included) holds the run's lock now (see the
        module docstring for when a holder counts as gone)."""
        holder = self.lock_holder()
        return holder is not None and holder.live

    def lock_holder(self, stale_after: float = STALE_SECONDS) -> Optional["LockHolder"]:
        """Who holds the run's lock, as ``.lock`` says (``None``: nobody)."""
        return _read_lock(self.path / ".lock", stale_after)

    def _read_provenance(self) -> dict:
        return _read_object(self.path / "provenance.json")

    def metrics(self) -> list[dict]:
        """One dict per finished epoch, in order (``[]`` before the first).  A line that is
        not JSON (a torn or edited file) raises :class:`RunFileError` naming file and line."""
        path = self.path / "metrics.jsonl"
        if not path.is_file():
            return []
        rows, bad = _parse_metrics(path)
        if bad:
            raise RunFileError(f"{path} line {bad[0]} is not JSON (a half-written or edited "
                               "line); train the run again (xcf.train / xcf train) to repair "
                               "it from checkpoints/last.pt")
        return rows

    @property
    def best_epoch(self) -> Optional[int]:
        """Epoch of the best checkpoint so far (``None`` before the first epoch).

        A finished run says it in final.json, which committed result folders keep even
        though they leave the checkpoints out."""
        final = self.final()
        if "best_epoch" in final:
            return int(final["best_epoch"])
        path = self.checkpoint_path("best")
        return int(load_torch(path)["epoch"]) if path.is_file() else None

    def resolve_epoch(self, which: Which) -> int:
        """``"best"`` / ``"last"`` / an int -> the epoch number it denotes."""
        if which == "best":
            epoch = self.best_epoch
        elif which == "last":
            rows = self.metrics()
            epoch = rows[-1]["epoch"] if rows else None
        else:
            epoch = int(which)
        if epoch is None:
            raise CheckpointError(f"{self.path} has no finished epoch yet")
        return epoch

    def matrix(self, which: Which = "best", clean: bool = False) -> np.ndarray:
        """C (Eq. 6) of an epoch, (K, K) float32; ``clean=True`` for clean inputs."""
        epoch = self.resolve_epoch(which)
        path = self.matrix_path(epoch, clean)
        if not path.is_file():
            saved = sorted(p.stem for p in (self.path / "matrices").glob("epoch_*.npy"))
            raise FileNotFoundError(f"no matrix saved for epoch {epoch} in {self.path}; "
                                    f"saved: {saved}")
        return np.load(path)

    def find_checkpoint(self, which: Which) -> Path:
        """The file holding the model of ``which``: ``best``, ``last``, or an epoch number
        (see :func:`xcf.checkpoints.find_checkpoint`)."""
        return find_checkpoint(self.path, which)

    def load_model(self, which: Which = "best", device: str | torch.device = "cpu") -> nn.Module:
        """Rebuild the model and load the weights of ``which``; returned in eval mode."""
        return load_model(self.find_checkpoint(which), device=device)

    # ------------------------------------------------------------------ writing
    @contextlib.contextmanager
    def lock(self, wait: Optional[float] = 0, *, log: Optional[Callable[[str], None]] = None,
             stale_after: float = STALE_SECONDS) -> Iterator["Run"]:
        """Hold the run's lock while training it, so that two processes (a notebook and a
        job, say) never write the same folder; safe on network file systems (see the
        module docstring).  A lock whose holder died is taken over.

        ``wait``: seconds to wait for a live holder (0: not at all; ``None``: as long as
        it lives), writing a progress line to ``log`` every 30 s (then less often);
        ``stale_after``: the staleness limit of another host's heartbeat.  Raises
        :class:`RunLockedError` naming the holder and the fix when the wait runs out,
        and at once when the holder is this very process (waiting would never end)."""
        self.path.mkdir(parents=True, exist_ok=True)
        held = self._await(wait, log, stale_after, take=True)
        self._held = held
        try:
            yield self
        finally:
            self._held = None
            held.release()

    def wait_while_locked(self, wait: Optional[float] = None, *,
                          log: Optional[Callable[[str], None]] = None,
                          stale_after: float = STALE_SECONDS) -> None:
        """Return once no live process holds the run's lock (at once if none does),
        without taking it; ``wait``, ``log`` and errors as for :meth:`lock`."""
        self._await(wait, log, stale_after, take=False)

    def heartbeat(self) -> None:
        """Refresh the heartbeat of the lock this object holds (nothing without one).
        Raises :class:`RunLockedError` when another process has taken the lock over
        (this one stalled for longer than the staleness limit): stop before writing."""
        if self._held is not None and not self._held.beat():
            raise RunLockedError(f"{self.path}: this process (pid {os.getpid()}) lost the run's "
                                 "lock to another process after going without a heartbeat for "
                                 "longer than the staleness limit (suspended, or a hung file "
                                 "system?); stopped before writing more. The other process "
                                 "trains the run now: wait for it, or stop it and train again")

    def _await(self, wait: Optional[float], log: Optional[Callable[[str], None]],
               stale_after: float, *, take: bool) -> Optional["_HeldLock"]:
        """The waiting loop of :meth:`lock` (``take``) and :meth:`wait_while_locked`."""
        if wait is not None and (isinstance(wait, bool) or not isinstance(wait, (int, float))
                                 or not 0 <= wait < float("inf")):
            raise ArgumentError(f"wait {wait!r} is not a number of seconds >= 0; pass 0 (fail "
                                "at once), a number of seconds, or None (wait as long as the "
                                "holder lives)")
        if not stale_after > 0:
            raise ArgumentError(f"stale_after {stale_after!r} is not a number of seconds > 0; "
                                f"pass the staleness limit, e.g. {STALE_SECONDS:g}")
        path = self.path / ".lock"
        start = time.monotonic()
        seen, seen_since, next_report = None, start, 0.0
        while True:
            holder = _read_lock(path, stale_after)
            if holder is None:
                if not take:
                    return None
                record, token = _own_record()
                if _create_lock(path, record):
                    return _HeldLock(path, token)
                continue  # another process created it first
            if holder.this_process:
                raise RunLockedError(f"{self.path} is locked by this process itself (pid "
                                     f"{os.getpid()}, since {holder.started}): waiting for it "
                                     "would never end. Let the training in this process end "
                                     "first (a callback or a second thread training the same "
                                     "run?)")
            now_ = time.monotonic()
            if (holder.raw, holder.mtime) != seen:  # a new holder, or a new heartbeat
                seen, seen_since = (holder.raw, holder.mtime), now_
            if not holder.live or (not holder.checked and now_ - seen_since > stale_after):
                if not take:
                    return None
                if log is not None:
                    log(f"taking over the lock of {self.path.name} from {holder.describe()}: "
                        f"{holder.why_stale(stale_after)}")
                if not _break_stale(path, holder.raw):
                    time.sleep(POLL_SECONDS)  # another waiter is breaking it
                continue
            waited = now_ - start
            if wait is not None and waited >= wait:
                raise RunLockedError(self._locked_message(holder, wait, stale_after))
            if log is not None and waited >= next_report:
                log(f"waiting for {self.path.name} (trained by {holder.describe()}) ... "
                    f"{waited:.0f} s")
                next_report = waited + max(REPORT_SECONDS, waited / 10)
            pause = POLL_SECONDS if wait is None else min(POLL_SECONDS, wait - waited)
            time.sleep(max(pause, 0.01))

    def _locked_message(self, holder: "LockHolder", wait: float, stale_after: float) -> str:
        gave_up = "at once (wait=0)" if wait == 0 else f"after waiting {wait:g} s"
        return (f"{self.path} is being trained by another process: {holder.describe()}, last "
                f"heartbeat {holder.heartbeat_age:.0f} s ago; gave up {gave_up}. Wait for it "
                "(train(..., wait=SECONDS), or wait=None for as long as it lives; xcf train "
                "--wait SECONDS), or stop that process (the run then resumes from its last "
                "finished epoch). A lock whose holder died is taken over without help: at "
                f"once on the same host, after {stale_after:g} s without a heartbeat from "
                "another host")

    def write_config(self, config: Mapping[str, Any]) -> None:
        atomic.write_text(self.path / "config.yaml", yaml.safe_dump(dict(config), sort_keys=False))

    def save_state(self, state: Mapping[str, Any]) -> None:
        """Commit an epoch: write ``checkpoints/last.pt`` atomically (see module docstring)."""
        atomic.torch_save(dict(state, format=STATE_FORMAT, version=FORMAT_VERSION), self.state_path)

    def load_state(self) -> Optional[dict]:
        """The last committed training state, or ``None`` if no epoch has finished."""
        if not self.state_path.is_file():
            return None
        state = load_torch(self.state_path)
        if state.get("format") != STATE_FORMAT:
            raise CheckpointError(f"{self.state_path} is not an xcf training state")
        return state

    def publish(self, state: Mapping[str, Any]) -> None:
        """Write the files derived from a committed ``state``: metrics.jsonl (whole history),
        the matrices and model checkpoints it lists under ``publish``.  Idempotent."""
        lines = "".join(_row_text(rec) + "\n" for rec in state["history"])
        atomic.write_text(self.path / "metrics.jsonl", lines)
        todo = state.get("publish", {})
        epoch = int(state["epoch"])
        for name, C in todo.get("matrices", {}).items():
            atomic.save_npy(np.asarray(C, dtype=np.float32),
                            self.matrix_path(epoch, clean=(name == "C_clean")))
        model_ckpt = model_checkpoint(state["model"], state["meta"], epoch,
                                      state["history"][-1] if state["history"] else {})
        for which in todo.get("checkpoints", []):
            atomic.torch_save(model_ckpt, self.checkpoint_path(which))

    def start_session(self, environment: Mapping[str, Any], **fields: Any) -> None:
        """Append a session (one process working on the run) to the provenance."""
        prov = self._read_provenance()
        mark_interrupted(prov)  # called under the lock: no earlier session is still live
        prov.setdefault("created", now())
        prov.update(environment)
        sessions = prov.setdefault("sessions", [])
        sessions.append({"start": now(), "end": None, "status": "running",
                         "command": command(), "pid": os.getpid(), **fields})
        atomic.write_json(self.path / "provenance.json", prov)

    def end_session(self, status: str, **fields: Any) -> None:
        """End the last session with ``status``; nothing is written once this object lost
        its lock (:meth:`heartbeat`): the last session is then the new holder's."""
        if self._held is not None and self._held.lost:
            return
        prov = self._read_provenance()
        if prov.get("sessions"):
            prov["sessions"][-1].update(end=now(), status=status, **fields)
        atomic.write_json(self.path / "provenance.json", prov)

    def write_final(self, summary: Mapping[str, Any]) -> None:
        atomic.write_json(self.path / "final.json", dict(summary))

    # ------------------------------------------------------------------ checking itself
    def repair(self) -> list[str]:
        """Verify the derived files against ``checkpoints/last.pt`` (the commit point) and
        repair them; returns one line per repair (``[]``: all was in order, nothing written).

        - metrics.jsonl must hold last.pt's history, row for row: a half-written line, a
          row of an epoch after last.pt's (training restarts from last.pt) or a missing
          row gets the file rewritten from that history;
        - final.json must agree with last.pt (the run finished all its epochs, best and
          last epoch as last.pt has them) and a recorded ``best_sha256`` must be the
          digest of checkpoints/best.pt; else :class:`RunFileError` naming the file and
          the fix (not rewritten: it may hold results a rewrite could not vouch for);
        - sessions of dead processes still marked "running" become "interrupted".

        Every write is atomic (:mod:`xcf.atomic`) and done under the run's lock, taken
        only when something needs writing; nothing is deleted.
        """
        if not self.path.is_dir() or self.locked:
            return []  # nothing yet, or its live holder keeps it in order
        if not self._problems():
            return []
        with self.lock():
            return self._repair_locked()

    def _problems(self) -> list[str]:
        """What :meth:`repair` would fix (read only)."""
        problems = []
        if any(s.get("status") == RUNNING for s in self._read_provenance().get("sessions") or []
               if isinstance(s, dict)):
            problems.append("provenance")
        state = self._committed()
        if state is None:
            return problems
        self._check_final(state)
        if self._metrics_problem(state):
            problems.append("metrics")
        return problems

    def _committed(self) -> Optional[dict]:
        """The small entries of last.pt (tensors memory-mapped, not read), or ``None``."""
        if not self.state_path.is_file():
            return None
        state = load_torch(self.state_path, mmap=True)
        if state.get("format") != STATE_FORMAT:
            raise CheckpointError(f"{self.state_path} is not an xcf training state")
        return state

    def _metrics_problem(self, state: Mapping[str, Any]) -> Optional[str]:
        path = self.path / "metrics.jsonl"
        want = [_row_text(r) for r in state["history"]]
        if not path.is_file():
            return "is missing" if want else None
        rows, bad = _parse_metrics(path)
        if [_row_text(r) for r in rows] == want and not bad:
            return None
        epoch = int(state["epoch"])
        parts = []
        if bad:
            parts.append(f"dropped {len(bad)} line(s) that are not JSON (line {bad[0]}: "
                         "half-written)")
        later = [r.get("epoch") for r in rows if isinstance(r.get("epoch"), int)
                 and r["epoch"] > epoch]
        if later:
            parts.append(f"dropped rows of epochs {later}, after last.pt's epoch {epoch}")
        have = {_row_text(r) for r in rows}
        missing = [r["epoch"] for r in state["history"] if _row_text(r) not in have]
        if missing:
            parts.append(f"restored the rows of epochs {missing} from last.pt")
        return "; ".join(parts) or "rewritten from last.pt's history"

    def _check_final(self, state: Mapping[str, Any]) -> None:
        """final.json, if any, must agree with last.pt; else :class:`RunFileError`.  It is
        not rewritten: it may hold results (AutoAttack) that a rewrite could not vouch for,
        so the user decides (moved away, it is rewritten from last.pt by the next train)."""
        path = self.path / "final.json"
        if not path.is_file():
            return
        fix = ("restore it, or move it away and train again to rewrite it from "
               "checkpoints/last.pt")
        try:
            final = _read_json(path)
        except RunFileError as err:
            raise RunFileError(f"{err}; {fix}") from err
        if not isinstance(final, dict):
            raise RunFileError(f"{path} must hold a JSON object, got {final!r:.60}; {fix}")
        epoch, epochs = int(state["epoch"]), int(self.config["epochs"])
        if epoch < epochs:
            raise RunFileError(f"{path} marks the run finished, but checkpoints/last.pt holds "
                               f"epoch {epoch} of {epochs}; move final.json away and train "
                               "again to resume the run")
        best = state.get("best", {}).get("epoch")
        last = final.get("last") if isinstance(final.get("last"), dict) else {}
        if final.get("best_epoch") != best or last.get("epoch") != epoch:
            raise RunFileError(f"{path} gives best epoch {final.get('best_epoch')!r} and last "
                               f"epoch {last.get('epoch')!r}, but checkpoints/last.pt has "
                               f"{best} and {epoch}: it was edited; {fix}")
        digest = final.get("best_sha256")
        best_pt = self.checkpoint_path("best")
        if digest and best_pt.is_file() and file_digest(best_pt) != digest:
            raise RunFileError(f"{best_pt} is not the best checkpoint recorded in {path} "
                               f"(sha256 {digest[:12]}...): it was replaced after training; "
                               "restore it, or train the run afresh (overwrite=True)")

    def _repair_locked(self) -> list[str]:
        done = []
        prov = self._read_provenance()
        if mark_interrupted(prov):
            atomic.write_json(self.path / "provenance.json", prov)
            done.append(f"{self.path / 'provenance.json'}: sessions of killed processes "
                        "marked interrupted")
        state = self._committed()
        if state is None:
            return done
        what = self._metrics_problem(state)
        if what:
            atomic.write_text(self.path / "metrics.jsonl",
                              "".join(_row_text(r) + "\n" for r in state["history"]))
            done.append(f"{self.path / 'metrics.jsonl'}: {what}")
        return done


# =========================================================================== the lock file

HOST = socket.gethostname()
_LEGACY = re.compile(rb"\s*\d+\s*")  # the .lock of an older xcf: a pid, held with flock


def _pid_namespace() -> Optional[str]:
    """This process's pid namespace (Linux; ``None`` elsewhere): two containers that share
    a host name but not their pids must not judge each other's pids."""
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return None


_PID_NAMESPACE = _pid_namespace()


def _proc_stat(pid: int) -> Optional[list[str]]:
    """The fields of ``/proc/<pid>/stat`` after the command name (state first, start time
    at index 19), ``[]`` for no such process, ``None`` without /proc (not Linux)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except FileNotFoundError:
        return [] if Path("/proc/self/stat").is_file() else None
    except OSError:
        return None


def _process_start(pid: int) -> Optional[int]:
    fields = _proc_stat(pid)
    return int(fields[19]) if fields else None


def _process_alive(pid: int, start: Optional[int]) -> bool:
    """Whether process ``pid`` of this machine lives (a zombie does not), and is the one
    that started at ``start`` (when known), not a later process given the same pid."""
    fields = _proc_stat(pid)
    if fields:
        return fields[0] not in ("Z", "X") and (start is None or int(fields[19]) == start)
    try:  # not Linux, or a pid that /proc does not show
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process, which /proc may hide (hidepid)
        return True
    return True


@dataclass(frozen=True)
class LockHolder:
    """Who holds a run's lock, as its ``.lock`` file says (see the module docstring)."""

    pid: Optional[int]
    host: Optional[str]
    started: Optional[str]
    mtime: float            # the heartbeat: the file's modification time
    heartbeat_age: float    # seconds since it, by this host's clock
    checked: bool           # liveness checked on the process itself (its pid on this
                            # machine, or an older xcf's flock), not read from a heartbeat
    live: bool              # not stale
    this_process: bool
    raw: bytes              # the file's content, the record a waiter judges

    def describe(self) -> str:
        """``pid 123 on host node07 since 2026-01-31T12:00:00+0100``."""
        host = f" on host {self.host}" if self.host else ""
        since = f" since {self.started}" if self.started else ""
        return f"pid {self.pid if self.pid is not None else '?'}{host}{since}"

    def why_stale(self, stale_after: float) -> str:
        if self.checked:
            return "that process has ended"
        return f"no heartbeat for more than {stale_after:g} s"


def _read_lock(path: Path, stale_after: float) -> Optional[LockHolder]:
    """The holder of lock file ``path``, or ``None`` when there is none."""
    try:
        with open(path, "rb") as f:
            raw, mtime = f.read(), os.fstat(f.fileno()).st_mtime
            legacy_held = _flock_held(f) if _LEGACY.fullmatch(raw) else None
    except FileNotFoundError:
        return None
    age = max(0.0, time.time() - mtime)
    if legacy_held is not None:
        return LockHolder(int(raw), None, None, mtime, age, True, legacy_held, False, raw)
    try:
        info = json.loads(raw)
    except ValueError:  # written by an exclusive create a moment ago: judged by its age
        info = None
    if not isinstance(info, dict):
        return LockHolder(None, None, None, mtime, age, False, age <= stale_after, False, raw)
    pid, start = info.get("pid"), info.get("pid_start")
    same = (info.get("host") == HOST and info.get("pid_namespace") == _PID_NAMESPACE
            and isinstance(pid, int))
    if same:  # the pid decides; without a start time to check it against, the heartbeat too
        live = _process_alive(pid, start) and (start is not None or age <= stale_after)
    else:
        live = age <= stale_after
    mine = same and pid == os.getpid() and start == _process_start(os.getpid())
    return LockHolder(pid if isinstance(pid, int) else None, info.get("host"),
                      info.get("started"), mtime, age, same and start is not None, live, mine,
                      raw)


def _flock_held(f) -> bool:
    """Whether another open file holds an exclusive ``flock`` on ``f`` (older xcf)."""
    try:
        fcntl.flock(f, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:  # no flock on this file system: no older xcf could have held it
        return False
    fcntl.flock(f, fcntl.LOCK_UN)
    return False


def _own_record() -> tuple[bytes, str]:
    """This process's lock record (JSON bytes) and its token."""
    token = uuid.uuid4().hex
    record = {"pid": os.getpid(), "host": HOST, "pid_namespace": _PID_NAMESPACE,
              "pid_start": _process_start(os.getpid()), "started": now(), "token": token,
              "heartbeat_seconds": HEARTBEAT_SECONDS, "command": command()}
    return (json.dumps(record, sort_keys=True) + "\n").encode(), token


# errno values of a file system that has no hard links (FUSE, SMB, some object stores)
_NO_LINKS = {errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EXDEV, errno.ENOSYS}


def _create_lock(path: Path, record: bytes) -> bool:
    """Create lock file ``path`` holding ``record``, atomically; ``False`` if it exists.

    The record goes to a private file first, which is hard-linked to ``path``: the lock
    appears whole or not at all, and ``link`` is atomic on NFS too.  NFS may answer a
    retried ``link`` whose first try succeeded with EEXIST, so the private file's link
    count (2 after a success) decides."""
    claim = path.with_name(f"{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.claim")
    with open(claim, "wb") as f:
        f.write(record)
        f.flush()
        os.fsync(f.fileno())
    try:
        os.link(claim, path)
        return True
    except FileExistsError:
        return os.stat(claim).st_nlink == 2
    except OSError as err:
        if err.errno not in _NO_LINKS:
            raise
        return _create_exclusive(path, record)
    finally:
        with contextlib.suppress(OSError):
            claim.unlink()


def _create_exclusive(path: Path, record: bytes) -> bool:
    """``os.open(O_CREAT | O_EXCL)``: for file systems without hard links."""
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, "wb") as f:
        f.write(record)
        f.flush()
        os.fsync(f.fileno())
    return True


def _break_stale(path: Path, seen: bytes) -> bool:
    """Remove lock file ``path`` if it still holds ``seen``, the record judged stale;
    ``False`` when another waiter is at it.

    Under a guard folder (``mkdir`` is atomic), so that of two waiters that judged the
    same lock stale, the second never removes the lock the first has just created."""
    guard = path.with_name(path.name + ".break")
    try:
        os.mkdir(guard)
    except FileExistsError:  # another waiter is breaking it; a guard a minute old is left over
        with contextlib.suppress(OSError):
            if time.time() - guard.stat().st_mtime > 60:
                os.rmdir(guard)
        return False
    try:
        with contextlib.suppress(FileNotFoundError):
            if path.read_bytes() == seen:
                path.unlink()
    finally:
        with contextlib.suppress(OSError):
            os.rmdir(guard)
    return True


def _holds(path: Path, token: str) -> bool:
    """Whether lock file ``path`` holds the record of ``token``."""
    try:
        info = json.loads(path.read_bytes())
    except (FileNotFoundError, ValueError):
        return False
    return isinstance(info, dict) and info.get("token") == token


class _HeldLock:
    """This process's hold on a lock file: the heartbeat thread, and the release."""

    def __init__(self, path: Path, token: str) -> None:
        self.path, self.token = path, token
        self._stop = threading.Event()
        self._lost = False
        self._thread = threading.Thread(target=self._beat_every, daemon=True,
                                        name=f"xcf lock heartbeat {path.parent.name}")
        self._thread.start()

    @property
    def lost(self) -> bool:
        """Whether a heartbeat found the lock file holding another process's record."""
        return self._lost

    def beat(self) -> bool:
        """Refresh the heartbeat; ``False`` once the lock is another process's."""
        if self._lost:
            return False
        try:
            if not _holds(self.path, self.token):
                self._lost = True
                return False
            os.utime(self.path)
        except OSError:  # a passing fault of the file system: the next beat tries again
            pass
        return True

    def _beat_every(self) -> None:
        while not self._stop.wait(HEARTBEAT_SECONDS):
            if not self.beat():
                return

    def release(self) -> None:
        self._stop.set()
        self._thread.join()
        with contextlib.suppress(OSError):
            if _holds(self.path, self.token):
                self.path.unlink()


def _read_object(path: Path) -> dict:
    """The JSON object in ``path`` (``{}`` if there is no file); :class:`RunFileError`
    naming the file when it holds something else."""
    if not path.is_file():
        return {}
    data = _read_json(path)
    if not isinstance(data, dict):
        raise RunFileError(f"{path} must hold a JSON object, got {data!r:.60}")
    return data


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise RunFileError(f"{path} is unreadable ({err})") from err


def _parse_metrics(path: Path) -> tuple[list[dict], list[int]]:
    """The rows of metrics.jsonl that parse, and the (1-based) numbers of lines that do not."""
    rows, bad = [], []
    for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError:
            bad.append(number)
            continue
        if isinstance(row, dict):
            rows.append(row)
        else:
            bad.append(number)
    return rows, bad


def _row_text(row: Mapping[str, Any]) -> str:
    """A metrics row as publish writes it (and so compares it: NaN equals NaN here)."""
    return json.dumps(row, sort_keys=True)


def find_run(runs_dir: str | Path, key: str) -> Optional[Run]:
    """The run folder under ``runs_dir`` whose name ends in ``-<key>``, if any."""
    runs_dir = Path(runs_dir)
    if not runs_dir.is_dir():
        return None
    matches = sorted(p for p in runs_dir.iterdir() if p.is_dir() and p.name.endswith(f"-{key}"))
    return Run(matches[0]) if matches else None
