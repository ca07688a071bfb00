"""The training engine: one loop for standard training, PGD-AT, KD-AT, fast AT and TRADES.

Wei, Guo & Wang (ICML 2025) train PreActResNet-18 / DeiT-Ti with the hyperparameters of
Table 2 (Appendix B) and track, epoch by epoch, test robust accuracy and the feature
attribution correlation matrix C with its CAS (Eq. 6-7, Algorithm 1).  This module does the
same at any scale.  It holds the loop; its parts live in their own modules and are
re-exported here (``from xcf.training import TrainConfig, Trades, evaluate`` works):

- :mod:`xcf.config`: :class:`TrainConfig`, every knob, defaults = Table 2 (SGD, momentum
  0.9, weight decay 5e-4, batch 128, lr 0.1 decayed x0.1 after 50% and 75% of 200 epochs,
  PGD-10 with step eps/4 for l-inf or eps/8 for l2, eps 8/255 or 128/255, evaluation with
  PGD-20), :func:`make_config` and :class:`ConfigError`.
- :mod:`xcf.objectives` (:data:`OBJECTIVES`): ``standard``; ``pgd_at`` (Madry et al. 2018,
  Eq. 1-2); ``kd_at`` (Eq. 3, :func:`distillation_loss`); ``fast_at`` (FGSM with random
  start, Wong et al. 2020); ``trades`` (Zhang et al. 2019, :func:`trades_loss`).  Each one
  is a ``perturb`` step (weights frozen, input gradients only, :mod:`xcf.attacks`) and a
  ``loss`` step; the optimiser always steps (the official code's ``none`` and ``TRADES``
  modes never call ``opt.step()``).
- :mod:`xcf.evaluation`: :func:`evaluate`, :func:`select_best`, AutoAttack.

Here:

- :func:`train`: runs a config into a run folder (:mod:`xcf.runs`) with per-epoch metrics,
  matrices and checkpoints, resumes a killed run from its last finished epoch with
  identical results (CPU), and reuses a finished run.
- :func:`fit` / :func:`train_epoch`: the bare loop on in-memory tensors, for notebooks.
- :func:`prepare`: data, model, teacher and objective of a config, every check first;
  :func:`measure_run`: recompute a saved checkpoint's evaluation.

Evaluation of an epoch (:func:`evaluate`) uses its own random generator seeded by
``(seed, epoch)``, so the training trajectory does not depend on evaluation settings and
``xcf measure`` can recompute an epoch's numbers exactly.

One row of ``metrics.jsonl`` per epoch (1-based ``epoch``):

- ``lr``; ``train_loss`` (mean objective over the epoch's batches);
- ``train_robust_acc``: accuracy on the training adversarial examples as they were trained
  on (train mode; ``null`` for ``standard``); ``train_clean_acc``: accuracy on the clean
  (augmented) batches, taken in eval mode before each update (free for standard/TRADES;
  for the other objectives only with ``log_train_clean``, else ``null``: it costs one
  more forward per batch, 24 instead of 23 forward-equivalents for PGD-10 AT);
- ``test_clean_acc``, ``test_robust_acc`` (PGD-``eval_steps``), ``cas`` (Eq. 7 of C on
  those PGD examples, Algorithm 1), ``cas_clean`` (C on clean inputs, as Fig. 9),
  ``eval_n`` (test samples used);
- ``seconds``: ``{"train": ..., "eval": ...}`` wall-clock times (the only field that
  differs between a resumed and an uninterrupted run).
"""
from __future__ import annotations

import contextlib
import math
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Optional, Sequence, Union

import torch
import torch.nn as nn
from tqdm.auto import tqdm

from . import runs
from .attacks import attack_mode
from .config import (AMP_MODES, ATTACK_MODES, BEST_METRICS, DEVICE_PATTERN, NON_IDENTITY,  # noqa: F401
                     OBJECTIVES, ConfigError, FastATConfig, KDConfig, TradesConfig, TrainConfig,
                     make_config)
