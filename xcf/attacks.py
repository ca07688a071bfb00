"""Adversarial attacks: PGD (l-inf and l2) and FGSM with random start.

All attacks take inputs in [0, 1] of shape (B, C, H, W) and integer labels of shape (B,),
and return adversarial inputs of the same shape inside the eps-ball *and* in [0, 1].

Two things differ from the way many training scripts write PGD, on purpose:

- Gradients are taken with respect to the input only (``torch.autograd.grad``) while the
  model's parameters are frozen, so no weight gradient is ever computed during an attack.
- The model's train/eval mode is set explicitly for the attack (``model_mode``) and every
  module's mode, and every parameter's ``requires_grad``, is restored afterwards, also when
  an exception is raised.

References: Madry et al., ICLR 2018 (PGD, Eq. 2 of Wei et al. 2025); Wong et al., ICLR 2020
(FGSM with random start, "fast AT").  Step sizes follow Table 2 of Wei et al. 2025.
"""
from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from typing import Callable, Iterator, Literal

import torch
import torch.nn as nn
import torch.nn.functional as F

from .inputs import ArgumentError, ImageError, LabelError, LengthError

__all__ = ["Norm", "NORMS", "ModelMode", "LINF_EPS_MAX", "L2_EPS_MAX", "Attack",
           "default_step_size", "attack_mode", "input_gradient", "pgd", "fgsm_rs", "PGD",
           "FGSMRS", "ascent_direction", "project"]

Norm = Literal["linf", "l2"]
NORMS = ("linf", "l2")
ModelMode = Literal["eval", "train"]
# Upper bounds of the attack radius eps, in [0, 1] pixel units, for PGD, FGSMRS and
# xcf.config.TrainConfig alike.  l-inf: a radius of 1 already allows any image; the paper
# uses 8/255.  l2: generous (the paper uses 128/255 ~ 0.5; the diameter of a 32x32x3 image
# in [0, 1] is about 55).
LINF_EPS_MAX = 1.0
L2_EPS_MAX = 64.0
# An attack: ``attack(model, x, y[, generator=...]) -> x_adv`` (PGD, FGSMRS, or any callable).
Attack = Callable[..., torch.Tensor]


def default_step_size(eps: float, norm: Norm) -> float:
    """Training PGD step size of Table 2: eps/4 for l-inf, eps/8 for l2."""
    _check_norm(norm)
    return eps / 4 if norm == "linf" else eps / 8


@contextlib.contextmanager
def attack_mode(model: nn.Module, mode: ModelMode = "eval") -> Iterator[nn.Module]:
    """Put ``model`` in ``mode`` with frozen parameters; restore both on exit.

    Each module's ``training`` flag is restored individually, so a model that had, say,
    frozen batch-norm layers inside a training model comes back exactly as it was.
    """
    if mode not in ("eval", "train"):
        raise ValueError(f"model_mode must be 'eval' or 'train', got {mode!r}")
    modes = [(m, m.training) for m in model.modules()]
    grads = [(p, p.requires_grad) for p in model.parameters()]
    try:
        model.train(mode == "train")
        for p, _ in grads:
            p.requires_grad_(False)
        yield model
    finally:
        for m, was_training in modes:
            m.training = was_training
        for p, flag in grads:
            p.requires_grad_(flag)


def input_gradient(model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                   loss_fn: Callable | None = None, check_labels: bool = False) -> torch.Tensor:
    """d loss / d x for a batch, with the loss *summed* over the batch.

    Summing (not averaging) keeps each sample's gradient independent of the batch size.
    ``check_labels``: first check that every label is below the model's class count (a
    :class:`xcf.inputs.LabelError` naming it, not an index error deep in the loss).
    """
    with torch.enable_grad():  # attacks are often called inside a no_grad evaluation loop
        x = x.detach().requires_grad_(True)
        logits = model(x)
        if check_labels:
            _check_label_range(logits, y)
        loss = (loss_fn or _summed_ce)(logits, y)
        (grad,) = torch.autograd.grad(loss, x)
    return grad


def pgd(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, eps: float,
        alpha: float | None = None, steps: int = 10, norm: Norm = "linf",
        random_start: bool = True, model_mode: ModelMode = "eval",
        loss_fn: Callable | None = None,
        generator: torch.Generator | None = None) -> torch.Tensor:
    """Untargeted projected gradient descent (Madry et al. 2018; Eq. 2).

    Args:
        model: maps (B, C, H, W) inputs in [0, 1] to (B, K) logits.
        x: clean inputs, (B, C, H, W), values in [0, 1].
        y: true labels, (B,), int64.
        eps: radius of the ball, in [0, 1] pixel units (e.g. 8/255 for l-inf, 128/255 for l2).
        alpha: step size; default eps/4 (l-inf) or eps/8 (l2), as in Table 2.
        steps: number of gradient steps (0 returns the random start, or ``x``).
        norm: ``"linf"`` (signed gradient step, box projection) or ``"l2"``
            (normalised gradient step, projection onto the l2 ball).
        random_start: start from a uniform point of the l-inf ball, or a point of the
            l2 ball with uniform radius and direction (the torchattacks convention).
        model_mode: mode the model is in during the attack; restored afterwards.
        loss_fn: ``loss_fn(logits, y) -> scalar`` to ascend; default summed cross-entropy.
        generator: random generator for the start, for reproducible attacks.

    Returns:
        Adversarial inputs, (B, C, H, W), detached, with ``||x_adv - x|| <= eps`` and
        values in [0, 1].
    """
    alpha, y = _check_attack_args(x, y, eps, alpha, steps, norm, model_mode)
    with attack_mode(model, model_mode):
        x = x.detach()
        x_adv = _random_start(x, eps, norm, generator) if random_start else x.clone()
        for i in range(steps):
            grad = input_gradient(model, x_adv, y, loss_fn, check_labels=i == 0)
            x_adv = project(x_adv + alpha * ascent_direction(grad, norm), x, eps, norm)
    return x_adv.detach()


