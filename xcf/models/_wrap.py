"""Anyone else's classifier (torchvision, timm, an ``nn.Sequential``) ending in an
``nn.Linear``, read as f(x) = W g(x) (Eq. 4): :func:`~xcf.models.as_feature_classifier`,
the head it finds, the normalisation it checks, and the errors it raises."""
from __future__ import annotations

import math
import numbers
from typing import Sequence

import torch
import torch.nn as nn

from xcf.inputs import ArgumentError, ArgumentTypeError, check_count

from ._base import FeatureClassifier


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
