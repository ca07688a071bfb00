"""The base class of every model here: f(x) = W g(x) (Eq. 4) with the normalisation inside."""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn


class FeatureClassifier(nn.Module):
    """Base class: ``forward(x) = head(features(x))`` with ``head: nn.Linear`` (Eq. 4).

    Subclasses set ``self.head`` and implement :meth:`embed`, which maps a *normalised*
    batch ``(B, C, H, W)`` to features ``(B, n)``; :meth:`features` prepends the
    normalisation so that callers always pass pixels in ``[0, 1]``.
    """

    head: nn.Linear

    def __init__(self, in_channels: int, mean: Sequence[float] | None = None,
                 std: Sequence[float] | None = None) -> None:
        super().__init__()
        self.in_channels = in_channels
        mean = [0.0] * in_channels if mean is None else list(mean)
        std = [1.0] * in_channels if std is None else list(std)
        if len(mean) != in_channels or len(std) != in_channels:
            raise ValueError(f"mean/std need {in_channels} entries, got {len(mean)} and {len(std)}")
        # Buffers, not constants: they follow .to(device) and are saved in state_dict.
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """``(x - mean) / std`` per channel; x: ``(B, C, H, W)`` in ``[0, 1]``."""
        return (x - self.mean) / self.std

    def embed(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """g(x): ``(B, C, H, W)`` pixels in ``[0, 1]`` -> ``(B, n)`` features."""
        return self.embed(self.normalize(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """f(x) = W g(x) + b: ``(B, C, H, W)`` -> logits ``(B, K)``."""
        return self.head(self.features(x))

    @property
    def num_features(self) -> int:
        return self.head.in_features

    @property
    def num_classes(self) -> int:
        return self.head.out_features
