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
"""
from __future__ import annotations

from typing import Callable, Sequence

import math
import numbers

import torch
import torch.nn as nn
import torch.nn.functional as F

from xcf.inputs import ArgumentError, ArgumentTypeError, check_count

__all__ = ["MODELS", "FeatureClassifier", "PreActBlock", "PreActResNet",
           "preact_resnet18", "SmallCNN", "small_cnn", "TimmViT", "deit_tiny", "build",
           "check_feature_model", "LinearHeadError", "WrappedClassifier", "find_head",
           "as_feature_classifier", "NormalizationError", "input_channels"]

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


# --------------------------------------------------------------------------- any classifier

class LinearHeadError(ValueError):
    """A model cannot be read as f(x) = W g(x) (Eq. 4): its last layer is not an
    ``nn.Linear``, its output is not that layer's output, or its inputs do not fit."""


class NormalizationError(LinearHeadError, ArgumentError):
    """``mean``/``std`` of :func:`as_feature_classifier` that are not one finite number
    per channel in [0, 1] pixel units (``std > 0``).  Both a :class:`LinearHeadError` and
    an :class:`xcf.inputs.ArgumentError`."""


def _where(name: str) -> str:
    return f"'{name}'" if name else "the model itself"


def find_head(model: nn.Module, head: str | None = None) -> str:
    """The qualified name of ``model``'s last layer, which must be an ``nn.Linear``.

    "Last" is the last leaf module in registration order (``model.named_modules()``):
    ``fc`` of torchvision ResNets, ``head`` of timm ViT/DeiT, the last entry of an
    ``nn.Sequential``.  ``head`` names the layer instead, for a model that registers
    its classifier before other layers.  Raises :class:`LinearHeadError` naming the
    layer found (type and qualified name) when it is not an ``nn.Linear``.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"expected an nn.Module, got {type(model).__name__}")
    if head is not None:
        try:
            layer = model.get_submodule(head)
        except AttributeError:
            names = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
            raise LinearHeadError(f"{type(model).__name__} has no layer {head!r}; its Linear "
                                  f"layers are {names[-5:]}") from None
        name = head
    else:
        name, layer = [(n, m) for n, m in model.named_modules()
                       if next(m.children(), None) is None][-1]
    if not isinstance(layer, nn.Linear):
        raise LinearHeadError(
            f"the last layer of {type(model).__name__} is {type(layer).__name__} at "
            f"{_where(name)}, not an nn.Linear, so the model is not f = W g (Eq. 4). Measure "
            "a model that ends in a Linear (e.g. drop a final activation), or name the "
            "Linear whose output the model returns with head='...'")
    return name


# Examples for messages: ImageNet's statistics in [0, 1] pixel units.
_EXAMPLE = {"mean": "(0.485, 0.456, 0.406)", "std": "(0.229, 0.224, 0.225)"}


def _check_normalization(mean, std, channels: int | None):
    """``mean``/``std`` as lists of floats, one per channel (``channels``, or as many as
    each other when the model has no Conv2d to say), in [0, 1] pixel units: the wrapper
    normalises pixels in [0, 1], so 0-255 statistics (ImageNet's 123.7, 58.4) would
    silently shrink every input to almost nothing."""
    given = {label: _numbers(label, value) for label, value in (("mean", mean), ("std", std))
             if value is not None}
    want = channels if channels is not None else len(next(iter(given.values()), []))
    for label, value in given.items():
        if len(value) != want:
            raise NormalizationError(f"{label} has {len(value)} entries but the model takes "
                                     f"{want} channels; give one per channel")
        positive = label == "std"  # a std of 0 divides by zero
        bad = next((v for v in value if not (math.isfinite(v) and v <= 1 and (
            v > 0 if positive else v >= 0))), None)
        if bad is not None:
            rule = "std must be > 0 in every channel and <= 1" if positive else \
                "mean must lie in [0, 1]"
            scale = "; 0-255 units? divide by 255" if math.isfinite(bad) and bad > 1 else ""
            raise NormalizationError(f"{label} {value} holds {bad}: {rule}, finite, in [0, 1] "
                                     f"pixel units (e.g. {_EXAMPLE[label]}){scale}")
    return given.get("mean"), given.get("std")


def _numbers(label: str, value) -> list[float]:
    """``value`` (a sequence, numpy array or tensor of reals) as a list of floats."""
    if hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or not all(
            isinstance(v, numbers.Real) and not isinstance(v, bool) for v in value):
        raise ArgumentTypeError(f"{label} {value!r} is not a list of numbers; pass one number "
                                f"per channel, e.g. {label}={_EXAMPLE[label]}")
    return [float(v) for v in value]


def input_channels(model: nn.Module) -> int | None:
    """The channels of the images ``model`` takes, as far as it says: a
    :class:`WrappedClassifier`'s ``input_channels`` (1 when it repeats grey images), a
    :class:`FeatureClassifier`'s ``in_channels``, the model inside a wrapper (``.model``,
    as :class:`~xcf.train.precision.AutocastModel`), else its first ``nn.Conv2d``'s; ``None``
    when it says nothing (then it takes any)."""
    while True:
        if isinstance(model, WrappedClassifier):
            return model.input_channels
        if isinstance(model, FeatureClassifier):
            return model.in_channels
        inner = getattr(model, "model", None)
        if not isinstance(inner, nn.Module):
            return _first_conv_channels(model)
        model = inner


def _first_conv_channels(model: nn.Module) -> int | None:
    """Input channels of the first ``nn.Conv2d`` (a ResNet stem, a ViT patch embedding)."""
    conv = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
    return None if conv is None else conv.in_channels


class WrappedClassifier(FeatureClassifier):
    """Another library's classifier in the form f(x) = W g(x) (Eq. 4), made by
    :func:`as_feature_classifier`.

    ``features(x)`` runs the whole wrapped model on ``(B, C, H, W)`` pixels in ``[0, 1]``
    (normalised first, grey images repeated to the model's channels) and returns g(x),
    the ``(B, n)`` input of its last Linear, captured by a forward hook that exists only
    during the call; ``head`` is that Linear itself.  Every call checks that the model
    returned exactly the head's output (the head ran once, on a ``(B, n)`` input), so
    ``wrapped(x) == head(features(x)) == model(normalise(x))``.

    The model is not copied and nothing in it is replaced: it is a submodule of the
    wrapper (``.model``), so parameters are shared and ``.to()``, ``.eval()`` on the
    wrapper act on it, as for any submodule.
    """

    def __init__(self, model: nn.Module, head: str, *, model_channels: int | None,
                 input_channels: int | None, mean=None, std=None) -> None:
        given = mean if mean is not None else std
        channels = model_channels or (len(given) if given is not None else 1)
        super().__init__(channels, mean, std)
        self.model = model
        self.head_name = head
        self.model_channels = model_channels
        self.input_channels = input_channels or model_channels

    @property
    def head(self) -> nn.Linear:  # type: ignore[override]  # the model's own layer
        return self.model.get_submodule(self.head_name)

    @property
    def repeats_channels(self) -> bool:
        """Whether 1-channel inputs are repeated to the model's channels."""
        return self.input_channels == 1 and (self.model_channels or 1) > 1

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """g(x): ``(B, C, H, W)`` pixels in ``[0, 1]`` -> ``(B, n)``, the head's input."""
        self._check_input(x)
        if self.repeats_channels:
            # Inside the model, so an attack perturbs the grey image (the dataset's pixels).
            x = x.expand(-1, self.model_channels, -1, -1)
        return self.embed(self.normalize(x))

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        seen: list[tuple[tuple, torch.Tensor]] = []
        hook = self.head.register_forward_hook(lambda _m, args, out: seen.append((args, out)))
        try:
            out = self.model(x)
        finally:
            hook.remove()
        return self._head_input(seen, out)

    def _head_input(self, seen: list, out) -> torch.Tensor:
        where = f"head {_where(self.head_name)} of {type(self.model).__name__}"
        if len(seen) != 1:
            raise LinearHeadError(f"the {where} ran {len(seen)} times in one forward pass; "
                                  "f = W g (Eq. 4) needs one linear head applied once")
        args, head_out = seen[0]
        g = args[0] if len(args) == 1 and torch.is_tensor(args[0]) else None
        if g is None or g.dim() != 2:
            shape = tuple(g.shape) if g is not None else f"{len(args)} arguments"
            raise LinearHeadError(f"the {where} takes input {shape}, not (B, n) features: "
                                  "a Linear applied per token or position is not f = W g")
        same = out is head_out or (torch.is_tensor(out) and out.shape == head_out.shape
                                   and torch.equal(out, head_out))
        if not same:
            raise LinearHeadError(
                f"the output of {type(self.model).__name__} is not the output of its head "
                f"{_where(self.head_name)} "
                "(a layer after it, averaged heads as in distilled DeiT, or a tuple), so "
                "the model is not f = W g (Eq. 4); name the right layer with head='...'")
        return g

    def _check_input(self, x: torch.Tensor) -> None:
        if not torch.is_tensor(x) or x.dim() != 4 or not x.is_floating_point():
            got = tuple(x.shape) if torch.is_tensor(x) else type(x).__name__
            raise LinearHeadError(f"expected a float batch of images (B, C, H, W), got {got}")
        if self.input_channels is not None and x.shape[1] != self.input_channels:
            fix = ("; pass input_channels=1 to as_feature_classifier to repeat grey images"
                   if x.shape[1] == 1 else "")
            raise LinearHeadError(f"{type(self.model).__name__} takes {self.input_channels}-"
                                  f"channel images, got {x.shape[1]} channels{fix}")
        lo, hi = torch.aminmax(x.detach())
        if lo < 0 or hi > 1:
            raise LinearHeadError(
                f"inputs must be pixels in [0, 1], got values in [{float(lo):.3g}, "
                f"{float(hi):.3g}]; pass unnormalised images and give the normalisation "
                "as mean=..., std=... (attacks then work in pixel space)")


def as_feature_classifier(model: nn.Module, mean: Sequence[float] | None = None,
                          std: Sequence[float] | None = None, num_classes: int | None = None,
                          *, head: str | None = None,
                          input_channels: int | None = None) -> WrappedClassifier:
    """Any classifier whose last layer is an ``nn.Linear``, as f(x) = W g(x) (Eq. 4 of
    Wei, Guo & Wang, ICML 2025), ready for :func:`xcf.attribution.measure`.

    Covers torchvision ResNets and Wide-ResNets (head ``fc``), timm ViT and DeiT
    (``head``), and an ``nn.Sequential`` ending in a Linear; see :class:`WrappedClassifier`.
    ``model`` itself is left as it is (no copy, no layer replaced, no hook left behind).

    Args:
        model: the classifier, mapping normalised ``(B, C, H, W)`` images to ``(B, K)``.
        mean, std: its input normalisation, one entry per model channel (e.g. ImageNet's
            ``(0.485, 0.456, 0.406)``, ``(0.229, 0.224, 0.225)``); default none.  The
            wrapper takes pixels in ``[0, 1]`` and normalises them itself, so both are in
            [0, 1] pixel units (not 0-255): finite, ``0 <= mean <= 1``, ``0 < std <= 1``.
        num_classes: K of the data to be measured; checked against the head's outputs.
        head: qualified name of the last Linear, if not the last registered layer.
        input_channels: channels of the images you will pass; 1 for a 3-channel model
            repeats each grey image to 3 channels inside the model.  Default: the
            channels of the model's first ``nn.Conv2d``.
    Raises:
        LinearHeadError: the last layer is not a Linear (naming its type and name), the
            head does not fit ``num_classes``, or ``mean``/``std``/channels do not fit
            (:class:`NormalizationError`, also an :class:`xcf.inputs.ArgumentError`).
        xcf.inputs.ArgumentTypeError: ``mean``/``std`` not a list of numbers, or
            ``input_channels`` not an integer.
    """
    name = find_head(model, head)
    linear = model.get_submodule(name)
    if num_classes is not None and linear.out_features != num_classes:
        raise LinearHeadError(
            f"head {_where(name)} of {type(model).__name__} has {linear.out_features} "
            f"outputs but the data have num_classes={num_classes}; build the model with "
            f"{num_classes} classes (torchvision and timm: num_classes={num_classes})")
    channels = _first_conv_channels(model)
    mean, std = _check_normalization(mean, std, channels)
    if input_channels is not None:
        check_count(input_channels, "input_channels", 1, channels or 3)
    if input_channels is not None and channels is not None and input_channels not in (
            1, channels):
        raise LinearHeadError(f"input_channels={input_channels} does not fit a model taking "
                              f"{channels} channels; use {channels}, or 1 to repeat grey images")
    return WrappedClassifier(model, name, model_channels=channels,
                             input_channels=input_channels, mean=mean, std=std)
