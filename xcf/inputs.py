"""Checks of the library's inputs, one error type per kind of mistake.

The public functions of :mod:`xcf.attribution`, :mod:`xcf.train.evaluation`, :mod:`xcf.data`
(the loaders, :mod:`xcf.data.batching`) and :func:`xcf.models.as_feature_classifier`
call these before any work starts, so a bad input gives a message naming the bad value,
the allowed range and the fix, never a raw torch error, a misleading "class has no test
sample" or a silent NaN.  Each check is one cheap pass
(``torch.isfinite``, ``min``, ``max``); the slower search for *which* sample is bad runs
only once a check has failed.

Shapes: images ``(N, C, H, W)`` in [0, 1]; labels ``(N,)`` integers in ``[0, K)``;
features ``(N, n)``; head weight ``W`` ``(K, n)`` (Eq. 4 of Wei, Guo & Wang, ICML 2025);
correlation matrices ``(K, K)`` (Eq. 6).
"""
from __future__ import annotations

import math
import numbers
from typing import Any

import torch

__all__ = ["InputError", "ImageError", "LabelError", "LengthError", "ShapeError",
           "NumClassesError", "MatrixError", "ArgumentError", "ArgumentTypeError",
           "check_images", "check_labels", "check_lengths", "check_features",
           "check_num_classes", "check_matrix", "check_batch_size", "check_count",
           "check_real", "check_flag"]


class InputError(ValueError):
    """A bad argument to a library function; the message names the value and the fix."""


class ImageError(InputError):
    """Images that are not a float tensor of finite values in [0, 1]."""


class LabelError(InputError):
    """Labels that are not integers in ``[0, K)``."""


class LengthError(InputError):
    """Two inputs that should have one row per sample have different lengths."""


class ShapeError(InputError):
    """A tensor of the wrong number of dimensions, or sizes that disagree."""


class NumClassesError(InputError):
    """``num_classes`` that does not match the model head's outputs."""


class MatrixError(InputError):
    """A matrix (C of Eq. 6, or attribution vectors) that is empty, not square, or not finite."""


class ArgumentError(InputError):
    """A scalar argument (batch size, count, epoch, ...) outside its allowed range."""


class ArgumentTypeError(ArgumentError, TypeError):
    """An argument of the wrong type: a string or a bool where a number is expected, a
    dict where a :class:`~xcf.runs.config.TrainConfig` is.  Also a :class:`TypeError`, so code
    that catches either kind of mistake catches it."""


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _tensor(value: Any, name: str, error: type[InputError], what: str) -> torch.Tensor:
    if not isinstance(value, torch.Tensor):
        raise error(f"{name} must be a torch.Tensor ({what}), got {type(value).__name__}; "
                    f"pass torch.as_tensor({name})")
    return value


def _first_bad(mask: torch.Tensor) -> int:
    """Index of the first sample (row) where ``mask`` is True anywhere."""
    return int(mask.reshape(mask.shape[0], -1).any(1).nonzero()[0, 0])


def check_images(x: Any, name: str = "x") -> torch.Tensor:
    """``x``: images ``(N, C, H, W)``, floating point, finite, in [0, 1], N >= 1."""
    x = _tensor(x, name, ImageError, "images (N, C, H, W) in [0, 1]")
    if not x.is_floating_point():
        fix = f"{name}.float() / 255" if x.dtype == torch.uint8 else f"{name}.float()"
        raise ImageError(f"{name} has dtype {x.dtype}; images must be floating point in "
                         f"[0, 1]: pass {fix}")
    if x.dim() != 4:
        raise ImageError(f"{name} has shape {tuple(x.shape)}; images must be (N, C, H, W): "
                         f"add a batch dimension with {name}.unsqueeze(0) for one image")
    if x.shape[0] == 0:
        raise ImageError(f"{name} has 0 samples (shape {tuple(x.shape)}); pass at least one image")
    finite = torch.isfinite(x)
    if not bool(finite.all()):
        i = _first_bad(~finite)
        bad = x[i][~finite[i]][0].item()
        raise ImageError(f"{name} holds {bad} (first in sample {i}); images must be finite, in "
                         "[0, 1]: drop or repair the non-finite samples")
    low, high = float(x.min()), float(x.max())
    if low < 0 or high > 1:
        bad = low if low < 0 else high
        i = _first_bad((x < 0) | (x > 1))
        raise ImageError(f"{name} holds {bad:.4g} (first in sample {i}; values span "
                         f"[{low:.4g}, {high:.4g}]), outside [0, 1]: pass unnormalised "
                         "images in [0, 1] (xcf models normalise inside, normalize=True)")
    return x


def check_labels(y: Any, num_classes: int, name: str = "y") -> torch.Tensor:
    """``y``: integer labels ``(N,)`` in ``[0, num_classes)``."""
    y = _tensor(y, name, LabelError, f"integer labels (N,) in [0, {num_classes})")
    if y.is_floating_point() or y.is_complex() or y.dtype == torch.bool:
        raise LabelError(f"{name} has dtype {y.dtype}; class labels must be integers "
                         f"(torch.long) in [0, {num_classes - 1}]: pass {name}.long()")
    if y.dim() != 1:
        raise LabelError(f"{name} has shape {tuple(y.shape)}; labels must be (N,), one class "
                         f"index per sample (not one-hot: pass {name}.argmax(1))")
    if len(y):
        low, high = int(y.min()), int(y.max())
        if low < 0 or high >= num_classes:
            bad = low if low < 0 else high
            i = int((y == bad).nonzero()[0, 0])
            raise LabelError(f"label {bad} (sample {i} of {name}) is outside [0, "
                             f"{num_classes - 1}] for {num_classes} classes: pass labels "
                             "0..K-1 of the model's K classes")
    return y


