"""Run folders: one folder per training configuration, written so that a kill never corrupts it.

A run folder is named ``<dataset>-<model>-<objective>-<key>``
(:func:`xcf.runs.identity.folder_name`), where ``key`` is a hash of the configuration's
identity (:meth:`xcf.runs.config.TrainConfig.key`), and holds::

    config.yaml          the resolved configuration (what was hashed, plus runtime options)
    provenance.json      git commit, versions, device, seed, one entry per session
                         (start/end time, command, status)
    metrics.jsonl        one JSON object per finished epoch
    matrices/            C (Eq. 6) per chosen epoch: epoch_0010.npy (adversarial, Algorithm 1)
                         and clean_epoch_0010.npy (clean inputs, Fig. 9), float32 (K, K)
    checkpoints/last.pt  full training state of the last finished epoch (the commit point)
    checkpoints/best.pt  model of the best epoch (:func:`xcf.train.selection.select_best`)
    checkpoints/epoch_0010.pt   models of chosen epochs
    final.json           written when training has finished (best/last summary, AutoAttack)

**Write order.**  ``checkpoints/last.pt`` is the single commit point of an epoch: it holds
the model, optimiser, RNG states, the metrics history and the current epoch's matrices.
Everything else (metrics.jsonl, matrices, best/epoch checkpoints) is derived from it by
:meth:`Run.publish`, which is idempotent and is repeated on resume, so a kill between the
commit and the derived writes loses nothing.  Every file is written atomically
(:mod:`xcf.atomic`), so a reader sees either the old or the new version, never a torn one.
Checkpoint formats live in :mod:`xcf.runs.checkpoints`, provenance in
:mod:`xcf.runs.provenance`, the reading of the JSON files (and
:class:`~xcf.runs.files.RunFileError`) in :mod:`xcf.runs.files`.

**Reuse checks itself.**  :meth:`Run.repair` (called by :func:`xcf.train.runner.train`
before a run is reused or resumed) verifies the derived files against ``last.pt``:
metrics.jsonl is rewritten from the committed history when a line is torn, missing, or of
an epoch after last.pt's (training restarts from last.pt); a final.json that disagrees
with it, or a best.pt that is not the one final.json records, is an error naming the
file; a session whose process died is marked "interrupted" (:mod:`xcf.runs.repair`).  A
session still marked "running" is shown as "interrupted" by :meth:`Run.provenance` when no
live process holds the run's lock.

**The lock** (:meth:`Run.lock`) keeps two processes (a notebook and a Slurm job, say)
from training one folder, on a local disk or on a cluster's network file system: the file
``.lock``, a hard-linked record with a heartbeat, taken over when its holder died.  The
mechanism and its limits are described in :mod:`xcf.runs.lock`; :meth:`Run.lock`,
:meth:`Run.wait_while_locked`, :meth:`Run.heartbeat` and :meth:`Run.lock_holder` hand
this folder's lock file to it.
"""
from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Optional

import numpy as np
import torch
import torch.nn as nn
import yaml

from xcf import atomic
from xcf.runs.checkpoints import (FORMAT_VERSION, STATE_FORMAT, CheckpointError, Which, checkpoint_path,
                          find_checkpoint, load_model, load_torch, model_checkpoint)
from xcf.runs.config_file import ConfigFileError, read_config_file
from xcf.runs.files import RunFileError, parse_metrics, read_object, row_text
from xcf.runs.provenance import RUNNING, command, mark_interrupted, now
from xcf.runs.lock import (STALE_SECONDS, HeldLock, LockHolder, RunLockedError, acquire, read_lock,
                       wait_until_free)
from xcf.runs.repair import repair_folder

