"""Training into a run folder: ``train(config) -> Run``, with resume and reuse.

:func:`train` runs a config (:mod:`xcf.runs.config`) into a run folder (:mod:`xcf.runs.folder`): it
prepares everything first (:mod:`xcf.train.setup`), then for each epoch trains
(:func:`xcf.train.loop.train_epoch`), evaluates (:func:`xcf.train.evaluation.evaluate`), picks
the best epoch (:func:`xcf.train.selection.select_best`), commits the training state and
publishes metrics, matrices and checkpoints; after the last epoch it writes final.json
(:func:`xcf.train.final_test.finish_run`).  A killed run resumes from its last finished
epoch with identical results (CPU); a finished run is reused.  Before either, the run
folder checks itself (:meth:`xcf.runs.folder.Run.repair`): derived files that disagree with
``last.pt`` are repaired, and a KD teacher's best.pt must be the one its final.json names.

Evaluation of an epoch uses its own random generator seeded by ``(seed, epoch)``, so the
training trajectory does not depend on evaluation settings and ``xcf measure``
(:func:`xcf.train.posthoc.measure_run`) can recompute an epoch's numbers exactly.

One row of ``metrics.jsonl`` per epoch (1-based ``epoch``):

- ``lr``; ``train_loss`` (mean objective over the epoch's batches);
- ``train_robust_acc``: accuracy on the training adversarial examples as they were trained
  on (train mode; ``null`` for ``standard``); ``train_clean_acc``: accuracy on the clean
  (augmented) batches, taken in eval mode before each update (free for standard/TRADES;
  for the other objectives only with ``log_train_clean``, else ``null``: it costs one
  more forward per batch, 24 instead of 23 forward-equivalents for PGD-10 AT);
- ``test_clean_acc``, ``test_robust_acc`` (PGD-``eval_steps``), ``cas`` (Eq. 7 of C on
  those PGD examples, Algorithm 1), ``cas_clean`` (C on clean inputs, as Fig. 9),
  ``eval_n`` (test samples used), ``cas_ci95``; with ``holdout_n`` also
  ``holdout_robust_acc``, ``holdout_cas``, ``holdout_n``;
- ``seconds``: ``{"train": ..., "eval": ...}`` wall-clock times (the only field that
  differs between a resumed and an uninterrupted run).

A row is a result only if every number in it is finite and its training loss below
:data:`~xcf.train.divergence.DIVERGED_LOSS` (:mod:`xcf.train.divergence`): a non-finite loss, weight or evaluation number, or a loss of 1e14 with
finite but meaningless accuracies (a learning rate too large, say) stops the run with
:class:`~xcf.train.loop.TrainingDiverged` before that epoch is committed, and the session is
recorded as ``"diverged"`` (:data:`xcf.runs.provenance.DIVERGED`); earlier epochs' files stay.
"""
from __future__ import annotations

import contextlib
import dataclasses
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Callable, Mapping, Optional, Sequence, Union

import torch
import torch.nn as nn
from tqdm.auto import tqdm

from xcf.atomic import remove_stale_temps, write_json
from xcf.runs.checkpoints import CheckpointError, file_digest, load_weights
from xcf.runs.config import TrainConfig, make_config
from xcf.runs.config_file import ConfigError
from xcf.runs.identity import folder_name
from xcf.train.distributed import (SINGLE, TIMEOUT, RankZeroFailed, Replica, World, broadcast, join,
                          rank_seed, shard, wrap)
from xcf.train.divergence import check_row, check_weights, diverged_if_not_finite
from xcf.train.evaluation import evaluate, evaluate_holdout
from xcf.train.final_test import finish_run
from xcf.train.setup import Setup, prepare
from xcf.runs.provenance import DIVERGED, environment
from xcf.runs.folder import Run, default_runs_dir, find_run
from xcf.train.precision import grad_scaler, warn_if_emulated
from xcf.train.selection import select_best
from xcf.train.loop import TrainingDiverged, piecewise_lr, sgd, train_epoch

__all__ = ["Callback", "train", "summary_line"]

Callback = Callable[[dict, nn.Module, Run], None]