def check_lengths(x: Any, y: Any, x_name: str = "x", y_name: str = "y") -> None:
    """One row of ``y`` per row of ``x``."""
    if len(x) != len(y):
        raise LengthError(f"{x_name} has {len(x)} samples but {y_name} has {len(y)}; pass "
                          f"one {y_name} entry per {x_name} sample")


def check_features(features: Any, labels: Any, weight: Any) -> None:
    """``features`` (N, n) finite, ``weight`` (K, n) finite, ``labels`` (N,) in [0, K)."""
    features = _tensor(features, "features", ShapeError, "g(x), (N, n)")
    weight = _tensor(weight, "weight", ShapeError, "the head's W, (K, n)")
    if features.dim() != 2 or weight.dim() != 2:
        raise ShapeError(f"features must be (N, n) and weight (K, n), got shapes "
                         f"{tuple(features.shape)} and {tuple(weight.shape)}")
    if features.shape[1] != weight.shape[1]:
        raise ShapeError(f"features have {features.shape[1]} dimensions but weight has "
                         f"{weight.shape[1]} columns; pass g(x) of the model whose head is W")
    if weight.shape[0] == 0:
        raise ShapeError("weight has 0 rows (K = 0 classes); pass the head's W, (K, n)")
    check_labels(labels, weight.shape[0], "labels")
    check_lengths(features, labels, "features", "labels")
    for name, t in (("features", features), ("weight", weight)):
        if not bool(torch.isfinite(t).all()):
            raise MatrixError(f"{name} holds {t[~torch.isfinite(t)][0].item()}; it must be "
                              "finite (a diverged model? check its weights)")


def check_num_classes(num_classes: Any, head_outputs: int) -> int:
    """``num_classes``: ``None`` (the head's outputs) or exactly the head's outputs."""
    if num_classes is None:
        return head_outputs
    if not _is_int(num_classes) or num_classes != head_outputs:
        raise NumClassesError(f"num_classes {num_classes!r} does not match the model head's "
                              f"{head_outputs} outputs (model.head.out_features); leave "
                              f"num_classes=None or pass {head_outputs}")
    return num_classes


def check_matrix(M: Any, name: str = "C", *, square: bool = True) -> torch.Tensor:
    """``M``: a finite, non-empty 2-D tensor, ``(K, K)`` if ``square``."""
    shape_word = "(K, K)" if square else "(K, n)"
    M = _tensor(M, name, MatrixError, shape_word)
    if M.dim() != 2 or M.numel() == 0 or (square and M.shape[0] != M.shape[1]):
        raise MatrixError(f"{name} has shape {tuple(M.shape)}; expected a non-empty "
                          f"{'square ' if square else ''}{shape_word} matrix, K >= 1")
    finite = torch.isfinite(M)
    if not bool(finite.all()):
        i, j = (~finite).nonzero()[0].tolist()
        raise MatrixError(f"{name}[{i}, {j}] is {M[i, j].item()}; {name} must be finite "
                          "(NaN or inf upstream: check the features and the model)")
    return M


def check_count(value: Any, name: str, low: int = 1, example: int | None = None) -> int:
    """``value``: an integer >= ``low`` (a bool is not one: ``True`` is no count)."""
    if not _is_int(value) or value < low:
        hint = f", e.g. {example}" if example is not None else ""
        # A string or a bool is a type mistake; an integer below ``low`` a range mistake.
        error = ArgumentError if _is_int(value) else ArgumentTypeError
        kind = "" if _is_int(value) else f" (it is a {type(value).__name__})"
        raise error(f"{name} {value!r} is not an integer >= {low}{kind}; pass an integer "
                    f">= {low}{hint}")
    return value


def check_real(value: Any, name: str, low: float | None = None, high: float | None = None,
               example: float | None = None) -> float:
    """``value``: a finite real number (int or float, not a bool) in ``[low, high]``
    (either end ``None``: open)."""
    span = (f"[{low:g}, {high:g}]" if low is not None and high is not None else
            f">= {low:g}" if low is not None else f"<= {high:g}" if high is not None else
            "finite")
    hint = f", e.g. {example:g}" if example is not None else ""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ArgumentTypeError(f"{name} {value!r} is not a number (it is a "
                                f"{type(value).__name__}); pass a number {span}{hint}")
    if not math.isfinite(value) or (low is not None and value < low) or (
            high is not None and value > high):
        raise ArgumentError(f"{name} {value!r} is not a finite number {span}; pass a number "
                            f"{span}{hint}")
    return float(value)


def check_flag(value: Any, name: str) -> bool:
    """``value``: True or False (not 0/1 or a string such as ``'false'``, which is truthy)."""
    if not isinstance(value, bool):
        raise ArgumentTypeError(f"{name} {value!r} is not True or False (it is a "
                                f"{type(value).__name__}); pass {name}=True or {name}=False")
    return value


def check_batch_size(batch_size: Any, name: str = "batch_size") -> int:
    """``batch_size``: a positive integer."""
    return check_count(batch_size, name, 1, 128)
