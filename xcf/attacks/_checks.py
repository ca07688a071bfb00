"""The checks of the attacks' settings and batches: each bad value is refused before the
model runs, with an :mod:`xcf.inputs` error naming it and the fix (one pass over the batch;
nothing inside the PGD loop)."""
from __future__ import annotations

import math
import numbers
from typing import Callable, Literal

import torch
import torch.nn as nn

from xcf.inputs import (ArgumentError, ArgumentTypeError, ImageError, LabelError, LengthError,
                        ShapeError, _first_bad)

__all__ = ["Norm", "NORMS", "ModelMode", "MODEL_MODES", "LINF_EPS_MAX", "L2_EPS_MAX", "Attack"]

Norm = Literal["linf", "l2"]
NORMS = ("linf", "l2")
ModelMode = Literal["eval", "train"]
MODEL_MODES = ("eval", "train")
# Upper bounds of the attack radius eps, in [0, 1] pixel units, for PGD, FGSMRS and
# xcf.config.TrainConfig alike.  l-inf: a radius of 1 already allows any image; the paper
# uses 8/255.  l2: generous (the paper uses 128/255 ~ 0.5; the diameter of a 32x32x3 image
# in [0, 1] is about 55).
LINF_EPS_MAX = 1.0
L2_EPS_MAX = 64.0
# An attack: ``attack(model, x, y[, generator=...]) -> x_adv`` (PGD, FGSMRS, or any callable).
Attack = Callable[..., torch.Tensor]



def _kind(value) -> str:
    return f" (type {type(value).__name__})"


