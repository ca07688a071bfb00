"""The training loop: one epoch (:func:`train_epoch`), several in memory (:func:`fit`),
the learning-rate schedule and the optimiser of Table 2.

Wei, Guo & Wang (ICML 2025) train with SGD, momentum 0.9, weight decay 5e-4, batch 128,
lr 0.1 decayed x0.1 after 50% and 75% of 200 epochs (Table 2, Appendix B).  An epoch
applies an :class:`~xcf.train.objectives.Objective` to every batch: its ``perturb`` step
(weights frozen, input gradients only, :mod:`xcf.attacks`) and its ``loss`` step; the
optimiser always steps (the official code's ``none`` and ``TRADES`` modes never call
``opt.step()``), except that under fp16 loss scaling a step whose gradients are not
finite is skipped, as :class:`torch.amp.GradScaler` does.  Training images may be stored
as uint8 (:func:`xcf.data.dataset.uint8_to_float` turns each batch into float32 in [0, 1],
the values a float32 copy would hold).  Under DistributedDataParallel each rank trains its
share of every global batch (a :class:`~xcf.train.distributed.Replica`; see
:mod:`xcf.train.distributed`).  Nothing here touches a run folder: :func:`xcf.train.runner.train`
does that.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import torch
import torch.nn as nn
from tqdm.auto import tqdm

from xcf.attacks import Attack, attack_mode
from xcf.data.batching import augment as augment_batch
from xcf.data.batching import batches, shard_batches
from xcf.data.dataset import uint8_to_float
from xcf.train.distributed import Replica, all_reduce_sum, loss_share
from xcf.train.objectives import AdversarialCE, Objective
from xcf.train.precision import autocast, grad_scaler

__all__ = ["TrainingDiverged", "piecewise_lr", "sgd", "EpochStats", "train_epoch", "fit"]


class TrainingDiverged(FloatingPointError):
    """Training produced a non-finite number: a loss, weights, or an epoch's evaluation
    (accuracy, CAS).  Numbers measured after that point would be recorded as results
    while meaning nothing, so the run stops; the message names the epoch, the quantity
    and its value.  A :class:`FloatingPointError`, as a non-finite loss always raised."""


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
    """What :func:`train_epoch` measured over one epoch of training batches."""

    epoch: int
    lr: float
    loss: float
    accuracy: float                         # on the inputs trained on (adversarial for AT)
    clean_accuracy: Optional[float] = None  # on clean training inputs
    robust_accuracy: Optional[float] = None  # on the training adversarial examples
    seconds: float = 0.0
    skipped_steps: int = 0                  # fp16: steps GradScaler skipped (inf/NaN gradients)


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
                desc: Optional[str] = None, log_clean: bool = False,
                scaler: Optional[torch.amp.GradScaler] = None,
                replica: Optional[Replica] = None) -> EpochStats:
    """One pass over ``(x, y)`` (``(N, C, H, W)`` float in [0, 1], or uint8 holding
    ``255 * x``, converted per batch; ``(N,)``) with ``objective`` (or cross-entropy on
    ``attack(model, x, y)``, or plain cross-entropy).

    All randomness (shuffle, augmentation, attack starts) comes from ``generator``.
    ``log_clean``: also measure the accuracy on the clean batches when the objective does
    not compute clean logits anyway (one more forward each, eval mode, no autograd);
    otherwise :attr:`EpochStats.clean_accuracy` is ``None`` for such objectives.
    ``scaler``: a :class:`torch.amp.GradScaler` (:func:`xcf.train.precision.grad_scaler`, for
    ``amp="fp16"``): the loss is scaled before the backward pass, the gradients unscaled
    before the step, and a step whose gradients hold inf or NaN is skipped (the scale is
    then halved; :attr:`EpochStats.skipped_steps` counts them).
    Raises :class:`TrainingDiverged` (a ``FloatingPointError``) naming the epoch and batch
    if the loss is not finite,
    before the optimiser touches the weights (with or without a scaler: a non-finite loss
    is a diverged forward pass, which no loss scale repairs).

    ``replica``: train as one rank of a distributed run (:mod:`xcf.train.distributed`): ``x``,
    ``y`` are its shard, the global batches those of one process over the whole set
    (``generator``, the same on every rank, draws the order and the augmentation; the
    attacks draw from ``replica.generator``), the loss goes through ``replica.module``
    scaled by the rank's share, and the statistics returned are the whole epoch's.
    """
    obj = _as_objective(objective, attack)
    for group in optimizer.param_groups:
        group["lr"] = lr
    device = x.device
    n_total = len(x) if replica is None else replica.n_total
    n_batches = math.ceil(n_total / batch_size)
    sums = {"loss": 0.0, "acc": 0, "clean": 0, "robust": 0, "seen": 0, "skipped": 0}
    start = time.perf_counter()
    bar = tqdm(_epoch_batches(x, y, batch_size, generator, replica), total=n_batches,
               disable=not progress, desc=desc or f"epoch {epoch}", leave=False)
    net = model if replica is None else replica.module  # the loss's forward: DDP's wrapper
    attack_generator = generator if replica is None else replica.generator
    for b, (xb, yb, rows, n_batch) in enumerate(bar):
        if xb.dtype == torch.uint8:  # stored as bytes on the device: a quarter of float32
            xb = uint8_to_float(xb)
        if augment:
            xb = augment_batch(xb, generator=generator, rows=rows,
                               of_batch=None if rows is None else n_batch)
        if channels_last:
            xb = xb.contiguous(memory_format=torch.channels_last)
        if len(yb) == 0:  # a rank with no member of this batch (a small last one)
            sums["skipped"] += _empty_step(net, xb, optimizer, scaler)
            continue
        with autocast(amp, device):
            clean = None
            if log_clean and not obj.computes_clean:  # eval mode, no grad: leaves BN stats alone
                with torch.no_grad(), attack_mode(model, "eval"):
                    clean = model(xb)
            x_adv = obj.perturb(model, xb, yb, attack_generator)
            model.train()
            step = obj.loss(net, xb, yb, x_adv)
        if not torch.isfinite(step.loss):
            raise TrainingDiverged(
                f"training diverged: loss is {step.loss.item()} at epoch {epoch}, batch {b} "
                f"(0-based, of {n_batches}); the weights of this batch were not updated "
                f"(lower the learning rate, now {lr:g})")
        loss = step.loss if replica is None else (
            step.loss * loss_share(replica.world, len(yb), n_batch))
        optimizer.zero_grad(set_to_none=True)
        if scaler is None:
            loss.backward()
            optimizer.step()
        else:
            sums["skipped"] += _scaled_step(scaler, optimizer, loss)
        sums["loss"] += step.loss.item() * len(yb)
        sums["acc"] += _correct(step.logits, yb)
        clean_correct = _correct(clean if clean is not None else step.clean_logits, yb)
        sums["clean"] = None if clean_correct is None else sums["clean"] + clean_correct
        sums["robust"] += _correct(step.adv_logits, yb) or 0
        sums["seen"] += len(yb)
        if progress:
            bar.set_postfix(loss=f"{sums['loss'] / sums['seen']:.3f}",
                            acc=f"{sums['acc'] / sums['seen']:.3f}", refresh=False)
    if replica is not None:
        sums = _epoch_sums(sums, replica)
    seen = max(sums["seen"], 1)
    return EpochStats(epoch=epoch, lr=lr, loss=sums["loss"] / seen, accuracy=sums["acc"] / seen,
                      clean_accuracy=None if sums["clean"] is None else sums["clean"] / seen,
                      robust_accuracy=sums["robust"] / seen if obj.adversarial else None,
                      seconds=time.perf_counter() - start, skipped_steps=sums["skipped"])


def _epoch_batches(x: torch.Tensor, y: torch.Tensor, batch_size: int,
                   generator: Optional[torch.Generator], replica: Optional[Replica]):
    """``(xb, yb, rows, n)`` per batch: the whole batch (``rows`` None) with one process,
    a rank's share of the global batch of ``n`` samples under DDP."""
    if replica is None:
        for xb, yb in batches(x, y, batch_size, shuffle=True, generator=generator):
            yield xb, yb, None, len(yb)
        return
    yield from shard_batches(x, y, batch_size, rank=replica.world.rank,
                             world_size=replica.world.size, n_total=replica.n_total,
                             generator=generator)