def train(config: Union[TrainConfig, Mapping[str, Any], str, Path, None] = None, *,
          runs_dir: str | Path | None = None, progress: bool = True,
          callbacks: Sequence[Callback] = (), overwrite: bool = False,
          log: Optional[Callable[[str], None]] = None, wait: Optional[float] = None,
          **overrides: Any) -> Run:
    """Train (or resume, or reuse) the run of ``config`` and return its :class:`~xcf.runs.folder.Run`.

    ``config``: a :class:`TrainConfig`, a mapping, a YAML path, or ``None`` (Table 2
    defaults); keyword ``overrides`` go on top, e.g. ``train(dataset="planted", epochs=3)``.
    The run folder is ``runs_dir/<dataset>-<model>-<objective>-<key>`` (``runs_dir``
    defaults to ``$XCF_RUNS_DIR`` or ``./runs``).  A finished run is returned as it is
    (after adding an AutoAttack evaluation if newly requested); an unfinished one resumes
    from its last finished epoch; ``overwrite=True`` starts afresh.  ``callbacks`` are
    called as ``cb(metrics_row, model, run)`` after each epoch is saved.

    ``wait``: when another live process trains the run (a job, another notebook), wait
    for it this many seconds, with a progress line every 30 s (then less often), then
    reuse the run it finished; ``None`` (the default) waits as long as that process
    lives, ``0`` raises :class:`~xcf.runs.lock.RunLockedError` at once.  A holder that
    died is taken over (see :mod:`xcf.runs.lock`).  Under torchrun each process trains
    its share of every batch (:mod:`xcf.train.distributed`); rank 0 alone writes, and runs the
    callbacks.

    Raises :class:`ConfigError` (bad config, before training),
    :class:`~xcf.train.loop.TrainingDiverged` (a ``FloatingPointError``: a non-finite loss,
    weight or evaluation number, named with its epoch; the session's status is
    ``"diverged"``, that epoch's row is not written and earlier epochs' files are kept) and
    :class:`~xcf.runs.lock.RunLockedError` (the wait ran out, naming the holder).
    """
    cfg = make_config(config, **overrides)
    log = log or _default_log
    _check_teacher_digest(cfg)
    run = _locate_run(cfg, runs_dir)
    world = join(cfg.device)  # SINGLE unless started by torchrun
    if world.size > 1:
        return _train_ranks(cfg, run, world, progress=progress, callbacks=callbacks,
                            overwrite=overwrite, log=log, wait=wait)
    _settle(run, overwrite=overwrite, log=log, wait=wait)
    if run.finished:
        log(f"reusing finished run {run.path}")
        if cfg.autoattack and "autoattack" not in run.final():
            setup = prepare(cfg)
            with run.lock(wait=wait, log=log):
                finish_run(run, setup, _history(run), log, progress)
        return run
    setup = prepare(cfg)  # every check, before the folder is created or any training
    warn_if_emulated(cfg.amp, setup.device)  # bf16 on a CPU that emulates it: say so first
    with run.lock(wait=wait, log=log):
        if _reusable(cfg, run):  # another process finished it while this one prepared
            log(f"reusing finished run {run.path}")
            return run
        _init_run_folder(run, setup)
        return _Trainer(setup, run, progress=progress, callbacks=callbacks, log=log).run()


def _settle(run: Run, *, overwrite: bool, log: Callable[[str], None],
            wait: Optional[float]) -> None:
    """Before a run folder is reused or trained: ``overwrite`` deletes it (never while
    another process trains it), a run another process trains is waited for (then its
    finished run is reused), and derived files are checked against last.pt."""
    if overwrite and run.path.exists():
        with run.lock(wait=wait, log=log):
            pass
        shutil.rmtree(run.path)
    run.wait_while_locked(wait, log=log)
    for line in run.repair():
        log(f"repaired {line}")


def _reusable(cfg: TrainConfig, run: Run) -> bool:
    """Finished, with every evaluation ``cfg`` asks for (else the trainer adds them)."""
    return run.finished and not (cfg.autoattack and "autoattack" not in run.final())