def fgsm_rs(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, eps: float,
            alpha: float | None = None, model_mode: ModelMode = "eval",
            generator: torch.Generator | None = None) -> torch.Tensor:
    """FGSM with random start (Wong, Rice & Kolter, ICLR 2020), the step of fast AT.

    One l-inf PGD step of size ``alpha`` (default 1.25 * eps, Wong et al.'s choice) from a
    uniform random start.  Shapes and guarantees as in :func:`pgd`.
    """
    alpha = 1.25 * eps if alpha is None else alpha
    return pgd(model, x, y, eps=eps, alpha=alpha, steps=1, norm="linf", random_start=True,
               model_mode=model_mode, generator=generator)


@dataclass(frozen=True)
class PGD:
    """A configured PGD attack, callable as ``attack(model, x, y) -> x_adv``.

    >>> attack = PGD(eps=8/255, steps=20)           # the evaluation attack of the paper
    >>> x_adv = attack(model, x, y)
    """

    eps: float
    steps: int = 10
    norm: Norm = "linf"
    alpha: float | None = None
    random_start: bool = True
    model_mode: ModelMode = "eval"

    def __post_init__(self) -> None:
        _check_scalar_args(self.eps, self.alpha, self.steps, self.norm, self.model_mode)
        if not isinstance(self.random_start, bool):
            raise ArgumentError(f"random_start must be True or False, got {self.random_start!r}")

    def __call__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                 generator: torch.Generator | None = None) -> torch.Tensor:
        return pgd(model, x, y, eps=self.eps, alpha=self.alpha, steps=self.steps,
                   norm=self.norm, random_start=self.random_start,
                   model_mode=self.model_mode, generator=generator)


@dataclass(frozen=True)
class FGSMRS:
    """A configured FGSM-with-random-start attack (fast AT), callable like :class:`PGD`."""

    eps: float
    alpha: float | None = None
    model_mode: ModelMode = "eval"

    def __post_init__(self) -> None:
        _check_scalar_args(self.eps, self.alpha, 1, "linf", self.model_mode)

    def __call__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                 generator: torch.Generator | None = None) -> torch.Tensor:
        return fgsm_rs(model, x, y, eps=self.eps, alpha=self.alpha,
                       model_mode=self.model_mode, generator=generator)


# --------------------------------------------------------------------------- building blocks
def ascent_direction(grad: torch.Tensor, norm: Norm) -> torch.Tensor:
    """Steepest-ascent direction of unit ``norm`` for a gradient ``grad`` of shape
    ``(B, ...)``: ``sign(grad)`` for l-inf, ``grad / ||grad||_2`` per sample for l2.
    Returns a tensor of the same shape; a PGD step is ``x_adv + alpha * direction``."""
    if norm == "linf":
        return grad.sign()
    return grad / (_per_sample_norm(grad) + 1e-10)


def project(x_adv: torch.Tensor, x: torch.Tensor, eps: float, norm: Norm) -> torch.Tensor:
    """Project ``x_adv`` onto the ``norm`` ball of radius ``eps`` around ``x`` (per sample),
    then onto the image box [0, 1].  ``x_adv``, ``x``: ``(B, ...)``, same shape; returns
    that shape, detached."""
    delta = x_adv - x
    if norm == "linf":
        delta = delta.clamp(-eps, eps)
    else:
        n = _per_sample_norm(delta)
        delta = delta * torch.clamp(eps / (n + 1e-12), max=1.0)
    # Clamping to [0, 1] after the ball projection never leaves the ball: each coordinate
    # moves towards x, which is itself in [0, 1].
    return (x + delta).clamp(0.0, 1.0).detach()


# --------------------------------------------------------------------------- internals
def _summed_ce(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits.float(), y, reduction="sum")


def _per_sample_norm(t: torch.Tensor) -> torch.Tensor:
    """l2 norm of each sample, shaped (B, 1, 1, ...) for broadcasting."""
    return t.flatten(1).norm(p=2, dim=1).view(-1, *([1] * (t.dim() - 1)))



