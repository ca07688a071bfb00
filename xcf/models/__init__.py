"""Classifiers written as f(x) = W g(x) (paper Section 3.1, Eq. 4).

Every model here is a :class:`FeatureClassifier`: ``features(x)`` is the penultimate
representation g(x) of shape ``(B, n)`` and ``head`` is the last ``nn.Linear`` holding W
(``(K, n)``) and its bias, so that ``model(x) == model.head(model.features(x))`` exactly.
The attribution vectors of Eq. 5, ``A_i(x) = g(x) * W[i]``, are read off these two parts.

Models take images in ``[0, 1]``; a per-channel normalisation ``(x - mean) / std`` (buffers,
identity by default) is the first step of ``features``, so attacks work in pixel space.

Models: ``preact_resnet18`` (the paper's CIFAR model), ``small_cnn`` (CPU profiles) and
``deit_tiny`` (the paper's transformer, Section 3.3, built by timm without weights).
:func:`as_feature_classifier` writes anyone else's classifier (torchvision, timm, an
``nn.Sequential``) whose last layer is an ``nn.Linear`` in the same form.

This package holds the registry (:data:`MODELS`, :func:`build`) and the check of the form
(:func:`check_feature_model`); each model and the wrapper live in a private module, and
every name has the one import path ``xcf.models.<name>``.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn as nn

from ._base import FeatureClassifier
from ._deit import TimmViT, deit_tiny
from ._preact_resnet import PreActBlock, PreActResNet, preact_resnet18
from ._small_cnn import SmallCNN, small_cnn
from ._wrap import (LinearHeadError, NormalizationError, WrappedClassifier, as_feature_classifier,
                    find_head, input_channels)

__all__ = ["MODELS", "FeatureClassifier", "PreActBlock", "PreActResNet",
           "preact_resnet18", "SmallCNN", "small_cnn", "TimmViT", "deit_tiny", "build",
           "check_feature_model", "LinearHeadError", "WrappedClassifier", "find_head",
           "as_feature_classifier", "NormalizationError", "input_channels"]

MODELS: tuple[str, ...] = ("preact_resnet18", "small_cnn", "deit_tiny")

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