def _train_ranks(cfg: TrainConfig, run: Run, world: World, *, progress: bool,
                 callbacks: Sequence[Callback], overwrite: bool,
                 log: Callable[[str], None], wait: Optional[float]) -> Run:
    """:func:`train` on one rank of a torchrun job.  Every rank prepares (data, model);
    rank 0 alone claims the run folder (overwrite, wait, repair, lock) and tells the
    others whether to train; each then trains its shard, and rank 0 writes."""
    setup = prepare(dataclasses.replace(cfg, device=world.device))
    if world.is_main:
        warn_if_emulated(cfg.amp, setup.device)
    with contextlib.ExitStack() as held:
        verdict = "train"
        if world.is_main:
            try:
                verdict = _claim(cfg, run, setup, held, overwrite=overwrite, log=log,
                                 wait=_collective_wait(wait))
            except BaseException as err:
                broadcast(f"{type(err).__name__}: {err}", world)  # the others stop too
                raise
        verdict = broadcast(verdict, world)
        if verdict == "reuse":
            return run
        if verdict != "train":
            raise RankZeroFailed(f"rank 0 stopped before training {run.path}: {verdict}")
        n_train = len(setup.y_train)
        # This rank keeps its shard of the training data only (the whole set is freed).
        setup = dataclasses.replace(setup, x_train=shard(setup.x_train, world),
                                    y_train=shard(setup.y_train, world))
        trainer = _Trainer(setup, run, progress=progress and world.is_main,
                           callbacks=callbacks if world.is_main else (),
                           log=log if world.is_main else _quiet, world=world, n_train=n_train)
        return trainer.run()


def _claim(cfg: TrainConfig, run: Run, setup: Setup, held: contextlib.ExitStack, *,
           overwrite: bool, log: Callable[[str], None], wait: Optional[float]) -> str:
    """Rank 0's part of :func:`_train_ranks`: ``"reuse"``, or ``"train"`` with the lock
    entered into ``held`` and the run folder initialised."""
    _settle(run, overwrite=overwrite, log=log, wait=wait)
    if not _reusable(cfg, run):
        held.enter_context(run.lock(wait=wait, log=log))
    if _reusable(cfg, run):
        log(f"reusing finished run {run.path}")
        return "reuse"
    _init_run_folder(run, setup)
    return "train"


def _collective_wait(wait: Optional[float]) -> float:
    """Rank 0 waits for the run's lock while the other ranks wait for it in a collective,
    which fails after :data:`xcf.train.distributed.TIMEOUT`: the wait is kept 2 min below it."""
    most = TIMEOUT.total_seconds() - 120
    return most if wait is None else min(wait, most)


def _quiet(line: str) -> None:
    """The log of ranks other than 0: rank 0 reports."""


def _default_log(line: str) -> None:
    tqdm.write(line, file=sys.stdout)
    sys.stdout.flush()


def _locate_run(cfg: TrainConfig, runs_dir: str | Path | None) -> Run:
    root = Path(runs_dir) if runs_dir is not None else default_runs_dir()
    return find_run(root, cfg.key()) or Run(root / folder_name(cfg))


def _check_teacher_digest(cfg: TrainConfig) -> None:
    """A KD teacher's best.pt must be the one its final.json records (``best_sha256``, part
    of the student's key): a best.pt replaced by hand would otherwise go unnoticed."""
    if cfg.objective != "kd_at" or not cfg.kd.teacher:
        return
    teacher = Path(cfg.kd.teacher)
    best = teacher / "checkpoints" / "best.pt"
    if teacher.suffix == ".pt" or not best.is_file():
        return
    recorded = Run(teacher).final().get("best_sha256")
    if recorded and file_digest(best) != recorded:
        raise ConfigError("kd.teacher", f"the teacher's {best} is not the best checkpoint its "
                          f"final.json records (sha256 {recorded[:12]}...): it was replaced "
                          "after training; restore it, or train the teacher afresh")


def _init_run_folder(run: Run, setup: Setup) -> None:
    """Create the folder and config.yaml, or check an existing one matches the config."""
    cfg = setup.config
    if (run.path / "config.yaml").is_file():
        saved = TrainConfig.from_dict(run.config)
        if saved.identity() != cfg.identity():
            raise CheckpointError(f"{run.path}/config.yaml does not match the config whose "
                                  f"key is {cfg.key()}; was it edited? Use overwrite=True "
                                  "to start this run afresh")
    else:
        run.write_config(cfg.to_dict())
    record = getattr(setup.objective, "record", None)
    if record is not None:  # what the objective derived at setup (matched smoothing's q)
        write_json(run.path / "objective.json", record)
    remove_stale_temps(run.path)


