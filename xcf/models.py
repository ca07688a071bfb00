"""Classifiers written as f(x) = W g(x) (paper Section 3.1, Eq. 4).

Every model here is a :class:`FeatureClassifier`: ``features(x)`` is the penultimate
representation g(x) of shape ``(B, n)`` and ``head`` is the last ``nn.Linear`` holding W
(``(K, n)``) and its bias, so that ``model(x) == model.head(model.features(x))`` exactly.
The attribution vectors of Eq. 5, ``A_i(x) = g(x) * W[i]``, are read off these two parts.

Models take images in ``[0, 1]``; a per-channel normalisation ``(x - mean) / std`` (buffers,
identity by default) is the first step of ``features``, so attacks work in pixel space.

Models: ``preact_resnet18`` (the paper's CIFAR model), ``small_cnn`` (CPU profiles) and
``deit_tiny`` (the paper's transformer, Section 3.3, built by timm without weights).
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["MODELS", "FeatureClassifier", "PreActBlock", "PreActResNet",
           "preact_resnet18", "SmallCNN", "small_cnn", "TimmViT", "deit_tiny", "build",
           "check_feature_model"]

MODELS: tuple[str, ...] = ("preact_resnet18", "small_cnn", "deit_tiny")


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


# --------------------------------------------------------------------------- PreActResNet-18

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


# --------------------------------------------------------------------------- small CNN

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


# --------------------------------------------------------------------------- DeiT-Ti

class TimmViT(FeatureClassifier):
    """A timm VisionTransformer split into ``features`` (pre-logits: pooled class token
    after the final norm) and its linear ``head``."""

    def __init__(self, backbone: nn.Module, in_channels: int, mean=None, std=None) -> None:
        super().__init__(in_channels, mean, std)
        head = backbone.head
        if not isinstance(head, nn.Linear):
            raise TypeError(f"expected a timm model with a Linear head, got {type(head).__name__}")
        # Move the head out of the backbone so its parameters are registered once.
        backbone.head = nn.Identity()
        self.backbone = backbone
        self.head = head

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.backbone.forward_features(x)
        return self.backbone.forward_head(tokens, pre_logits=True)


def deit_tiny(num_classes: int = 10, *, img_size: int = 32, patch_size: int = 4,
              in_channels: int = 3, mean: Sequence[float] | None = None,
              std: Sequence[float] | None = None) -> TimmViT:
    """DeiT-Ti (Touvron et al. 2021) for small images, randomly initialised through
    ``timm.create_model('deit_tiny_patch16_224', pretrained=False, ...)``: 32 px with
    4 px patches gives 64 tokens + class token, 5.4M parameters, ``(B, 192)`` features.
    Nothing is downloaded."""
    import timm  # imported here: timm is slow to import and only this model needs it

    backbone = timm.create_model("deit_tiny_patch16_224", pretrained=False, img_size=img_size,
                                 patch_size=patch_size, num_classes=num_classes,
                                 in_chans=in_channels)
    return TimmViT(backbone, in_channels, mean=mean, std=std)


# --------------------------------------------------------------------------- registry

_BUILDERS: dict[str, Callable[..., FeatureClassifier]] = {
    "preact_resnet18": preact_resnet18,
    "small_cnn": small_cnn,
    "deit_tiny": deit_tiny,
}


def build(name: str, num_classes: int, in_channels: int, **kwargs) -> FeatureClassifier:
    """Build model ``name`` (one of :data:`MODELS`); ``kwargs`` go to its constructor
    (e.g. ``width``, ``img_size``, ``mean``, ``std``)."""
    key = name.replace("-", "_").lower()
    if key not in _BUILDERS:
        raise ValueError(f"unknown model {name!r}; choose one of {MODELS}")
    return _BUILDERS[key](num_classes, in_channels=in_channels, **kwargs)


def check_feature_model(model: nn.Module, x: torch.Tensor | None = None) -> None:
    """Raise ``TypeError`` unless ``model`` has a callable ``features(x) -> (B, n)`` and a
    ``head: nn.Linear`` (what attribution, Eq. 5, needs).

    If an input batch ``x`` is given, also check that ``model(x)`` equals
    ``head(features(x))`` in eval mode (``ValueError`` otherwise); the model's mode is
    restored afterwards.
    """
    fix = ("Wrap it in a subclass of xcf.models.FeatureClassifier: implement "
           "embed(x) -> (B, n) (or features) and set self.head = nn.Linear(n, num_classes), "
           "so that model(x) == model.head(model.features(x)).")
    missing = []
    if not callable(getattr(model, "features", None)):
        missing.append("a features(x) -> (B, n) method")
    if not isinstance(getattr(model, "head", None), nn.Linear):
        missing.append("a head attribute that is an nn.Linear")
    if missing:
        raise TypeError(f"{type(model).__name__} lacks {' and '.join(missing)}. {fix}")
    if x is None:
        return
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            feats = model.features(x)
            split, whole = model.head(feats), model(x)
    finally:
        model.train(was_training)
    if feats.dim() != 2 or feats.shape[1] != model.head.in_features:
        raise ValueError(f"features(x) has shape {tuple(feats.shape)}; expected "
                         f"(B, {model.head.in_features})")
    if not torch.allclose(split, whole, rtol=1e-4, atol=1e-5):
        raise ValueError(f"model(x) != head(features(x)) (max diff "
                         f"{(split - whole).abs().max().item():.3g}). {fix}")