def _is_real(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _norm_error(norm) -> ArgumentError:
    error, kind = (ArgumentError, "") if isinstance(norm, str) else (ArgumentTypeError,
                                                                     _kind(norm))
    return error(f"unknown norm {norm!r}{kind}; use one of {NORMS}")


def _check_norm(norm) -> None:
    if not (isinstance(norm, str) and norm in NORMS):
        raise _norm_error(norm)


def _check_model_mode(mode) -> None:
    if not (isinstance(mode, str) and mode in MODEL_MODES):
        error, kind = (ArgumentError, "") if isinstance(mode, str) else (ArgumentTypeError,
                                                                         _kind(mode))
        raise error(f"model_mode must be 'eval' or 'train', got {mode!r}{kind}; 'eval' (the "
                    "default) attacks with frozen batch-norm statistics")


def _check_eps(eps, norm) -> float:
    """``eps`` as a float in [0, the bound of ``norm``]; ``norm`` is checked first."""
    _check_norm(norm)
    example = "8/255" if norm == "linf" else "128/255"
    need = f"eps must be a finite number >= 0, got {eps!r}"
    fix = f"pass the radius in [0, 1] pixel units, e.g. eps={example} (0: no attack)"
    if not _is_real(eps):
        raise ArgumentTypeError(f"{need}{_kind(eps)}; {fix}")
    if not math.isfinite(eps) or eps < 0:
        raise ArgumentError(f"{need}; {fix}")
    high, const, shown = ((LINF_EPS_MAX, "LINF_EPS_MAX", "l-inf") if norm == "linf" else
                          (L2_EPS_MAX, "L2_EPS_MAX", "l2"))
    if eps > high:
        raise ArgumentError(f"eps must be at most {high:g} for {shown} (pixels in [0, 1]; "
                            f"xcf.attacks.{const}), got {eps!r}: a radius in 0-255 units? use "
                            f"{eps:g}/255")
    return float(eps)


def _check_alpha(alpha, eps: float) -> float | None:
    """An explicit step size as a float: > 0 (0 only with eps 0), with no upper bound (a
    step of 2 eps or more lands every moved pixel on the face of the l-inf ball, which
    tests rely on); ``None`` (the default step) stays ``None``."""
    if alpha is None:
        return None
    need = f"alpha (step size) must be a finite number > 0, got {alpha!r}"
    fix = "leave it None for Table 2's default (eps/4 for l-inf, eps/8 for l2)"
    if not _is_real(alpha):
        raise ArgumentTypeError(f"{need}{_kind(alpha)}; {fix}")
    # A zero step is only meaningful with a zero radius (e.g. fast AT's 1.25 * eps at eps = 0).
    if not (math.isfinite(alpha) and (alpha > 0 or (alpha == 0 and eps == 0))):
        raise ArgumentError(f"{need}; {fix}")
    return float(alpha)


def _check_settings(eps, alpha, steps, norm, random_start, model_mode
                    ) -> tuple[float, float | None]:
    """The scalar settings of an attack, each with a message naming it; returns ``(eps,
    alpha)`` as floats (``alpha`` ``None`` for the default step)."""
    eps = _check_eps(eps, norm)
    alpha = _check_alpha(alpha, eps)
    if not _is_int(steps) or steps < 0:
        error, kind = (ArgumentError, "") if _is_int(steps) else (ArgumentTypeError,
                                                                  _kind(steps))
        raise error(f"steps must be a non-negative integer, got {steps!r}{kind}; pass an "
                    "integer >= 0, e.g. steps=10 (0: no gradient step)")
    if not isinstance(random_start, bool):
        raise ArgumentTypeError(f"random_start must be True or False, got {random_start!r}"
                                f"{_kind(random_start)}; pass random_start=True or False")
    _check_model_mode(model_mode)
    return eps, alpha


def _check_model(model) -> None:
    if not isinstance(model, nn.Module):
        raise ArgumentTypeError(f"model must be a torch.nn.Module (its mode is set for the "
                                f"attack and its weights frozen), got {type(model).__name__}; "
                                "wrap a function in an nn.Module whose forward calls it")


def _check_batch(model, x, y, eps: float, norm: Norm, generator, loss_fn) -> torch.Tensor:
    """The call arguments of an attack, before any forward pass: ``model`` an
    ``nn.Module``; ``x`` a float tensor (B, ...) of finite values in [0, 1], B >= 1; ``y``
    integers (B,) >= 0 (returned as int64); ``generator`` a ``torch.Generator`` or
    ``None``; ``loss_fn`` callable or ``None``; an l2 radius within the image box's
    diameter.  One pass over ``x`` (the search for the bad sample runs only on failure).
    Labels at or above the model's class count are caught at the first forward
    (:func:`_check_logits`)."""
    _check_model(model)
    if not isinstance(x, torch.Tensor):
        raise ImageError(f"x must be a torch.Tensor of images in [0, 1], got "
                         f"{type(x).__name__}; pass torch.as_tensor(x)")
    if not x.is_floating_point():
        fix = "x.float() / 255" if x.dtype == torch.uint8 else "x.float()"
        raise ImageError(f"x has dtype {x.dtype}; images must be floating point in [0, 1]: "
                         f"pass {fix}")
    if x.dim() < 2 or x.shape[0] == 0 or x.numel() == 0:
        raise ImageError(f"x has shape {tuple(x.shape)}; an attack needs a batch (B, C, H, W) "
                         "of at least one image (one image: x.unsqueeze(0))")
    if not isinstance(y, torch.Tensor):
        raise LabelError(f"y must be a torch.Tensor of class indices, got {type(y).__name__}; "
                         "pass torch.as_tensor(y)")
    if y.is_floating_point() or y.is_complex() or y.dtype == torch.bool:
        raise LabelError(f"y has dtype {y.dtype}; labels must be integer class indices: pass "
                         "y.long()")
    if y.dim() != 1:
        raise LabelError(f"y has shape {tuple(y.shape)}; labels must be (B,), one class index "
                         "per image: pass y.view(-1) for (B, 1), y.argmax(1) for one-hot")
    if x.shape[0] != y.shape[0]:
        raise LengthError(f"expected x of shape (B, ...) and y of shape (B,), got "
                          f"{tuple(x.shape)} and {tuple(y.shape)}: pass one label per image")
    if not bool(((x >= 0) & (x <= 1)).all()):  # also False at NaN and inf
        _raise_image_values(x)
    low = int(y.min())
    if low < 0:
        i = int((y == low).nonzero()[0, 0])
        raise LabelError(f"label {low} is negative (sample {i} of y); labels are class "
                         "indices 0..K-1")
    if generator is not None and not isinstance(generator, torch.Generator):
        raise ArgumentTypeError(f"generator must be a torch.Generator or None, got "
                                f"{type(generator).__name__}; pass "
                                "torch.Generator(device=x.device).manual_seed(seed)")
    if loss_fn is not None and not callable(loss_fn):
        raise ArgumentTypeError(f"loss_fn must be callable as loss_fn(logits, y) -> scalar, "
                                f"got {loss_fn!r}; leave it None for the summed cross-entropy")
    if norm == "l2" and eps > math.sqrt(x[0].numel()):
        raise ArgumentError(f"eps {eps!r} is larger than the l2 diameter of the image box "
                            f"(sqrt({x[0].numel()}) = {math.sqrt(x[0].numel()):.3g}); l2 radii "
                            "are in [0, 1] pixel units, e.g. 128/255")
    return y.long()


def _raise_image_values(x: torch.Tensor) -> None:
    """Name the first non-finite value of ``x``, else the first outside [0, 1]."""
    finite = torch.isfinite(x)
    if not bool(finite.all()):
        i = _first_bad(~finite)
        raise ImageError(f"x holds {x[i][~finite[i]][0].item()} (first in sample {i}; not "
                         "finite); inputs must lie in [0, 1]: drop or repair those images")
    low, high = float(x.min()), float(x.max())
    bad = low if low < 0 else high
    i = _first_bad((x < 0) | (x > 1))
    raise ImageError(f"x holds {bad:.4g} (first in sample {i}; values span [{low:.4g}, "
                     f"{high:.4g}]), outside [0, 1]: pass unnormalised images in [0, 1] and "
                     "normalise inside the model, not before the attack")


def _check_logits(logits, y: torch.Tensor) -> None:
    """At the first forward: logits (B, K), K >= 1, and every label below K."""
    if not isinstance(logits, torch.Tensor) or logits.dim() < 2 or (
            logits.shape[0] != y.shape[0] or logits.shape[1] == 0):
        got = (f"shape {tuple(logits.shape)}" if isinstance(logits, torch.Tensor)
               else f"a {type(logits).__name__}")
        raise ShapeError(f"the model returned {got} for a batch of {y.shape[0]} images; an "
                         "attack needs logits (B, K): return model(x) of shape (B, K), not "
                         "features or a tuple")
    k = logits.shape[1]
    high = int(y.max())
    if high >= k:
        i = int((y == high).nonzero()[0, 0])
        raise LabelError(f"label {high} is outside [0, {k - 1}] for the model's {k} classes "
                         f"(sample {i} of y): pass labels 0..K-1")