from .data import augment as augment_batch
from .data import batches
from .evaluation import (AutocastModel, autoattack_accuracy, eval_attack, eval_seed,  # noqa: F401
                         evaluate, evaluate_holdout, select_best)
from .objectives import (AdversarialCE, Attack, DistillationAT, Objective, Standard, Step,  # noqa: F401
                         Trades, build_objective, cross_entropy, distillation_loss, kl_divergence,
                         trades_loss, trades_perturb)


# =========================================================================== schedule, optimiser

def piecewise_lr(epoch: float, base_lr: float, epochs: int,
                 milestones: Sequence[float] = (0.5, 0.75), gamma: float = 0.1) -> float:
    """Learning rate for 0-based ``epoch``: ``base_lr`` times ``gamma`` per milestone passed,
    milestones given as fractions of ``epochs``.  Table 2 (200 epochs): 0.1 for epochs
    0-99, 0.01 for 100-149, 0.001 for 150-199, as in the official ``lr_schedule``."""
    drops = sum(epoch >= m * epochs for m in milestones)
    return base_lr * gamma ** drops


def sgd(model: nn.Module, lr: float, momentum: float = 0.9,
        weight_decay: float = 5e-4) -> torch.optim.SGD:
    """The optimiser of Table 2."""
    return torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay)


# =========================================================================== one epoch

@dataclass
class EpochStats:
    epoch: int
    lr: float
    loss: float
    accuracy: float                         # on the inputs trained on (adversarial for AT)
    clean_accuracy: Optional[float] = None  # on clean training inputs
    robust_accuracy: Optional[float] = None  # on the training adversarial examples
    seconds: float = 0.0


def autocast(amp: str, device: torch.device):
    """bf16 autocast on ``device`` when ``amp == "bf16"``; a no-op for ``"none"``."""
    if amp == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _as_objective(objective: Optional[Objective], attack: Optional[Attack]) -> Objective:
    if objective is not None and attack is not None:
        raise ValueError("pass either objective= or attack=, not both")
    if objective is not None:
        return objective
    return AdversarialCE(attack) if attack is not None else Objective()


def _correct(logits: Optional[torch.Tensor], y: torch.Tensor) -> Optional[int]:
    return None if logits is None else int((logits.argmax(1) == y).sum())


