"""PGD (l-inf and l2) and FGSM with random start: the functions and the configured attacks
of :mod:`xcf.attacks` (whose docstring says what differs from common training scripts, and
cites the papers); their settings are checked by :mod:`xcf.attacks._checks`."""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Callable, Iterator

import torch
import torch.nn as nn
import torch.nn.functional as F



from xcf.attacks._checks import (ModelMode, Norm, _check_batch, _check_eps, _check_logits,
                                 _check_model, _check_model_mode, _check_settings, _norm_error)

__all__ = ["default_step_size", "attack_mode", "input_gradient", "pgd", "fgsm_rs", "PGD",
           "FGSMRS", "ascent_direction", "project"]


def default_step_size(eps: float, norm: Norm) -> float:
    """Training PGD step size of Table 2: eps/4 for l-inf, eps/8 for l2."""
    eps = _check_eps(eps, norm)
    return eps / 4 if norm == "linf" else eps / 8


@contextlib.contextmanager
def attack_mode(model: nn.Module, mode: ModelMode = "eval") -> Iterator[nn.Module]:
    """Put ``model`` in ``mode`` with frozen parameters; restore both on exit.

    Each module's ``training`` flag is restored individually, so a model that had, say,
    frozen batch-norm layers inside a training model comes back exactly as it was.
    """
    _check_model_mode(mode)
    _check_model(model)
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
    ``check_labels``: first check that the model returned logits (B, K) and that every
    label is below K (a :class:`xcf.inputs.ShapeError` or :class:`xcf.inputs.LabelError`
    naming it, not an index error deep in the loss).
    """
    with torch.enable_grad():  # attacks are often called inside a no_grad evaluation loop
        x = x.detach().requires_grad_(True)
        logits = model(x)
        if check_labels:
            _check_logits(logits, y)
        loss = (loss_fn or _summed_ce)(logits, y)
        (grad,) = torch.autograd.grad(loss, x)
    return grad


def pgd(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, eps: float,
        alpha: float | None = None, steps: int = 10, norm: Norm = "linf",
        random_start: bool = True, model_mode: ModelMode = "eval",
        loss_fn: Callable | None = None,
        generator: torch.Generator | None = None) -> torch.Tensor:
    r"""Untargeted projected gradient descent, from 'Towards Deep Learning Models Resistant
    to Adversarial Attacks' (Madry et al., ICLR 2018) [https://arxiv.org/abs/1706.06083];
    the inner maximisation of Eq. 2 of Wei, Guo & Wang (ICML 2025).

    Distance Measure : Linf (``norm="linf"``), L2 (``norm="l2"``)

    Arguments:
        model (nn.Module): maps (B, C, H, W) inputs in [0, 1] to (B, K) logits; its mode
            and ``requires_grad`` flags are restored afterwards.
        x (torch.Tensor): clean inputs, floating point, finite, values in [0, 1].
        y (torch.Tensor): true labels, integers in [0, K); int32 labels are used as int64.
        eps (float): radius of the ball in [0, 1] pixel units, e.g. 8/255 for l-inf,
            128/255 for l2; at most :data:`LINF_EPS_MAX` (l-inf) or :data:`L2_EPS_MAX` and
            the image box's diameter (l2).  0: no attack.
        alpha (float): step size, > 0 (0 only with eps 0). (Default: None, Table 2's
            eps/4 for l-inf, eps/8 for l2)
        steps (int): number of gradient steps, >= 0; 0 returns the random start, or ``x``.
            (Default: 10)
        norm (str): ``"linf"`` (signed gradient step, box projection) or ``"l2"``
            (normalised gradient step, projection onto the l2 ball). (Default: "linf")
        random_start (bool): start from a uniform point of the l-inf ball, or a point of the
            l2 ball with uniform radius and direction (the torchattacks convention).
            (Default: True)
        model_mode (str): ``"eval"`` or ``"train"``, the model's mode during the attack.
            (Default: "eval")
        loss_fn (callable): ``loss_fn(logits, y) -> scalar`` to ascend. (Default: None,
            summed cross-entropy)
        generator (torch.Generator): random generator for the start, for reproducible
            attacks. (Default: None)

    Shape:
        - x: :math:`(B, C, H, W)`, B >= 1 (any ``(B, ...)`` the model accepts).
        - y: :math:`(B)`, each :math:`0 \leq y_i < K`.
        - output: :math:`(B, C, H, W)`, detached, with ``||x_adv - x|| <= eps`` and values
          in [0, 1].

    Raises:
        xcf.inputs.ArgumentError: a setting out of range (``ArgumentTypeError``, also a
            ``TypeError``, for one of the wrong type), checked before any forward pass.
        xcf.inputs.ImageError, LabelError, LengthError: bad images or labels, checked
            before any forward pass; a label at or above K at the first forward.
        xcf.inputs.ShapeError: the model's output is not (B, K) logits (first forward).

    Examples::
        >>> x_adv = pgd(model, x, y, eps=8/255, steps=20)   # the paper's evaluation attack
    """
    eps, alpha = _check_settings(eps, alpha, steps, norm, random_start, model_mode)
    y = _check_batch(model, x, y, eps, norm, generator, loss_fn)
    alpha = default_step_size(eps, norm) if alpha is None else alpha
    return _pgd(model, x, y, eps, alpha, steps, norm, random_start, model_mode, loss_fn,
                generator)


def fgsm_rs(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, eps: float,
            alpha: float | None = None, model_mode: ModelMode = "eval",
            generator: torch.Generator | None = None) -> torch.Tensor:
    """FGSM with random start, from 'Fast is better than free: Revisiting adversarial
    training' (Wong, Rice & Kolter, ICLR 2020) [https://arxiv.org/abs/2001.03994], the step
    of fast AT.

    One l-inf PGD step of size ``alpha`` (default 1.25 * eps, Wong et al.'s choice) from a
    uniform random start.  Arguments, shapes, guarantees and errors as in :func:`pgd`
    (``norm="linf"``, ``steps=1``, ``random_start=True``).
    """
    eps, alpha = _check_settings(eps, alpha, 1, "linf", True, model_mode)
    y = _check_batch(model, x, y, eps, "linf", generator, None)
    alpha = 1.25 * eps if alpha is None else alpha
    return _pgd(model, x, y, eps, alpha, 1, "linf", True, model_mode, None, generator)


@dataclass(frozen=True)
class PGD:
    r"""PGD in the paper 'Towards Deep Learning Models Resistant to Adversarial Attacks'
    (Madry et al., ICLR 2018) [https://arxiv.org/abs/1706.06083], configured once and
    callable as ``attack(model, x, y[, generator]) -> x_adv`` (see :func:`pgd`).

    Distance Measure : Linf (``norm="linf"``), L2 (``norm="l2"``)

    Arguments:
        eps (float): radius in [0, 1] pixel units, e.g. 8/255 (l-inf) or 128/255 (l2).
        steps (int): number of gradient steps, >= 0. (Default: 10)
        norm (str): ``"linf"`` or ``"l2"``. (Default: "linf")
        alpha (float): step size. (Default: None, eps/4 for l-inf, eps/8 for l2, Table 2)
        random_start (bool): start from a random point of the ball. (Default: True)
        model_mode (str): ``"eval"`` or ``"train"`` during the attack. (Default: "eval")

    The settings are checked when the attack is made (:class:`xcf.inputs.ArgumentError`
    naming the value; :class:`xcf.inputs.ArgumentTypeError`, also a ``TypeError``, for a
    value of the wrong type), the images and labels when it is called.

    Shape:
        - x: :math:`(B, C, H, W)` with values in [0, 1], B >= 1.
        - y: :math:`(B)`, each :math:`0 \leq y_i < K`, K the model's number of classes.
        - output: :math:`(B, C, H, W)`, within eps of x and in [0, 1].

    Examples::
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
        _check_settings(self.eps, self.alpha, self.steps, self.norm, self.random_start,
                        self.model_mode)

    def __call__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                 generator: torch.Generator | None = None) -> torch.Tensor:
        return pgd(model, x, y, eps=self.eps, alpha=self.alpha, steps=self.steps,
                   norm=self.norm, random_start=self.random_start,
                   model_mode=self.model_mode, generator=generator)


@dataclass(frozen=True)
class FGSMRS:
    r"""FGSM with random start in the paper 'Fast is better than free: Revisiting
    adversarial training' (Wong, Rice & Kolter, ICLR 2020) [https://arxiv.org/abs/2001.03994]
    (fast AT), callable like :class:`PGD` (see :func:`fgsm_rs`).

    Distance Measure : Linf

    Arguments:
        eps (float): radius in [0, 1] pixel units, e.g. 8/255.
        alpha (float): step size. (Default: None, 1.25 * eps)
        model_mode (str): ``"eval"`` or ``"train"`` during the attack. (Default: "eval")

    Settings are checked when the attack is made, images and labels when it is called, as
    for :class:`PGD`.

    Shape:
        - x: :math:`(B, C, H, W)` with values in [0, 1], B >= 1.
        - y: :math:`(B)`, each :math:`0 \leq y_i < K`.
        - output: :math:`(B, C, H, W)`, within eps of x (l-inf) and in [0, 1].

    Examples::
        >>> attack = FGSMRS(eps=8/255)                  # fast AT's training attack
        >>> x_adv = attack(model, x, y, generator=torch.Generator().manual_seed(0))
    """

    eps: float
    alpha: float | None = None
    model_mode: ModelMode = "eval"

    def __post_init__(self) -> None:
        _check_settings(self.eps, self.alpha, 1, "linf", True, self.model_mode)

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
    if norm == "l2":
        return grad / (_per_sample_norm(grad) + 1e-10)
    raise _norm_error(norm)


def project(x_adv: torch.Tensor, x: torch.Tensor, eps: float, norm: Norm) -> torch.Tensor:
    """Project ``x_adv`` onto the ``norm`` ball of radius ``eps`` around ``x`` (per sample),
    then onto the image box [0, 1].  ``x_adv``, ``x``: ``(B, ...)``, same shape; returns
    that shape, detached."""
    delta = x_adv - x
    if norm == "linf":
        delta = delta.clamp(-eps, eps)
    elif norm == "l2":
        n = _per_sample_norm(delta)
        delta = delta * torch.clamp(eps / (n + 1e-12), max=1.0)
    else:
        raise _norm_error(norm)
    # Clamping to [0, 1] after the ball projection never leaves the ball: each coordinate
    # moves towards x, which is itself in [0, 1].
    return (x + delta).clamp(0.0, 1.0).detach()


# --------------------------------------------------------------------------- internals
def _pgd(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, alpha: float,
         steps: int, norm: Norm, random_start: bool, model_mode: ModelMode,
         loss_fn: Callable | None, generator: torch.Generator | None) -> torch.Tensor:
    """The PGD loop on checked arguments (no check inside the loop but the label range
    and the logits' shape at the first forward)."""
    with attack_mode(model, model_mode):
        x = x.detach()
        x_adv = _random_start(x, eps, norm, generator) if random_start else x.clone()
        for i in range(steps):
            grad = input_gradient(model, x_adv, y, loss_fn, check_labels=i == 0)
            x_adv = project(x_adv + alpha * ascent_direction(grad, norm), x, eps, norm)
    return x_adv.detach()


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
        radius = radius.view(-1, *([1] * (x.dim() - 1)))
        delta = delta / (_per_sample_norm(delta) + 1e-12) * radius * eps
    return (x + delta).clamp(0.0, 1.0)


# --------------------------------------------------------------------------- checks
# The settings are checked when an attack is made and again (microseconds) when it runs;
# the batch once per call, before any forward pass; the label range and the logits' shape
# at the first forward.  Messages follow xcf.inputs: the bad value, then the fix.  A value
# of the wrong type raises ArgumentTypeError (an ArgumentError and a TypeError).
