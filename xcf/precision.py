"""Mixed precision: the one autocast of training and evaluation, and fp16 loss scaling.

``amp="bf16"`` runs forwards (and the attacks' input gradients) under bfloat16 autocast;
``amp="fp16"`` under float16 autocast, with the training loss scaled by a
:class:`torch.amp.GradScaler` (:func:`grad_scaler`) so that small weight gradients do
not underflow in float16: the fast path on GPUs without bf16 tensor cores (T4, V100).
In both, the losses and the attribution statistics of Algorithm 1 of Wei, Guo & Wang
(ICML 2025) (class means, cosines) stay in float32.  The attacks need no scaler: their
loss is summed over the batch and taken in float32 (:mod:`xcf.attacks`), and the l-inf
step reads only the sign of the input gradient.
"""
from __future__ import annotations

import contextlib
from typing import ContextManager, Optional

import torch
import torch.nn as nn

__all__ = ["AUTOCAST_DTYPES", "autocast", "grad_scaler", "AutocastModel"]

# The autocast dtype of each amp mode that has one (``"none"``: float32, no autocast).
AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def autocast(amp: str, device: torch.device | str) -> ContextManager:
    """bf16 or fp16 autocast on ``device`` for ``amp`` ``"bf16"`` / ``"fp16"``; a no-op
    for ``"none"``.  Any other value is a ``ValueError`` naming the allowed ones."""
    if amp == "none":
        return contextlib.nullcontext()
    if amp not in AUTOCAST_DTYPES:
        raise ValueError(f"amp {amp!r} is not one of none, {', '.join(AUTOCAST_DTYPES)}")
    return torch.autocast(device_type=torch.device(device).type, dtype=AUTOCAST_DTYPES[amp])


def grad_scaler(amp: str, device: torch.device | str) -> Optional[torch.amp.GradScaler]:
    """A fresh :class:`torch.amp.GradScaler` on ``device``'s type for ``amp == "fp16"``
    (initial scale 2**16, halved at a step with inf/NaN gradients, which is skipped, and
    doubled after 2000 clean steps: PyTorch's defaults); ``None`` for ``"none"`` and
    ``"bf16"``, whose exponent range is float32's and needs no scaling."""
    if amp != "fp16":
        return None
    return torch.amp.GradScaler(torch.device(device).type)


class AutocastModel(nn.Module):
    """``model`` with its forward and ``features`` run under :func:`autocast` (``amp``:
    ``"bf16"``, the default, or ``"fp16"``) and returned in float32, so that attacks and
    the feature extractor are fast while the attribution statistics of Algorithm 1 (class
    means, cosines) stay in float32.  ``x``: ``(B, C, H, W)``; logits ``(B, K)``,
    features ``(B, n)``."""

    def __init__(self, model: nn.Module, device: torch.device, amp: str = "bf16") -> None:
        super().__init__()
        if amp not in AUTOCAST_DTYPES:
            raise ValueError(f"AutocastModel needs amp in {', '.join(AUTOCAST_DTYPES)}, got "
                             f"{amp!r} (for amp='none' use the model itself)")
        self.model, self.head, self.device, self.amp = model, model.head, torch.device(device), amp

    def features(self, x: torch.Tensor) -> torch.Tensor:
        with autocast(self.amp, self.device):
            return self.model.features(x).float()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with autocast(self.amp, self.device):
            return self.model(x).float()