def _history(run: Run) -> list[dict]:
    state = run.load_state()
    return list(state["history"]) if state else run.metrics()


def _rng_state(gen: torch.Generator) -> dict:
    state = {"generator": gen.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(gen: torch.Generator, state: Mapping[str, Any]) -> None:
    gen.set_state(state["generator"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class _Trainer:
    """The epoch loop of :func:`train`: train, evaluate, commit, publish, report."""

    def __init__(self, setup: Setup, run: Run, *, progress: bool,
                 callbacks: Sequence[Callback], log: Callable[[str], None],
                 world: World = SINGLE, n_train: Optional[int] = None) -> None:
        # Under torchrun ``setup`` holds this rank's shard of the ``n_train`` samples.
        self.world, self.n_train = world, len(setup.y_train) if n_train is None else n_train
        self.s, self.c, self.run_ = setup, setup.config, run
        self.progress, self.callbacks, self.log = progress, list(callbacks), log
        self.net = wrap(setup.model, world)  # DistributedDataParallel under torchrun
        self.optimizer = sgd(setup.model, self.c.lr, self.c.momentum, self.c.weight_decay)
        self.scaler = grad_scaler(self.c.amp, setup.device)  # fp16 only: loss scaling
        self.generator = torch.Generator(device=setup.device).manual_seed(self.c.seed)
        self.history: list[dict] = []
        self.best: dict = {"epoch": None, "value": None, "metric": self.c.best_metric}

    def run(self) -> Run:
        if not self.world.is_main:
            return self._follow()
        start = self._resume()
        extra = {"resumed_from_epoch": start} if start else {}
        extra["world_size"] = self.world.size
        if self.s.teacher_path is not None:
            extra["teacher"] = {"path": str(self.s.teacher_path),
                                "sha256": file_digest(self.s.teacher_path)}
        self.run_.start_session(environment(self.s.device), seed=self.c.seed,
                                device=str(self.s.device), **extra)
        try:
            for epoch in range(start + 1, self.c.epochs + 1):
                self._epoch(epoch)
            finish_run(self.run_, self.s, self.history, self.log, self.progress)
        except TrainingDiverged as err:  # a status of its own: rerunning will not help
            self.run_.end_session(DIVERGED, error=f"{type(err).__name__}: {err}")
            raise
        except BaseException as err:  # KeyboardInterrupt too: record why the session ended
            self.run_.end_session("failed", error=f"{type(err).__name__}: {err}")
            raise
        self.run_.end_session("finished")
        return self.run_

    def _follow(self) -> Run:
        """A rank other than 0: train its share of each epoch and write nothing; after
        the last epoch rank 0 alone ends the run (final.json, AutoAttack)."""
        for epoch in range(self._resume() + 1, self.c.epochs + 1):
            self._epoch(epoch)
        return self.run_

    def _resume(self) -> int:
        # Rank 0 reads last.pt; every rank resumes from it, whatever the world size it
        # was saved under (it holds the unwrapped model's weights).
        state = broadcast(self.run_.load_state() if self.world.is_main else None, self.world)
        if state is None:
            return 0
        load_weights(self.s.model, state, self.run_.state_path, meta=self.s.meta)
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scaler is not None and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        _set_rng_state(self.generator, state["rng"])
        self.history = list(state["history"])
        self.best = dict(state["best"])
        if self.world.is_main:
            self.run_.publish(state)  # repair files a kill may have left unwritten
        self.log(f"resuming {self.run_.path} after epoch {state['epoch']}")
        return int(state["epoch"])

    def _epoch(self, epoch: int) -> None:
        c, s = self.c, self.s
        lr = piecewise_lr(epoch - 1, c.lr, c.epochs, c.milestones, c.lr_gamma)
        stats = train_epoch(s.model, self.optimizer, s.x_train, s.y_train, epoch=epoch, lr=lr,
                            batch_size=c.batch_size, objective=s.objective, augment=c.augment,
                            generator=self.generator, progress=self.progress, amp=c.amp,
                            channels_last=c.channels_last, desc=f"epoch {epoch}/{c.epochs}",
                            log_clean=c.log_train_clean, scaler=self.scaler,
                            replica=self._replica(epoch))
        t0 = time.perf_counter()
        check_weights(s.model, epoch, lr)
        # Under torchrun each rank attacks its shard of the evaluation set; all get the
        # numbers of all of it (xcf.train.distributed.measure_sharded).
        with diverged_if_not_finite(epoch, lr):
            numbers, adv, clean = evaluate(s.model, s.x_eval, s.y_eval, c, epoch, amp=c.amp,
                                           world=self.world)
            if s.x_holdout is not None:
                numbers.update(evaluate_holdout(s.model, s.x_holdout, s.y_holdout, c, epoch,
                                                amp=c.amp, world=self.world))
        row = {"epoch": epoch, "lr": lr, "train_loss": stats.loss,
               "train_clean_acc": stats.clean_accuracy, "train_robust_acc": stats.robust_accuracy,
               **numbers,
               "seconds": {"train": stats.seconds, "eval": time.perf_counter() - t0}}
        check_row(row)  # before the row joins the history: a NaN is never a result
        self.history.append(row)
        is_best = self._update_best(row)
        if not self.world.is_main:
            return
        self.run_.heartbeat()  # RunLockedError if another process took the lock over
        state = self._state(epoch, adv.C, clean.C, is_best)
        self.run_.save_state(state)  # the commit point
        self.run_.publish(state)     # derived files; repeated on resume if killed here
        self.log(summary_line(row, c.epochs, is_best))
        for cb in self.callbacks:
            cb(row, s.model, self.run_)

    def _replica(self, epoch: int) -> Optional[Replica]:
        """This rank's part in epoch ``epoch`` under torchrun (``None`` in one process):
        its attacks' random starts from a generator of its own, seeded by (seed, epoch,
        rank), so a resumed run needs no state of the other ranks."""
        if self.world.size == 1:
            return None
        gen = torch.Generator(device=self.s.device).manual_seed(
            rank_seed(self.c.seed, epoch, self.world.rank))
        return Replica(self.world, self.net, self.n_train, gen)

    def _update_best(self, row: dict) -> bool:
        """Whether the epoch of ``row`` (the last of the history) is the best so far, by
        the one rule :func:`xcf.train.selection.select_best`."""
        if select_best(self.history, self.c.best_metric) != row["epoch"]:
            return False
        self.best.update(epoch=row["epoch"], value=row.get(self.c.best_metric))
        return True

    def _state(self, epoch: int, C: torch.Tensor, C_clean: torch.Tensor, is_best: bool) -> dict:
        c = self.c
        keep_matrix = is_best or epoch == c.epochs or epoch % c.save_matrices_every == 0
        checkpoints = (["best"] if is_best else []) + ([epoch] if epoch in c.save_checkpoints_at else [])
        return {
            "epoch": epoch, "config_key": c.key(), "meta": self.s.meta,
            "model": self.s.model.state_dict(), "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
            "rng": _rng_state(self.generator), "history": list(self.history),
            "best": dict(self.best),
            "publish": {"matrices": {"C": C, "C_clean": C_clean} if keep_matrix else {},
                        "checkpoints": checkpoints},
        }


def summary_line(row: Mapping[str, Any], epochs: int, is_best: bool = False) -> str:
    """One line per epoch, e.g. ``epoch  3/10  lr 0.1  loss 1.234  train 45.2/30.1%
    test 50.0/33.3%  CAS 12.30 (clean 8.10)  9.5 s  *best``."""
    pct = lambda v: "  -  " if v is None else f"{100 * v:5.1f}"  # noqa: E731
    secs = sum(row.get("seconds", {}).values())
    width = len(str(epochs))
    return (f"epoch {row['epoch']:>{width}}/{epochs}  lr {row['lr']:.4g}  loss {row['train_loss']:.4f}"
            f"  train clean/robust {pct(row['train_clean_acc'])}/{pct(row['train_robust_acc'])}%"
            f"  test clean/robust {pct(row['test_clean_acc'])}/{pct(row['test_robust_acc'])}%"
            f"  CAS {row['cas']:.2f} (clean {row['cas_clean']:.2f})  {secs:.1f} s"
            + ("  *best" if is_best else ""))
