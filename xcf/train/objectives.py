"""Training objectives: the losses and the perturb-then-loss steps of each kind of training.

One concept: *what one batch minimises*.  Each :class:`Objective` is a ``perturb`` step
(inner maximisation with the weights frozen and input gradients only, :mod:`xcf.attacks`)
followed by a ``loss`` step:

- ``standard``: :class:`Objective`, cross-entropy on clean inputs;
- ``pgd_at`` / ``fast_at``: :class:`AdversarialCE`, cross-entropy on PGD examples
  (Madry et al. 2018; Eq. 1-2 of Wei, Guo & Wang, ICML 2025) or on FGSM-with-random-start
  examples (Wong et al. 2020);
- ``kd_at``: :class:`DistillationAT`, :func:`distillation_loss` against a frozen teacher
  (Eq. 3);
- ``trades``: :class:`Trades`, :func:`trades_perturb` then :func:`trades_loss`
  (Zhang et al. 2019).

:func:`build_objective` makes the objective of a resolved :class:`~xcf.runs.config.TrainConfig`.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from xcf.attacks import FGSMRS, PGD, Attack, ascent_direction, attack_mode, input_gradient, project
from xcf.runs.config import TrainConfig

__all__ = ["cross_entropy", "kl_divergence", "distillation_loss", "soft_target_loss",
           "shuffle_off_true", "trades_loss", "Step", "Objective", "Standard", "AdversarialCE",
           "DistillationAT", "ShuffledDistillationAT", "MatchedSmoothingAT", "trades_perturb",
           "Trades", "build_objective"]


# =========================================================================== losses

def cross_entropy(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of ``(B, K)`` logits (in float32, also under bf16 autocast)."""
    return F.cross_entropy(logits.float(), y)


def kl_divergence(p_logits: torch.Tensor, q_logits: torch.Tensor,
                  temperature: float = 1.0) -> torch.Tensor:
    """``KL(softmax(p/T) || softmax(q/T))``, averaged over the batch: ``(B, K), (B, K) -> ()``.

    ``F.kl_div(input, target)`` computes ``sum target * (log target - input)``, i.e.
    ``KL(target || exp(input))``: the *second* argument is the reference distribution.
    """
    log_q = F.log_softmax(q_logits.float() / temperature, dim=1)
    p = F.softmax(p_logits.float() / temperature, dim=1)
    return F.kl_div(log_q, p, reduction="batchmean")


def distillation_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor,
                      y: torch.Tensor, lam: float, temperature: float,
                      form: str = "eq3") -> torch.Tensor:
    """KD-AT loss, Eq. 3, on student logits ``s`` and teacher logits ``t`` ``(B, K)`` of
    the *same* adversarial input x + delta:

    - ``form="eq3"`` (default), Eq. 3 as printed:
      ``(1 - lam) * CE(s, y) + lam * KL(softmax(t / T) || softmax(s / T))``;
    - ``form="hinton"``, the Hinton et al. (2015) form of the KD-AT code the paper builds
      on (Chen et al. 2021): the soft term times ``T^2``, which keeps its gradient scale
      independent of T.  At lam 0.5 and T 2 its soft term weighs 2, against 0.5 in Eq. 3.

    KL direction: the teacher is the reference distribution in both forms.  Eq. 3 writes
    ``KL(f(theta, x+delta)/T, f(theta_0, x+delta)/T)``, student first: the argument order
    of ``torch.nn.functional.kl_div(student_log_probs, teacher_probs)``, which computes
    KL(teacher || student), and the direction of Hinton et al.  At ``lam = 0`` the loss
    is exactly the PGD-AT cross-entropy.
    """
    if form not in ("eq3", "hinton"):
        raise ValueError(f"form must be 'eq3' (Eq. 3 as printed) or 'hinton' (with T^2), "
                         f"got {form!r}")
    ce = cross_entropy(student_logits, y)
    if lam == 0:
        return ce
    kl = kl_divergence(teacher_logits, student_logits, temperature)
    scale = temperature ** 2 if form == "hinton" else 1.0
    return (1 - lam) * ce + lam * scale * kl