def train_epoch(model: nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor,
                y: torch.Tensor, *, epoch: int, lr: float, batch_size: int = 128,
                attack: Optional[Attack] = None, objective: Optional[Objective] = None,
                augment: bool = True, generator: Optional[torch.Generator] = None,
                progress: bool = False, amp: str = "none", channels_last: bool = False,
                desc: Optional[str] = None, log_clean: bool = False) -> EpochStats:
    """One pass over ``(x, y)`` (``(N, C, H, W)`` in [0, 1], ``(N,)``) with ``objective``
    (or cross-entropy on ``attack(model, x, y)``, or plain cross-entropy).

    All randomness (shuffle, augmentation, attack starts) comes from ``generator``.
    ``log_clean``: also measure the accuracy on the clean batches when the objective does
    not compute clean logits anyway (one more forward each, eval mode, no autograd);
    otherwise :attr:`EpochStats.clean_accuracy` is ``None`` for such objectives.
    Raises ``FloatingPointError`` naming the epoch and batch if the loss is not finite,
    before the optimiser touches the weights.
    """
    obj = _as_objective(objective, attack)
    for group in optimizer.param_groups:
        group["lr"] = lr
    device = x.device
    n_batches = math.ceil(len(x) / batch_size)
    sums = {"loss": 0.0, "acc": 0, "clean": 0, "robust": 0, "seen": 0}
    start = time.perf_counter()
    bar = tqdm(batches(x, y, batch_size, shuffle=True, generator=generator), total=n_batches,
               disable=not progress, desc=desc or f"epoch {epoch}", leave=False)
    for b, (xb, yb) in enumerate(bar):
        if augment:
            xb = augment_batch(xb, generator=generator)
        if channels_last:
            xb = xb.contiguous(memory_format=torch.channels_last)
        with autocast(amp, device):
            clean = None
            if log_clean and not obj.computes_clean:  # eval mode, no grad: leaves BN stats alone
                with torch.no_grad(), attack_mode(model, "eval"):
                    clean = model(xb)
            x_adv = obj.perturb(model, xb, yb, generator)
            model.train()
            step = obj.loss(model, xb, yb, x_adv)
        if not torch.isfinite(step.loss):
            raise FloatingPointError(
                f"loss is {step.loss.item()} at epoch {epoch}, batch {b} (0-based, of "
                f"{n_batches}); the weights of this batch were not updated")
        optimizer.zero_grad(set_to_none=True)
        step.loss.backward()
        optimizer.step()
        sums["loss"] += step.loss.item() * len(yb)
        sums["acc"] += _correct(step.logits, yb)
        clean_correct = _correct(clean if clean is not None else step.clean_logits, yb)
        sums["clean"] = None if clean_correct is None else sums["clean"] + clean_correct
        sums["robust"] += _correct(step.adv_logits, yb) or 0
        sums["seen"] += len(yb)
        if progress:
            bar.set_postfix(loss=f"{sums['loss'] / sums['seen']:.3f}",
                            acc=f"{sums['acc'] / sums['seen']:.3f}", refresh=False)
    seen = max(sums["seen"], 1)
    return EpochStats(epoch=epoch, lr=lr, loss=sums["loss"] / seen, accuracy=sums["acc"] / seen,
                      clean_accuracy=None if sums["clean"] is None else sums["clean"] / seen,
                      robust_accuracy=sums["robust"] / seen if obj.adversarial else None,
                      seconds=time.perf_counter() - start)


def fit(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, epochs: int, lr: float = 0.1,
        batch_size: int = 128, attack: Optional[Attack] = None, augment: bool = True,
        milestones: Sequence[float] = (0.5, 0.75), seed: int = 0, progress: bool = False,
        on_epoch: Optional[Callable[[EpochStats], None]] = None,
        objective: Optional[Objective] = None, amp: str = "none",
        log_clean: bool = False) -> list[EpochStats]:
    """Train ``model`` in memory for ``epochs`` with SGD (Table 2) and the piecewise
    schedule; no run folder, no evaluation.  Returns one :class:`EpochStats` per epoch."""
    if epochs < 0 or not lr > 0 or batch_size < 1:
        raise ValueError(f"need epochs >= 0, lr > 0, batch_size >= 1; got {epochs}, {lr}, {batch_size}")
    g = torch.Generator(device=x.device).manual_seed(seed)
    opt = sgd(model, lr)
    history = []
    for epoch in range(epochs):
        stats = train_epoch(model, opt, x, y, epoch=epoch + 1, batch_size=batch_size,
                            lr=piecewise_lr(epoch, lr, epochs, milestones), attack=attack,
                            objective=objective, augment=augment, generator=g,
                            progress=progress, amp=amp, log_clean=log_clean)
        history.append(stats)
        if on_epoch:
            on_epoch(stats)
    model.eval()
    return history


# =========================================================================== setup

@dataclass
class Setup:
    """Everything built from a config before training: checked, on the device."""

    config: TrainConfig                 # resolved
    device: torch.device
    x_train: torch.Tensor               # (N, C, H, W) in [0, 1], on device
    y_train: torch.Tensor               # (N,)
    x_eval: torch.Tensor                # (eval_n, C, H, W): the per-epoch evaluation set
    y_eval: torch.Tensor
    classes: list
    model: nn.Module
    meta: dict                          # how to rebuild the model (see xcf.runs)
    objective: Objective
    teacher_path: Optional[Path] = None
    x_holdout: Optional[torch.Tensor] = None  # (holdout_n, C, H, W): training images not trained on
    y_holdout: Optional[torch.Tensor] = None


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device", f"{name!r} requested but CUDA is not available", ["auto", "cpu"])
    return device


