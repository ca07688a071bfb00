"""Divergence checks of the epoch loop: an epoch is recorded only if it is a result.

An epoch's row is a result only if every number in it is finite (:func:`check_row`), its
training loss is below :data:`DIVERGED_LOSS`, the weights after it are finite
(:func:`check_weights`) and its evaluation met no non-finite feature or attribution
(:func:`diverged_if_not_finite`); otherwise :func:`xcf.train.runner.train` stops with
:class:`~xcf.train.loop.TrainingDiverged` before the epoch is committed.
"""
from __future__ import annotations

import contextlib
import math
import numbers
from typing import Any, Mapping

import torch
import torch.nn as nn

from xcf.inputs import MatrixError
from xcf.train.loop import TrainingDiverged

__all__ = ["DIVERGED_LOSS", "check_weights", "diverged_if_not_finite", "check_row"]

# A training loss no converging run reaches: cross-entropy (and the KD and TRADES terms
# beside it) above this needs logits about 1e6 apart on the wrong side, which only a
# diverged model produces; its accuracies and CAS are then finite numbers of nothing.
DIVERGED_LOSS = 1e6


def check_weights(model: nn.Module, epoch: int, lr: float) -> None:
    """Weights and buffers (BatchNorm's running statistics) finite after epoch ``epoch``:
    a loss can stay finite while a step of a huge learning rate overflows the weights."""
    for name, t in [*model.named_parameters(), *model.named_buffers()]:
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            bad = t[~torch.isfinite(t)].flatten()[0].item()
            raise TrainingDiverged(f"training diverged: weight {name} holds {bad} after epoch "
                                   f"{epoch}; lower the learning rate (now {lr:g})")


@contextlib.contextmanager
def diverged_if_not_finite(epoch: int, lr: float):
    """The evaluation's inputs are checked data, so a non-finite feature or attribution
    (:class:`~xcf.inputs.MatrixError`) there comes from the model: it diverged."""
    try:
        yield
    except MatrixError as err:
        raise TrainingDiverged(f"training diverged: evaluating epoch {epoch}, {err}; lower "
                               f"the learning rate (now {lr:g})") from err


def check_row(row: Mapping[str, Any]) -> None:
    """Every number of an epoch's row finite (loss, accuracies, CAS and its interval), and
    the training loss below :data:`DIVERGED_LOSS`."""
    if math.isfinite(row["train_loss"]) and row["train_loss"] > DIVERGED_LOSS:
        raise TrainingDiverged(f"training diverged: the training loss of epoch {row['epoch']} "
                               f"is {row['train_loss']:.3g} (above {DIVERGED_LOSS:g}, which no "
                               "converging run reaches); the epoch is not recorded (lower the "
                               f"learning rate, now {row['lr']:g})")
    for key, value in row.items():
        values = value if isinstance(value, (list, tuple)) else [value]
        for v in values:
            if isinstance(v, numbers.Real) and not math.isfinite(v):
                raise TrainingDiverged(f"training diverged: {key} of epoch {row['epoch']} is "
                                       f"{v}; the epoch is not recorded (lower the learning "
                                       f"rate, now {row['lr']:g})")
