"""A small CNN for the CPU profiles, as a :class:`~xcf.models.FeatureClassifier`."""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from ._base import FeatureClassifier


class SmallCNN(FeatureClassifier):
    """Four conv-bn-relu layers (widths w, 2w, 4w, 4w), a 2x2 max-pool after each of the
    first three, global average pool: ``features(x)`` is ``(B, 4 * width)``.

    Non-negative features (after ReLU and pooling) like PreActResNet's, so attribution
    vectors behave alike. Any input size >= 8 px works (28 and 32 px in the book)."""

    def __init__(self, num_classes: int, *, in_channels: int = 1, width: int = 32,
                 mean=None, std=None) -> None:
        super().__init__(in_channels, mean, std)
        chans = [in_channels, width, 2 * width, 4 * width, 4 * width]
        layers: list[nn.Module] = []
        for i in range(4):
            layers += [nn.Conv2d(chans[i], chans[i + 1], 3, padding=1, bias=False),
                       nn.BatchNorm2d(chans[i + 1]), nn.ReLU(inplace=True)]
            if i < 3:
                layers.append(nn.MaxPool2d(2))
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(chans[-1], num_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return F.adaptive_avg_pool2d(self.body(x), 1).flatten(1)


def small_cnn(num_classes: int = 10, *, in_channels: int = 1, width: int = 32,
              mean: Sequence[float] | None = None,
              std: Sequence[float] | None = None) -> SmallCNN:
    """A small CNN that trains in seconds on a CPU (about 0.2M parameters at width 32)."""
    return SmallCNN(num_classes, in_channels=in_channels, width=width, mean=mean, std=std)