def _load_data(c: TrainConfig):
    from . import data

    n_load = None if c.n_train is None else c.n_train + (c.holdout_n or 0)
    try:
        ds = data.load(c.dataset, root=c.data_root, n_train=n_load, n_test=c.n_test,
                       seed=c.data_seed, **c.data_kwargs)
    except TypeError as err:  # an unknown keyword of the dataset's loader
        raise ConfigError("data_kwargs", f"not accepted by dataset {c.dataset!r}: {err}") from err
    K = ds.num_classes
    if len(ds.y_test) < K or (c.eval_n is not None and c.eval_n < K):
        raise ConfigError("eval_n", f"the evaluation set needs at least one sample of each of the "
                          f"{K} classes (Algorithm 1 averages per class); got "
                          f"n_test={len(ds.y_test)}, eval_n={c.eval_n}")
    idx = data.stratified_indices(ds.y_test, c.eval_n, torch.Generator().manual_seed(c.data_seed))
    return ds, ds.x_test[idx], ds.y_test[idx]


def split_holdout(x: torch.Tensor, y: torch.Tensor, n: Optional[int], seed: int):
    """``(x_train, y_train, x_holdout, y_holdout)``: a class-balanced ``n`` of the training
    samples held out (``None``: nothing held out), the rest kept for training, both in
    their original order."""
    from .data import stratified_indices

    if not n:
        return x, y, None, None
    K = int(y.max()) + 1 if len(y) else 0
    if not K <= n < len(y):
        raise ConfigError("holdout_n", f"must hold out at least one sample of each of the {K} "
                          f"classes and leave some to train on: got {n} of {len(y)} training samples")
    hold = stratified_indices(y, n, torch.Generator().manual_seed(seed + 1))
    keep = torch.ones(len(y), dtype=torch.bool)
    keep[hold] = False
    return x[keep], y[keep], x[hold], y[hold]


def model_meta(c: TrainConfig, num_classes: int, image_shape: Sequence[int]) -> dict:
    """How to rebuild the model of config ``c`` (saved in every checkpoint)."""
    from .data import NORMALIZATION

    kwargs = dict(c.model_kwargs)
    key = str(c.dataset).lower().replace("_", "-")
    if c.normalize and key in NORMALIZATION and "mean" not in kwargs:
        kwargs["mean"], kwargs["std"] = (list(v) for v in NORMALIZATION[key])
    if c.model.replace("-", "_").lower() == "deit_tiny":
        kwargs.setdefault("img_size", int(image_shape[-1]))
    return {"model": c.model, "num_classes": int(num_classes), "in_channels": int(image_shape[0]),
            "image_shape": [int(s) for s in image_shape], "model_kwargs": kwargs,
            "dataset": c.dataset}


def _build_model(c: TrainConfig, meta: dict, device: torch.device) -> nn.Module:
    torch.manual_seed(c.seed)  # the initial weights depend on the seed only
    try:
        model = runs.build_from_meta(meta)
    except TypeError as err:
        raise ConfigError("model_kwargs", f"not accepted by model {c.model!r}: {err}") from err
    model = model.to(device)
    if c.channels_last:
        model = model.to(memory_format=torch.channels_last)
    if c.compile:
        model.compile()  # in place: state_dict keys and checkpoints stay as without it
    return model