def soft_target_loss(student_logits: torch.Tensor, target: torch.Tensor, y: torch.Tensor,
                     lam: float, temperature: float, form: str = "eq3") -> torch.Tensor:
    """:func:`distillation_loss` with the teacher's tempered distribution given directly
    as ``target`` probabilities ``(B, K)`` (rows summing to 1): ``(1 - lam) CE + lam
    [T^2] KL(target || softmax(student / T))``, the soft term of KD-AT for soft labels
    that are not a teacher's (the controls of :class:`ShuffledDistillationAT` and
    :class:`MatchedSmoothingAT`)."""
    if form not in ("eq3", "hinton"):
        raise ValueError(f"form must be 'eq3' or 'hinton', got {form!r}")
    log_q = F.log_softmax(student_logits.float() / temperature, dim=1)
    p = target.float()
    kl = (p * (torch.log(p.clamp_min(1e-12)) - log_q)).sum(dim=1).mean()
    scale = temperature ** 2 if form == "hinton" else 1.0
    return (1 - lam) * cross_entropy(student_logits, y) + lam * scale * kl


def shuffle_off_true(p: torch.Tensor, y: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
    """``p`` ``(B, K)`` with, in each row, the probabilities of the K - 1 classes other
    than ``y`` permuted among themselves by the order of ``keys`` ``(B, K)`` (random
    numbers): the true class keeps its probability, so confidence and entropy stay the
    teacher's, and which other classes it found similar is lost."""
    B, K = p.shape
    others = torch.argsort(torch.where(torch.arange(K, device=p.device) == y[:, None],
                                       torch.full_like(p, float("inf")),
                                       torch.zeros_like(p)), dim=1, stable=True)[:, :K - 1]
    order = torch.argsort(keys.gather(1, others), dim=1)      # a random permutation per row
    out = p.clone()
    out.scatter_(1, others, p.gather(1, others.gather(1, order)))
    return out


def trades_loss(clean_logits: torch.Tensor, adv_logits: torch.Tensor, y: torch.Tensor,
                beta: float) -> torch.Tensor:
    """TRADES (Zhang et al. 2019): ``CE(f(x), y) + beta * KL(f(x) || f(x_adv))``, the KL
    between softmax outputs averaged over the batch (``(1/B) * KLDivLoss(sum)`` of the
    official code).  Gradients flow through both terms."""
    return cross_entropy(clean_logits, y) + beta * kl_divergence(clean_logits, adv_logits)


# =========================================================================== objectives

@dataclass
class Step:
    """What one objective computed on a batch."""

    loss: torch.Tensor                      # () the quantity minimised
    logits: torch.Tensor                    # (B, K) on the inputs trained on
    clean_logits: Optional[torch.Tensor]    # (B, K) on clean x, if computed
    adv_logits: Optional[torch.Tensor]      # (B, K) on x_adv, if computed


class Objective:
    """An objective: ``perturb`` (inner maximisation, weights frozen) then ``loss``.

    ``perturb(model, x, y, generator) -> x_adv`` or ``None``;
    ``loss(model, x, y, x_adv) -> Step``, with the model already in train mode.
    """

    name = "standard"
    adversarial = False    # whether perturb() makes adversarial examples
    computes_clean = True  # whether loss() yields clean logits (else the loop adds them)

    def perturb(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                generator: Optional[torch.Generator] = None) -> Optional[torch.Tensor]:
        return None

    def loss(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor,
             x_adv: Optional[torch.Tensor]) -> Step:
        logits = model(x)
        return Step(cross_entropy(logits, y), logits, logits, None)


Standard = Objective


class AdversarialCE(Objective):
    """Cross-entropy on ``attack(model, x, y)``: PGD-AT (Eq. 1-2) or fast AT (FGSM-RS)."""

    adversarial = True
    computes_clean = False

    def __init__(self, attack: Attack, name: str = "pgd_at") -> None:
        self.attack, self.name = attack, name
        # Attacks of xcf.attacks take the generator; a plain callable may not.
        self._takes_generator = "generator" in inspect.signature(attack).parameters

    def perturb(self, model, x, y, generator=None):
        if generator is not None and self._takes_generator:
            return self.attack(model, x, y, generator=generator)
        return self.attack(model, x, y)

    def loss(self, model, x, y, x_adv):
        logits = model(x_adv)
        return Step(cross_entropy(logits, y), logits, None, logits)


class DistillationAT(AdversarialCE):
    """KD-AT (Eq. 3): adversarial examples against the student's cross-entropy, then
    :func:`distillation_loss` against a frozen teacher on the same adversarial input."""

    def __init__(self, attack: Attack, teacher: nn.Module, lam: float, temperature: float,
                 form: str = "eq3") -> None:
        super().__init__(attack, "kd_at")
        self.teacher, self.lam, self.temperature = teacher.eval(), lam, temperature
        self.form = form
        for p in self.teacher.parameters():
            p.requires_grad_(False)

    def loss(self, model, x, y, x_adv):
        logits = model(x_adv)
        with torch.no_grad():
            teacher_logits = self.teacher(x_adv)
        loss = distillation_loss(logits, teacher_logits, y, self.lam, self.temperature,
                                 self.form)
        return Step(loss, logits, None, logits)


class ShuffledDistillationAT(DistillationAT):
    """KD-AT against the teacher's soft labels with their class structure destroyed
    (issue 28's control): per sample the tempered teacher distribution keeps its
    true-class probability and its other probabilities are permuted at random
    (:func:`shuffle_off_true`).  The permutation's random keys come from the epoch's
    generator after each batch's attack, so a run is deterministic and resumes exactly."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.name = "kd_at (shuffled soft labels)"
        self._keys: Optional[torch.Tensor] = None

    def perturb(self, model, x, y, generator=None):
        x_adv = super().perturb(model, x, y, generator)
        K = self.teacher.head.out_features  # every xcf model is head(features(x))
        where = generator.device if generator is not None else torch.device("cpu")
        self._keys = torch.rand(x.shape[0], K, generator=generator, device=where).to(x.device)
        return x_adv

    def loss(self, model, x, y, x_adv):
        logits = model(x_adv)
        with torch.no_grad():
            p = F.softmax(self.teacher(x_adv).float() / self.temperature, dim=1)
            if self._keys is None or self._keys.shape != p.shape:
                raise RuntimeError("ShuffledDistillationAT.loss needs perturb() on the same "
                                   "batch first (it draws the permutation's keys)")
            target = shuffle_off_true(p, y, self._keys)
        loss = soft_target_loss(logits, target, y, self.lam, self.temperature, self.form)
        return Step(loss, logits, None, logits)


class MatchedSmoothingAT(DistillationAT):
    """Label smoothing matched to the teacher (issue 28's second control): the soft term
    of KD-AT against ``q`` on the true class and ``(1 - q) / (K - 1)`` on each other,
    where ``q`` is the teacher's mean tempered true-class probability on the clean
    training images (:meth:`match`, recorded in the run as :attr:`record`)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.name = "kd_at (matched label smoothing)"
        self.q: Optional[float] = None

    @torch.no_grad()
    def match(self, x: torch.Tensor, y: torch.Tensor, batch: int = 500) -> float:
        """Set ``q`` from the teacher on ``x`` ``(N, C, H, W)`` in [0, 1] (uint8 images
        stored 255 x are scaled), labels ``y`` ``(N,)``; returns it."""
        total = 0.0
        for i in range(0, len(y), batch):
            xb = x[i:i + batch]
            xb = xb.float() / 255 if xb.dtype == torch.uint8 else xb.float()
            p = F.softmax(self.teacher(xb).float() / self.temperature, dim=1)
            total += float(p.gather(1, y[i:i + batch, None]).sum())
        self.q = total / len(y)
        return self.q

    @property
    def record(self) -> dict:
        return {"soft_labels": "smoothing", "true_class_probability": self.q,
                "matched_on": "clean training images, teacher at temperature T"}

    def loss(self, model, x, y, x_adv):
        if self.q is None:
            raise RuntimeError("MatchedSmoothingAT.match(x_train, y_train) must run first")
        logits = model(x_adv)
        K = logits.shape[1]
        target = torch.full_like(logits, (1 - self.q) / (K - 1), dtype=torch.float32)
        target.scatter_(1, y[:, None], self.q)
        loss = soft_target_loss(logits, target, y, self.lam, self.temperature, self.form)
        return Step(loss, logits, None, logits)


def trades_perturb(model: nn.Module, x: torch.Tensor, *, eps: float, alpha: float, steps: int,
                   norm: str = "linf", model_mode: str = "eval",
                   generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """TRADES inner maximisation: x_adv in the eps-ball (and [0, 1]) maximising
    ``KL(f(x) || f(x_adv))`` by ``steps`` projected ascent steps of size ``alpha``, from
    ``x + 0.001 * N(0, I)`` (Zhang et al. 2019; at x itself the KL gradient is zero).
    x: (B, C, H, W); returns (B, C, H, W), detached.  Weights frozen, as in :func:`pgd`."""
    with attack_mode(model, model_mode):
        x = x.detach()
        with torch.no_grad():
            p_clean_logits = model(x).float()
        noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        x_adv = project(x + 0.001 * noise, x, eps, norm)

        def kl_sum(logits, _unused):  # summed so each sample's step is batch-size free
            return kl_divergence(p_clean_logits, logits) * logits.shape[0]

        for _ in range(steps):
            grad = input_gradient(model, x_adv, None, kl_sum)
            x_adv = project(x_adv + alpha * ascent_direction(grad, norm), x, eps, norm)
    return x_adv.detach()


class Trades(Objective):
    """TRADES: :func:`trades_perturb`, then :func:`trades_loss` (both forwards in train mode)."""

    name = "trades"
    adversarial = True

    def __init__(self, eps: float, alpha: float, steps: int, norm: str, beta: float,
                 model_mode: str = "eval") -> None:
        self.eps, self.alpha, self.steps, self.norm = eps, alpha, steps, norm
        self.beta, self.model_mode = beta, model_mode

    def perturb(self, model, x, y, generator=None):
        return trades_perturb(model, x, eps=self.eps, alpha=self.alpha, steps=self.steps,
                              norm=self.norm, model_mode=self.model_mode, generator=generator)

    def loss(self, model, x, y, x_adv):
        clean, adv = model(x), model(x_adv)
        return Step(trades_loss(clean, adv, y, self.beta), adv, clean, adv)


def build_objective(c: TrainConfig, teacher: Optional[nn.Module] = None) -> Objective:
    """The :class:`Objective` of a resolved config."""
    if c.objective == "standard":
        return Objective()
    if c.objective == "fast_at":
        return AdversarialCE(FGSMRS(eps=c.eps, alpha=c.fast_at.alpha, model_mode=c.attack_mode), "fast_at")
    if c.objective == "trades":
        return Trades(c.eps, c.alpha, c.attack_steps, c.norm, c.trades.beta, c.attack_mode)
    attack = PGD(eps=c.eps, steps=c.attack_steps, norm=c.norm, alpha=c.alpha, model_mode=c.attack_mode)
    if c.objective == "kd_at":
        cls = {"teacher": DistillationAT, "shuffled": ShuffledDistillationAT,
               "smoothing": MatchedSmoothingAT}[c.kd.soft_labels]
        return cls(attack, teacher, c.kd.lam, c.kd.temperature, c.kd.form)
    return AdversarialCE(attack, "pgd_at")