__all__ = ["Run", "find_run", "default_runs_dir"]


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
        self._held: Optional[HeldLock] = None  # the lock this object holds, if any

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
        return read_object(self.path / "final.json")

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
        """The last session's status: "running", "finished", "diverged" (stopped at a
        non-finite number), "failed", "interrupted" (its process died), or ``None`` before
        the first session."""
        sessions = self.provenance().get("sessions") or []
        return sessions[-1].get("status") if sessions else None

    @property
    def locked(self) -> bool:
        """Whether a live process (this one included) holds the run's lock now (see
        :mod:`xcf.runs.lock` for when a holder counts as gone)."""
        holder = self.lock_holder()
        return holder is not None and holder.live

    def lock_holder(self, stale_after: float = STALE_SECONDS) -> Optional[LockHolder]:
        """Who holds the run's lock, as ``.lock`` says (``None``: nobody)."""
        return read_lock(self.path / ".lock", stale_after)

    def _read_provenance(self) -> dict:
        return read_object(self.path / "provenance.json")

    def metrics(self) -> list[dict]:
        """One dict per finished epoch, in order (``[]`` before the first).  A line that is
        not JSON (a torn or edited file) raises :class:`~xcf.runs.files.RunFileError`
        naming file and line."""
        path = self.path / "metrics.jsonl"
        if not path.is_file():
            return []
        rows, bad = parse_metrics(path)
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
        (see :func:`xcf.runs.checkpoints.find_checkpoint`)."""
        return find_checkpoint(self.path, which)

    def load_model(self, which: Which = "best", device: str | torch.device = "cpu") -> nn.Module:
        """Rebuild the model and load the weights of ``which``; returned in eval mode."""
        return load_model(self.find_checkpoint(which), device=device)

    # ------------------------------------------------------------------ writing
    @contextlib.contextmanager
    def lock(self, wait: Optional[float] = 0, *, log: Optional[Callable[[str], None]] = None,
             stale_after: float = STALE_SECONDS) -> Iterator["Run"]:
        """Hold the run's lock while training it, so that two processes (a notebook and a
        job, say) never write the same folder; safe on network file systems (see
        :mod:`xcf.runs.lock`).  A lock whose holder died is taken over.

        ``wait``: seconds to wait for a live holder (0: not at all; ``None``: as long as
        it lives), writing a progress line to ``log`` every 30 s (then less often);
        ``stale_after``: the staleness limit of another host's heartbeat.  Raises
        :class:`~xcf.runs.lock.RunLockedError` naming the holder and the fix when the wait
        runs out, and at once when the holder is this very process (waiting would never
        end)."""
        self.path.mkdir(parents=True, exist_ok=True)
        held = acquire(self.path / ".lock", wait, log=log, stale_after=stale_after)
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
        wait_until_free(self.path / ".lock", wait, log=log, stale_after=stale_after)

    def heartbeat(self) -> None:
        """Refresh the heartbeat of the lock this object holds (nothing without one).
        Raises :class:`~xcf.runs.lock.RunLockedError` when another process has taken the
        lock over (this one stalled for longer than the staleness limit): stop before
        writing."""
        if self._held is not None and not self._held.beat():
            raise RunLockedError(f"{self.path}: this process (pid {os.getpid()}) lost the run's "
                                 "lock to another process after going without a heartbeat for "
                                 "longer than the staleness limit (suspended, or a hung file "
                                 "system?); stopped before writing more. The other process "
                                 "trains the run now: wait for it, or stop it and train again")

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
        lines = "".join(row_text(rec) + "\n" for rec in state["history"])
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
        repair them, under the run's lock; returns one line per repair (``[]``: all was in
        order, nothing written).  What is checked, and how:
        :func:`xcf.runs.repair.repair_folder`."""
        return repair_folder(self)


def find_run(runs_dir: str | Path, key: str) -> Optional[Run]:
    """The run folder under ``runs_dir`` whose name ends in ``-<key>``, if any."""
    runs_dir = Path(runs_dir)
    if not runs_dir.is_dir():
        return None
    matches = sorted(p for p in runs_dir.iterdir() if p.is_dir() and p.name.endswith(f"-{key}"))
    return Run(matches[0]) if matches else None