def _load_teacher(c: TrainConfig, meta: dict, device: torch.device) -> tuple[nn.Module, Path]:
    """The KD teacher, checked against the student's task before any training."""
    path = Path(c.kd.teacher)
    if not path.exists():
        raise ConfigError("kd.teacher", f"{path} does not exist (give an xcf checkpoint .pt "
                          "or a run folder, relative to the working directory)")
    try:
        ckpt, file = runs.read_checkpoint(path, "best")
    except runs.CheckpointError as err:
        raise ConfigError("kd.teacher", str(err)) from err
    t_meta = ckpt["meta"]
    for field_, what in (("num_classes", "classes"), ("in_channels", "input channels")):
        if t_meta.get(field_) != meta[field_]:
            raise ConfigError("kd.teacher", f"the teacher {file} has {t_meta.get(field_)} {what} "
                              f"but dataset {c.dataset!r} has {meta[field_]}")
    teacher = runs.build_from_meta(t_meta)
    runs.load_weights(teacher, ckpt, file)
    teacher = teacher.to(device).eval()
    if c.channels_last:
        teacher = teacher.to(memory_format=torch.channels_last)
    return teacher, file


def prepare(config: TrainConfig) -> Setup:
    """Load data, build the model, teacher and objective: every check that can fail does
    so here, before any training."""
    c = config.resolved()
    device = resolve_device(c.device)
    ds, x_eval, y_eval = _load_data(c)
    x_tr, y_tr, x_ho, y_ho = split_holdout(ds.x_train, ds.y_train, c.holdout_n, c.data_seed)
    meta = model_meta(c, ds.num_classes, ds.image_shape)
    model = _build_model(c, meta, device)
    teacher, teacher_path = _load_teacher(c, meta, device) if c.objective == "kd_at" else (None, None)
    move = lambda t: None if t is None else t.to(device)  # noqa: E731
    return Setup(config=c, device=device, x_train=x_tr.to(device), y_train=y_tr.to(device),
                 x_eval=x_eval.to(device), y_eval=y_eval.to(device), classes=list(ds.classes),
                 model=model, meta=meta, objective=build_objective(c, teacher),
                 teacher_path=teacher_path, x_holdout=move(x_ho), y_holdout=move(y_ho))


# =========================================================================== the run loop

Callback = Callable[[dict, nn.Module, runs.Run], None]


def train(config: Union[TrainConfig, Mapping[str, Any], str, Path, None] = None, *,
          runs_dir: str | Path | None = None, progress: bool = True,
          callbacks: Sequence[Callback] = (), overwrite: bool = False,
          log: Optional[Callable[[str], None]] = None, **overrides: Any) -> runs.Run:
    """Train (or resume, or reuse) the run of ``config`` and return its :class:`~xcf.runs.Run`.

    ``config``: a :class:`TrainConfig`, a mapping, a YAML path, or ``None`` (Table 2
    defaults); keyword ``overrides`` go on top, e.g. ``train(dataset="planted", epochs=3)``.
    The run folder is ``runs_dir/<dataset>-<model>-<objective>-<key>`` (``runs_dir``
    defaults to ``$XCF_RUNS_DIR`` or ``./runs``).  A finished run is returned as it is
    (after adding an AutoAttack evaluation if newly requested); an unfinished one resumes
    from its last finished epoch; ``overwrite=True`` starts afresh.  ``callbacks`` are
    called as ``cb(metrics_row, model, run)`` after each epoch is saved.

    Raises :class:`ConfigError` (bad config, before training) and ``FloatingPointError``
    (non-finite loss; the epoch and batch are named and earlier checkpoints kept).
    """
    cfg = make_config(config, **overrides)
    log = log or _default_log
    run = _locate_run(cfg, runs_dir)
    if overwrite and run.path.exists():
        with run.lock():  # refuse to delete a folder another process is training
            pass
        shutil.rmtree(run.path)
    if run.finished:
        log(f"reusing finished run {run.path}")
        if cfg.autoattack and "autoattack" not in run.final():
            setup = prepare(cfg)
            with run.lock():
                _finish(run, setup, _history(run), log, progress)
        return run
    setup = prepare(cfg)  # every check, before the folder is created or any training
    with run.lock():
        _init_run_folder(run, setup)
        return _Trainer(setup, run, progress=progress, callbacks=callbacks, log=log).run()