def _empty_step(net: nn.Module, xb: torch.Tensor, optimizer: torch.optim.Optimizer,
                scaler: Optional[torch.amp.GradScaler]) -> int:
    """A rank without samples in a batch still joins its gradient all-reduce: a forward
    of the empty batch through DDP's wrapper, a zero loss, the optimiser step all ranks
    take (with the same averaged gradients).  Returns 1 if fp16 skipped the step."""
    net.train()
    loss = net(xb).sum() * 0.0
    optimizer.zero_grad(set_to_none=True)
    if scaler is not None:
        return _scaled_step(scaler, optimizer, loss)
    loss.backward()
    optimizer.step()
    return 0


def _epoch_sums(sums: dict, replica: Replica) -> dict:
    """The epoch's statistics summed over the ranks (every rank gets the totals)."""
    keys = ["loss", "acc", "clean", "robust", "seen", "skipped"]
    local = torch.tensor([float(sums[k] or 0) for k in keys], dtype=torch.float64)
    total = all_reduce_sum(local, replica.world).tolist()
    out = {k: v if k == "loss" else int(round(v)) for k, v in zip(keys, total)}
    out["clean"] = None if sums["clean"] is None else out["clean"]
    out["skipped"] = int(round(total[-1] / replica.world.size))  # every rank skips alike
    return out


def _scaled_step(scaler: torch.amp.GradScaler, optimizer: torch.optim.Optimizer,
                 loss: torch.Tensor) -> int:
    """One GradScaler step; 1 if it was skipped for inf/NaN gradients, else 0.  GradScaler
    lowers its scale exactly when it skipped the step, so comparing the scale before and
    after tells, without reading its private state."""
    before = scaler.get_scale()
    scaler.scale(loss).backward()
    scaler.unscale_(optimizer)  # explicit, so the gradients seen by the step are unscaled
    scaler.step(optimizer)      # skipped when unscale_ found inf/NaN
    scaler.update()
    return int(scaler.get_scale() < before)


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
    scaler = grad_scaler(amp, x.device)
    history = []
    for epoch in range(epochs):
        stats = train_epoch(model, opt, x, y, epoch=epoch + 1, batch_size=batch_size,
                            lr=piecewise_lr(epoch, lr, epochs, milestones), attack=attack,
                            objective=objective, augment=augment, generator=g,
                            progress=progress, amp=amp, log_clean=log_clean, scaler=scaler)
        history.append(stats)
        if on_epoch:
            on_epoch(stats)
    model.eval()
    return history
