"""PreActResNet-18, the paper's CIFAR model, as a :class:`~xcf.models.FeatureClassifier`."""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from ._base import FeatureClassifier


class PreActBlock(nn.Module):
    """Pre-activation basic block (He et al. 2016): bn-relu-conv, bn-relu-conv, plus shortcut.

    The projection shortcut (1x1 conv, no BN) takes the pre-activated input, as in the
    Rice et al. 2020 / Pang et al. 2021 code the paper builds on.
    """

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.shortcut = None
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(x))
        shortcut = x if self.shortcut is None else self.shortcut(out)
        out = self.conv1(out)
        out = self.conv2(F.relu(self.bn2(out)))
        return out + shortcut


class PreActResNet(FeatureClassifier):
    """PreActResNet: 3x3 stem, four stages of PreActBlocks, final bn + relu, global average
    pool (``(B, 8*width)`` features), linear head."""

    def __init__(self, num_blocks: Sequence[int], num_classes: int, *, width: int = 64,
                 in_channels: int = 3, mean=None, std=None) -> None:
        super().__init__(in_channels, mean, std)
        self.conv1 = nn.Conv2d(in_channels, width, 3, stride=1, padding=1, bias=False)
        stages, planes_in = [], width
        for i, n in enumerate(num_blocks):
            planes = width * 2 ** i
            strides = [1 if i == 0 else 2] + [1] * (n - 1)
            blocks = []
            for s in strides:
                blocks.append(PreActBlock(planes_in, planes, s))
                planes_in = planes
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.bn = nn.BatchNorm2d(planes_in)
        self.head = nn.Linear(planes_in, num_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(x)
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        out = F.relu(self.bn(out))
        # adaptive pool == avg_pool2d(out, 4) of the reference code at 32 px, and also
        # works for 64 px Tiny-ImageNet inputs.
        return F.adaptive_avg_pool2d(out, 1).flatten(1)


def preact_resnet18(num_classes: int = 10, *, width: int = 64, in_channels: int = 3,
                    mean: Sequence[float] | None = None,
                    std: Sequence[float] | None = None) -> PreActResNet:
    """The paper's PreActResNet-18 ([2, 2, 2, 2] PreActBlocks, stage widths
    ``width * (1, 2, 4, 8)``). ``width=64`` is the standard 11.2M-parameter model;
    ``features(x)`` is ``(B, 8 * width)``."""
    return PreActResNet([2, 2, 2, 2], num_classes, width=width, in_channels=in_channels,
                        mean=mean, std=std)