def _default_log(line: str) -> None:
    tqdm.write(line, file=sys.stdout)
    sys.stdout.flush()


def default_runs_dir() -> Path:
    from .profiles import runs_dir

    return runs_dir()


def run_slug(c: TrainConfig) -> str:
    return f"{c.dataset}-{c.model}-{c.objective}".replace("/", "_").lower()


def _locate_run(cfg: TrainConfig, runs_dir: str | Path | None) -> runs.Run:
    root = Path(runs_dir) if runs_dir is not None else default_runs_dir()
    key = cfg.key()
    return runs.find_run(root, key) or runs.Run(root / f"{run_slug(cfg)}-{key}")


def _init_run_folder(run: runs.Run, setup: Setup) -> None:
    """Create the folder and config.yaml, or check an existing one matches the config."""
    cfg = setup.config
    if (run.path / "config.yaml").is_file():
        saved = TrainConfig.from_dict(run.config)
        if saved.identity() != cfg.identity():
            raise runs.CheckpointError(f"{run.path}/config.yaml does not match the config whose "
                                       f"key is {cfg.key()}; was it edited? Use overwrite=True "
                                       "to start this run afresh")
    else:
        run.write_config(cfg.to_dict())
    runs.remove_stale_temps(run.path)


def _history(run: runs.Run) -> list[dict]:
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

    def __init__(self, setup: Setup, run: runs.Run, *, progress: bool,
                 callbacks: Sequence[Callback], log: Callable[[str], None]) -> None:
        self.s, self.c, self.run_ = setup, setup.config, run
        self.progress, self.callbacks, self.log = progress, list(callbacks), log
        self.optimizer = sgd(setup.model, self.c.lr, self.c.momentum, self.c.weight_decay)
        self.generator = torch.Generator(device=setup.device).manual_seed(self.c.seed)
        self.history: list[dict] = []
        self.best: dict = {"epoch": None, "value": None, "metric": self.c.best_metric}

    def run(self) -> runs.Run:
        start = self._resume()
        extra = {"resumed_from_epoch": start} if start else {}
        if self.s.teacher_path is not None:
            extra["teacher"] = {"path": str(self.s.teacher_path),
                                "sha256": runs.file_digest(self.s.teacher_path)}
        self.run_.start_session(runs.environment(self.s.device), seed=self.c.seed,
                                device=str(self.s.device), **extra)
        try:
            for epoch in range(start + 1, self.c.epochs + 1):
                self._epoch(epoch)
            _finish(self.run_, self.s, self.history, self.log, self.progress)
        except BaseException as err:  # KeyboardInterrupt too: record why the session ended
            self.run_.end_session("failed", error=f"{type(err).__name__}: {err}")
            raise
        self.run_.end_session("finished")
        return self.run_

    def _resume(self) -> int:
        state = self.run_.load_state()
        if state is None:
            return 0
        runs.load_weights(self.s.model, state, self.run_.state_path, meta=self.s.meta)
        self.optimizer.load_state_dict(state["optimizer"])
        _set_rng_state(self.generator, state["rng"])
        self.history = list(state["history"])
        self.best = dict(state["best"])
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
                            log_clean=c.log_train_clean)
        t0 = time.perf_counter()
        numbers, adv, clean = evaluate(s.model, s.x_eval, s.y_eval, c, epoch, amp=c.amp)
        if s.x_holdout is not None:
            numbers.update(evaluate_holdout(s.model, s.x_holdout, s.y_holdout, c, epoch, amp=c.amp))
        row = {"epoch": epoch, "lr": lr, "train_loss": stats.loss,
               "train_clean_acc": stats.clean_accuracy, "train_robust_acc": stats.robust_accuracy,
               **numbers,
               "seconds": {"train": stats.seconds, "eval": time.perf_counter() - t0}}
        self.history.append(row)
        is_best = self._update_best(row)
        state = self._state(epoch, adv.C, clean.C, is_best)
        self.run_.save_state(state)  # the commit point
        self.run_.publish(state)     # derived files; repeated on resume if killed here
        self.log(summary_line(row, c.epochs, is_best))
        for cb in self.callbacks:
            cb(row, s.model, self.run_)

    def _update_best(self, row: dict) -> bool:
        value = row[self.c.best_metric]
        if self.best["epoch"] is None or (value is not None and value > self.best["value"]):
            self.best.update(epoch=row["epoch"], value=value)
            return True
        return False

    def _state(self, epoch: int, C: torch.Tensor, C_clean: torch.Tensor, is_best: bool) -> dict:
        c = self.c
        keep_matrix = is_best or epoch == c.epochs or epoch % c.save_matrices_every == 0
        checkpoints = (["best"] if is_best else []) + ([epoch] if epoch in c.save_checkpoints_at else [])
        return {
            "epoch": epoch, "config_key": c.key(), "meta": self.s.meta,
            "model": self.s.model.state_dict(), "optimizer": self.optimizer.state_dict(),
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


# =========================================================================== after training

def _finish(run: runs.Run, setup: Setup, history: list[dict], log, progress: bool) -> None:
    """Write final.json (best and last epochs), with AutoAttack results if configured."""
    c = setup.config
    best_epoch = runs.load_torch(run.checkpoint_path("best"))["epoch"]
    by_epoch = {r["epoch"]: r for r in history}
    summary = dict(run.final(), epochs=c.epochs, best_epoch=best_epoch,
                   best_metric=c.best_metric, best=by_epoch.get(best_epoch),
                   last=history[-1] if history else None, finished_at=runs.now())
    if c.autoattack:
        summary["autoattack"] = {which: autoattack_accuracy(run, which, setup, progress)
                                 for which in ("best", "last")}
        log(f"AutoAttack accuracy: best {summary['autoattack']['best']:.4f}, "
            f"last {summary['autoattack']['last']:.4f}")
    run.write_final(summary)
    log(f"finished {run.path}: best epoch {best_epoch}")


def measure_run(run_dir: str | Path, which: runs.Which = "best", *, eval_n: Optional[int] = None,
                eval_steps: Optional[int] = None, eval_eps: Optional[float] = None,
                instance: bool = False, device: Optional[str] = None, progress: bool = False):
    """Recompute test clean/robust accuracy, C and CAS of a saved checkpoint of a run.

    With the defaults this repeats the run's own evaluation of that epoch (same test
    subset, same attack, same random seed), so on the same device it reproduces the
    numbers in metrics.jsonl.  Returns ``(epoch, numbers, adversarial, clean)``; see
    :func:`evaluate`.
    """
    run = runs.Run(run_dir)
    if not (run.path / "config.yaml").is_file():
        raise FileNotFoundError(f"{run.path} is not a run folder (no config.yaml)")
    overrides = {k: v for k, v in dict(eval_n=eval_n, eval_steps=eval_steps, eval_eps=eval_eps,
                                       device=device).items() if v is not None}
    cfg = make_config(run.config, **overrides).resolved()
    path = run.find_checkpoint(which)
    ckpt = runs.load_torch(path)
    dev = resolve_device(cfg.device)
    _, x_eval, y_eval = _load_data(cfg)
    meta = model_meta(cfg, ckpt["meta"]["num_classes"], x_eval.shape[1:])
    model = runs.build_from_meta(meta)
    runs.load_weights(model, ckpt, path, meta=meta)
    model = model.to(dev).eval()
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    epoch = int(ckpt["epoch"])
    numbers, adv, clean = evaluate(model, x_eval.to(dev), y_eval.to(dev), cfg, epoch, amp=cfg.amp,
                                   instance=instance, progress=progress)
    return epoch, numbers, adv, clean
