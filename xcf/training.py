"""Training loop core: SGD with the piecewise schedule of Table 2, standard or adversarial.

This module holds the part every objective shares: the learning-rate schedule, one epoch
over in-memory tensors with device-side augmentation, and a small :func:`fit` used by the
notebooks' quick studies.  Adversarial examples are made with the model in eval mode and
frozen weights (:mod:`xcf.attacks`), then the weights are updated in train mode.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm.auto import tqdm

from .data import augment as augment_batch
from .data import batches

Attack = Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]


def piecewise_lr(epoch: float, base_lr: float, epochs: int,
                 milestones: Sequence[float] = (0.5, 0.75), gamma: float = 0.1) -> float:
    """Learning rate at (fractional) ``epoch``: ``base_lr`` decayed by ``gamma`` at each
    milestone, given as fractions of ``epochs`` (Table 2: epochs 100 and 150 of 200)."""
    drops = sum(epoch >= m * epochs for m in milestones)
    return base_lr * gamma ** drops


def sgd(model: nn.Module, lr: float, momentum: float = 0.9,
        weight_decay: float = 5e-4) -> torch.optim.SGD:
    """The optimiser of Table 2."""
    return torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay)


@dataclass
class EpochStats:
    epoch: int
    lr: float
    loss: float
    accuracy: float  # on the inputs the model was trained on (adversarial for AT)


def train_epoch(model: nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor,
                y: torch.Tensor, *, epoch: int, lr: float, batch_size: int = 128,
                attack: Optional[Attack] = None, augment: bool = True,
                generator: Optional[torch.Generator] = None, progress: bool = False) -> EpochStats:
    """One pass over ``(x, y)``: cross-entropy on ``attack(model, x, y)`` (or on clean x).

    Raises ``FloatingPointError`` naming the epoch and batch if the loss is not finite.
    """
    for group in optimizer.param_groups:
        group["lr"] = lr
    total_loss, correct, seen = 0.0, 0, 0
    it = batches(x, y, batch_size, shuffle=True, generator=generator)
    n_batches = math.ceil(len(x) / batch_size)
    for b, (xb, yb) in enumerate(tqdm(it, total=n_batches, disable=not progress, desc=f"epoch {epoch}")):
        if augment:
            xb = augment_batch(xb, generator=generator)
        if attack is not None:
            xb = attack(model, xb, yb)
        model.train()
        logits = model(xb)
        loss = F.cross_entropy(logits, yb)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"loss is {loss.item()} at epoch {epoch}, batch {b}")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        total_loss += loss.item() * len(yb)
        correct += int((logits.argmax(1) == yb).sum())
        seen += len(yb)
    return EpochStats(epoch=epoch, lr=lr, loss=total_loss / seen, accuracy=correct / seen)


def fit(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, epochs: int, lr: float = 0.1,
        batch_size: int = 128, attack: Optional[Attack] = None, augment: bool = True,
        milestones: Sequence[float] = (0.5, 0.75), seed: int = 0, progress: bool = False,
        on_epoch: Optional[Callable[[EpochStats], None]] = None) -> list[EpochStats]:
    """Train ``model`` for ``epochs`` with SGD (Table 2) and the piecewise schedule."""
    if epochs < 0 or not lr > 0 or batch_size < 1:
        raise ValueError(f"need epochs >= 0, lr > 0, batch_size >= 1; got {epochs}, {lr}, {batch_size}")
    g = torch.Generator(device=x.device).manual_seed(seed)
    opt = sgd(model, lr)
    history = []
    for epoch in range(epochs):
        stats = train_epoch(model, opt, x, y, epoch=epoch + 1, batch_size=batch_size,
                            lr=piecewise_lr(epoch, lr, epochs, milestones), attack=attack,
                            augment=augment, generator=g, progress=progress)
        history.append(stats)
        if on_epoch:
            on_epoch(stats)
    model.eval()
    return history
