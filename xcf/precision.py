"""Mixed precision: the one bf16 autocast of training and evaluation.

``amp="bf16"`` runs forwards (and the attacks' input gradients) under bfloat16 autocast,
while the losses and the attribution statistics of Algorithm 1 (class means, cosines)
stay in float32.
"""
from __future__ import annotations

import contextlib
from typing import ContextManager

import torch
import torch.nn as nn

__all__ = ["autocast", "AutocastModel"]


def autocast(amp: str, device: torch.device | str) -> ContextManager:
    """bf16 autocast on ``device`` when ``amp == "bf16"``; a no-op for ``"none"``."""
    if amp == "bf16":
        return torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


class AutocastModel(nn.Module):
    """``model`` with its forward and ``features`` run under bf16 :func:`autocast` and
    returned in float32, so that attacks and the feature extractor are fast while the
    attribution statistics of Algorithm 1 (class means, cosines) stay in float32."""

    def __init__(self, model: nn.Module, device: torch.device) -> None:
        super().__init__()
        self.model, self.head, self.device = model, model.head, torch.device(device)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        with autocast("bf16", self.device):
            return self.model.features(x).float()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with autocast("bf16", self.device):
            return self.model(x).float()