def _random_start(x: torch.Tensor, eps: float, norm: Norm,
                  generator: torch.Generator | None) -> torch.Tensor:
    if norm == "linf":
        delta = torch.empty_like(x).uniform_(-eps, eps, generator=generator)
    else:
        delta = torch.empty_like(x).normal_(generator=generator)
        radius = torch.empty(x.shape[0], device=x.device).uniform_(0, 1, generator=generator)
        delta = delta / (_per_sample_norm(delta) + 1e-12) * radius.view(-1, *([1] * (x.dim() - 1))) * eps
    return (x + delta).clamp(0.0, 1.0)


def _check_norm(norm: str) -> None:
    if norm not in NORMS:
        raise ArgumentError(f"unknown norm {norm!r}; use one of {NORMS}")


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _check_scalar_args(eps: float, alpha: float | None, steps: int, norm: str,
                       model_mode: str = "eval") -> float:
    _check_norm(norm)
    if not (_is_number(eps) and math.isfinite(eps)) or eps < 0:
        raise ArgumentError(f"eps must be a finite number >= 0, got {eps!r} (e.g. 8/255 for "
                            "l-inf)")
    if norm == "linf" and eps > LINF_EPS_MAX:
        raise ArgumentError(f"eps must be at most 1 for l-inf (pixels in [0, 1]), got {eps!r}: "
                            f"a radius in 0-255 units? use {eps:g}/255")
    # A zero step is only meaningful with a zero radius (e.g. fast AT's 1.25 * eps at eps = 0).
    if alpha is not None and not (_is_number(alpha) and math.isfinite(alpha)
                                  and (alpha > 0 or (alpha == 0 and eps == 0))):
        raise ArgumentError(f"alpha (step size) must be a finite number > 0, got {alpha!r}; "
                            "leave it None for Table 2's default")
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 0:
        raise ArgumentError(f"steps must be a non-negative integer, got {steps!r}")
    if model_mode not in ("eval", "train"):
        raise ArgumentError(f"model_mode must be 'eval' or 'train', got {model_mode!r}")
    return default_step_size(eps, norm) if alpha is None else alpha


def _check_attack_args(x: torch.Tensor, y: torch.Tensor, eps: float, alpha: float | None,
                       steps: int, norm: str, model_mode: str = "eval"
                       ) -> tuple[float, torch.Tensor]:
    """The scalar arguments, then the images (a float tensor (B, ...) of finite values in
    [0, 1], B >= 1) and labels (integers (B,) >= 0, made int64); returns ``(alpha, y)``.
    Labels at or above the model's class count are caught at the first forward
    (:func:`_check_label_range`)."""
    alpha = _check_scalar_args(eps, alpha, steps, norm, model_mode)
    if not isinstance(x, torch.Tensor):
        raise ImageError(f"x must be a torch.Tensor of images in [0, 1], got "
                         f"{type(x).__name__}; pass torch.as_tensor(x)")
    if not x.is_floating_point():
        fix = "x.float() / 255" if x.dtype == torch.uint8 else "x.float()"
        raise ImageError(f"x has dtype {x.dtype}; images must be floating point in [0, 1]: "
                         f"pass {fix}")
    if x.dim() < 2 or x.shape[0] == 0:
        raise ImageError(f"x has shape {tuple(x.shape)}; an attack needs a batch (B, C, H, W) "
                         "of at least one image")
    if not isinstance(y, torch.Tensor):
        raise LabelError(f"y must be a torch.Tensor of class indices, got {type(y).__name__}; "
                         "pass torch.as_tensor(y)")
    if y.is_floating_point() or y.is_complex() or y.dtype == torch.bool:
        raise LabelError(f"y has dtype {y.dtype}; labels must be integer class indices: pass "
                         "y.long()")
    if y.dim() != 1 or x.shape[0] != y.shape[0]:
        raise LengthError(f"expected x of shape (B, ...) and y of shape (B,), got "
                          f"{tuple(x.shape)} and {tuple(y.shape)}")
    finite = torch.isfinite(x)
    if not bool(finite.all()):
        raise ImageError(f"x holds {x[~finite][0].item()} (not finite); inputs must lie in "
                         "[0, 1]: drop or repair those images")
    if x.min() < 0 or x.max() > 1:
        raise ImageError(
            f"inputs must lie in [0, 1] (got min {x.min().item():.3g}, max {x.max().item():.3g}); "
            "normalise inside the model, not before the attack"
        )
    if int(y.min()) < 0:
        raise LabelError(f"label {int(y.min())} is negative; labels are class indices 0..K-1")
    if norm == "l2" and eps > math.sqrt(x[0].numel()):
        raise ArgumentError(f"eps {eps!r} is larger than the l2 diameter of the image box "
                            f"(sqrt({x[0].numel()}) = {math.sqrt(x[0].numel()):.3g}); l2 radii "
                            "are in [0, 1] pixel units, e.g. 128/255")
    return alpha, y.long()


def _check_label_range(logits: torch.Tensor, y: torch.Tensor) -> None:
    k = logits.shape[1]
    if int(y.max()) >= k:
        raise LabelError(f"label {int(y.max())} is outside [0, {k - 1}] for the model's {k} "
                         "classes: pass labels 0..K-1")
