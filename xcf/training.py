"""The training engine: one loop for standard training, PGD-AT, KD-AT, fast AT and TRADES.

Wei, Guo & Wang (ICML 2025) train PreActResNet-18 / DeiT-Ti with the hyperparameters of
Table 2 (Appendix B) and track, epoch by epoch, test robust accuracy and the feature
attribution correlation matrix C with its CAS (Eq. 6-7, Algorithm 1).  This module does the
same at any scale:

- :class:`TrainConfig`: every knob, defaults = Table 2 (SGD, momentum 0.9, weight decay
  5e-4, batch 128, lr 0.1 decayed x0.1 after 50% and 75% of 200 epochs, PGD-10 with step
  eps/4 for l-inf or eps/8 for l2, eps 8/255 or 128/255, evaluation with PGD-20).
- Objectives (:data:`OBJECTIVES`): ``standard``; ``pgd_at`` (Madry et al. 2018, Eq. 1-2);
  ``kd_at`` (Eq. 3, :func:`distillation_loss`); ``fast_at`` (FGSM with random start,
  Wong et al. 2020); ``trades`` (Zhang et al. 2019, :func:`trades_loss`).  Each one is a
  ``perturb`` step (weights frozen, input gradients only, :mod:`xcf.attacks`) and a
  ``loss`` step; the optimiser always steps (the official code's ``none`` and ``TRADES``
  modes never call ``opt.step()``).
- :func:`train`: runs a config into a run folder (:mod:`xcf.runs`) with per-epoch metrics,
  matrices and checkpoints, resumes a killed run from its last finished epoch with
  identical results (CPU), and reuses a finished run.
- :func:`fit` / :func:`train_epoch`: the bare loop on in-memory tensors, for notebooks.

Evaluation of an epoch (:func:`evaluate`) uses its own random generator seeded by
``(seed, epoch)``, so the training trajectory does not depend on evaluation settings and
``xcf measure`` can recompute an epoch's numbers exactly.

One row of ``metrics.jsonl`` per epoch (1-based ``epoch``):

- ``lr``; ``train_loss`` (mean objective over the epoch's batches);
- ``train_robust_acc``: accuracy on the training adversarial examples as they were trained
  on (train mode; ``null`` for ``standard``); ``train_clean_acc``: accuracy on the clean
  (augmented) batches, taken in eval mode before each update (free for standard/TRADES);
- ``test_clean_acc``, ``test_robust_acc`` (PGD-``eval_steps``), ``cas`` (Eq. 7 of C on
  those PGD examples, Algorithm 1), ``cas_clean`` (C on clean inputs, as Fig. 9),
  ``eval_n`` (test samples used);
- ``seconds``: ``{"train": ..., "eval": ...}`` wall-clock times (the only field that
  differs between a resumed and an uninterrupted run).
"""
from __future__ import annotations

import contextlib
import copy
import dataclasses
import difflib
import inspect
import math
import re
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Optional, Sequence, Union

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm.auto import tqdm

from . import runs
from .attacks import FGSMRS, NORMS, PGD, _ascent_direction, _project, attack_mode, default_step_size, input_gradient
from .data import augment as augment_batch
from .data import batches

Attack = Callable[..., torch.Tensor]
OBJECTIVES = ("standard", "pgd_at", "kd_at", "fast_at", "trades")
AMP_MODES = ("none", "bf16")
ATTACK_MODES = ("eval", "train")
BEST_METRICS = ("auto", "test_robust_acc", "test_clean_acc")
DEVICE_PATTERN = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")
# Fields that do not change what a run computes, so they are left out of its key: a run
# can move to another device, or get an AutoAttack evaluation later, and stay the same run.
NON_IDENTITY = ("device", "data_root", "autoattack", "autoattack_n")


# =========================================================================== schedule, optimiser

def piecewise_lr(epoch: float, base_lr: float, epochs: int,
                 milestones: Sequence[float] = (0.5, 0.75), gamma: float = 0.1) -> float:
    """Learning rate for 0-based ``epoch``: ``base_lr`` times ``gamma`` per milestone passed,
    milestones given as fractions of ``epochs``.  Table 2 (200 epochs): 0.1 for epochs
    0-99, 0.01 for 100-149, 0.001 for 150-199, as in the official ``lr_schedule``."""
    drops = sum(epoch >= m * epochs for m in milestones)
    return base_lr * gamma ** drops


def sgd(model: nn.Module, lr: float, momentum: float = 0.9,
        weight_decay: float = 5e-4) -> torch.optim.SGD:
    """The optimiser of Table 2."""
    return torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay)


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
                      y: torch.Tensor, lam: float, temperature: float) -> torch.Tensor:
    """KD-AT loss, Eq. 3, in the standard Hinton et al. (2015) form:

        (1 - lam) * CE(s, y) + lam * T^2 * KL(softmax(t / T) || softmax(s / T))

    with ``s``, ``t`` the student's and teacher's logits ``(B, K)`` on the *same*
    adversarial input x + delta.  Eq. 3 prints ``KL(f(theta, x+delta)/T, f(theta_0,
    x+delta)/T)``, student first; read literally as KL(p || q) that would be
    KL(student || teacher).  We use the teacher as the reference distribution, as in
    Hinton et al. and in the KD-AT code the paper builds on (Chen et al. 2021), which is the
    usual meaning of a "KL term against the teacher".  The T^2 factor, absent from Eq. 3,
    keeps the gradient scale of the soft term independent of T (Hinton et al.); at
    ``lam = 0`` the loss is exactly the PGD-AT cross-entropy.
    """
    ce = cross_entropy(student_logits, y)
    if lam == 0:
        return ce
    kl = kl_divergence(teacher_logits, student_logits, temperature)
    return (1 - lam) * ce + lam * temperature ** 2 * kl


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

    def __init__(self, attack: Attack, teacher: nn.Module, lam: float, temperature: float) -> None:
        super().__init__(attack, "kd_at")
        self.teacher, self.lam, self.temperature = teacher.eval(), lam, temperature
        for p in self.teacher.parameters():
            p.requires_grad_(False)

    def loss(self, model, x, y, x_adv):
        logits = model(x_adv)
        with torch.no_grad():
            teacher_logits = self.teacher(x_adv)
        loss = distillation_loss(logits, teacher_logits, y, self.lam, self.temperature)
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
        x_adv = _project(x + 0.001 * noise, x, eps, norm)

        def kl_sum(logits, _unused):  # summed so each sample's step is batch-size free
            return kl_divergence(p_clean_logits, logits) * logits.shape[0]

        for _ in range(steps):
            grad = input_gradient(model, x_adv, None, kl_sum)
            x_adv = _project(x_adv + alpha * _ascent_direction(grad, norm), x, eps, norm)
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


# =========================================================================== one epoch

@dataclass
class EpochStats:
    epoch: int
    lr: float
    loss: float
    accuracy: float                         # on the inputs trained on (adversarial for AT)
    clean_accuracy: Optional[float] = None  # on clean training inputs
    robust_accuracy: Optional[float] = None  # on the training adversarial examples
    seconds: float = 0.0


def autocast(amp: str, device: torch.device):
    """bf16 autocast on ``device`` when ``amp == "bf16"``; a no-op for ``"none"``."""
    if amp == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _as_objective(objective: Optional[Objective], attack: Optional[Attack]) -> Objective:
    if objective is not None and attack is not None:
        raise ValueError("pass either objective= or attack=, not both")
    if objective is not None:
        return objective
    return AdversarialCE(attack) if attack is not None else Objective()


def _correct(logits: Optional[torch.Tensor], y: torch.Tensor) -> Optional[int]:
    return None if logits is None else int((logits.argmax(1) == y).sum())


def train_epoch(model: nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor,
                y: torch.Tensor, *, epoch: int, lr: float, batch_size: int = 128,
                attack: Optional[Attack] = None, objective: Optional[Objective] = None,
                augment: bool = True, generator: Optional[torch.Generator] = None,
                progress: bool = False, amp: str = "none", channels_last: bool = False,
                desc: Optional[str] = None) -> EpochStats:
    """One pass over ``(x, y)`` (``(N, C, H, W)`` in [0, 1], ``(N,)``) with ``objective``
    (or cross-entropy on ``attack(model, x, y)``, or plain cross-entropy).

    All randomness (shuffle, augmentation, attack starts) comes from ``generator``.
    Raises ``FloatingPointError`` naming the epoch and batch if the loss is not finite,
    before the optimiser touches the weights.
    """
    obj = _as_objective(objective, attack)
    for group in optimizer.param_groups:
        group["lr"] = lr
    device = x.device
    n_batches = math.ceil(len(x) / batch_size)
    sums = {"loss": 0.0, "acc": 0, "clean": 0, "robust": 0, "seen": 0}
    start = time.perf_counter()
    bar = tqdm(batches(x, y, batch_size, shuffle=True, generator=generator), total=n_batches,
               disable=not progress, desc=desc or f"epoch {epoch}", leave=False)
    for b, (xb, yb) in enumerate(bar):
        if augment:
            xb = augment_batch(xb, generator=generator)
        if channels_last:
            xb = xb.contiguous(memory_format=torch.channels_last)
        with autocast(amp, device):
            clean = None
            if not obj.computes_clean:  # eval mode, no grad: cheap, and leaves BN stats alone
                with torch.no_grad(), attack_mode(model, "eval"):
                    clean = model(xb)
            x_adv = obj.perturb(model, xb, yb, generator)
            model.train()
            step = obj.loss(model, xb, yb, x_adv)
        if not torch.isfinite(step.loss):
            raise FloatingPointError(
                f"loss is {step.loss.item()} at epoch {epoch}, batch {b} (0-based, of "
                f"{n_batches}); the weights of this batch were not updated")
        optimizer.zero_grad(set_to_none=True)
        step.loss.backward()
        optimizer.step()
        sums["loss"] += step.loss.item() * len(yb)
        sums["acc"] += _correct(step.logits, yb)
        sums["clean"] += _correct(clean if clean is not None else step.clean_logits, yb)
        sums["robust"] += _correct(step.adv_logits, yb) or 0
        sums["seen"] += len(yb)
        if progress:
            bar.set_postfix(loss=f"{sums['loss'] / sums['seen']:.3f}",
                            acc=f"{sums['acc'] / sums['seen']:.3f}", refresh=False)
    seen = max(sums["seen"], 1)
    return EpochStats(epoch=epoch, lr=lr, loss=sums["loss"] / seen, accuracy=sums["acc"] / seen,
                      clean_accuracy=sums["clean"] / seen,
                      robust_accuracy=sums["robust"] / seen if obj.adversarial else None,
                      seconds=time.perf_counter() - start)


def fit(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, epochs: int, lr: float = 0.1,
        batch_size: int = 128, attack: Optional[Attack] = None, augment: bool = True,
        milestones: Sequence[float] = (0.5, 0.75), seed: int = 0, progress: bool = False,
        on_epoch: Optional[Callable[[EpochStats], None]] = None,
        objective: Optional[Objective] = None, amp: str = "none") -> list[EpochStats]:
    """Train ``model`` in memory for ``epochs`` with SGD (Table 2) and the piecewise
    schedule; no run folder, no evaluation.  Returns one :class:`EpochStats` per epoch."""
    if epochs < 0 or not lr > 0 or batch_size < 1:
        raise ValueError(f"need epochs >= 0, lr > 0, batch_size >= 1; got {epochs}, {lr}, {batch_size}")
    g = torch.Generator(device=x.device).manual_seed(seed)
    opt = sgd(model, lr)
    history = []
    for epoch in range(epochs):
        stats = train_epoch(model, opt, x, y, epoch=epoch + 1, batch_size=batch_size,
                            lr=piecewise_lr(epoch, lr, epochs, milestones), attack=attack,
                            objective=objective, augment=augment, generator=g,
                            progress=progress, amp=amp)
        history.append(stats)
        if on_epoch:
            on_epoch(stats)
    model.eval()
    return history


# =========================================================================== configuration

class ConfigError(ValueError):
    """A configuration value is wrong; the message names the key and what is allowed."""

    def __init__(self, key: str, problem: str, allowed: Optional[Iterable[Any]] = None) -> None:
        self.key = key
        self.allowed = list(allowed) if allowed is not None else None
        text = f"config key '{key}': {problem}"
        if self.allowed is not None:
            text += f"; allowed values: {', '.join(map(str, self.allowed))}"
        super().__init__(text)


@dataclass
class KDConfig:
    """KD-AT settings (Eq. 3).  The paper gives no values; lambda 0.5 and T 2 are ours."""

    teacher: Optional[str] = None   # xcf checkpoint file, or a run folder (its best.pt)
    lam: float = 0.5                # YAML key: lambda
    temperature: float = 2.0


@dataclass
class TradesConfig:
    beta: float = 6.0               # the official code's default


@dataclass
class FastATConfig:
    alpha: Optional[float] = None   # FGSM step; None: 1.25 * eps (Wong et al. 2020)


@dataclass
class TrainConfig:
    """Everything that defines a training run.  Defaults are Table 2 of the paper.

    Data: ``dataset`` (one of :data:`xcf.data.DATASETS`), ``data_kwargs`` (to
    :func:`xcf.data.load`, e.g. ``image_size`` for planted), ``data_root``, ``n_train`` /
    ``n_test`` (class-balanced subsets; ``None`` = all), ``eval_n`` (test samples used for
    the per-epoch evaluation; ``None`` = the whole test set), ``data_seed``, ``augment``
    (random crop with 4 px reflect padding + flip).
    Model: ``model`` (one of :data:`xcf.models.MODELS`), ``model_kwargs`` (e.g. ``width``),
    ``normalize`` (per-channel mean/std of CIFAR inside the model, as the official code).
    Objective: ``objective`` (:data:`OBJECTIVES`), ``norm``, ``eps`` (None: 8/255 l-inf or
    128/255 l2), ``alpha`` (None: eps/4 or eps/8), ``attack_steps`` (10), ``attack_mode``
    (model mode during the training attack), and the sections ``kd``, ``trades``,
    ``fast_at``.
    Optimisation: ``epochs`` (200), ``batch_size`` (128), ``lr`` (0.1), ``momentum`` (0.9),
    ``weight_decay`` (5e-4), ``milestones`` ([0.5, 0.75] of the epochs), ``lr_gamma``
    (0.1), ``seed``, ``amp`` (``none`` or ``bf16`` autocast), ``channels_last``.
    Evaluation: ``eval_eps`` (None: eps), ``eval_steps`` (PGD-20), ``eval_batch_size``,
    ``best_metric`` (``auto``: test robust accuracy, or clean accuracy for ``standard``),
    ``save_matrices_every`` (None: every epoch up to 50 epochs, else every 10; best and
    last always), ``save_checkpoints_at`` (epochs whose model is kept besides best/last),
    ``autoattack`` / ``autoattack_n`` (final AutoAttack of best and last; ``None`` = the
    eval set), ``device`` (``auto``: CUDA if present).
    """

    dataset: str = "cifar10"
    data_kwargs: dict = field(default_factory=dict)
    data_root: Optional[str] = None
    n_train: Optional[int] = None
    n_test: Optional[int] = None
    eval_n: Optional[int] = None
    data_seed: int = 0
    augment: bool = True
    model: str = "preact_resnet18"
    model_kwargs: dict = field(default_factory=dict)
    normalize: bool = True
    objective: str = "pgd_at"
    norm: str = "linf"
    eps: Optional[float] = None
    alpha: Optional[float] = None
    attack_steps: int = 10
    attack_mode: str = "eval"
    kd: KDConfig = field(default_factory=KDConfig)
    trades: TradesConfig = field(default_factory=TradesConfig)
    fast_at: FastATConfig = field(default_factory=FastATConfig)
    epochs: int = 200
    batch_size: int = 128
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    milestones: list = field(default_factory=lambda: [0.5, 0.75])
    lr_gamma: float = 0.1
    seed: int = 0
    amp: str = "none"
    channels_last: bool = True
    eval_eps: Optional[float] = None
    eval_steps: int = 20
    eval_batch_size: int = 500
    best_metric: str = "auto"
    save_matrices_every: Optional[int] = None
    save_checkpoints_at: list = field(default_factory=list)
    autoattack: bool = False
    autoattack_n: Optional[int] = None
    device: str = "auto"

    def __post_init__(self) -> None:
        for name, cls in _SECTIONS.items():
            value = getattr(self, name)
            if isinstance(value, Mapping):
                setattr(self, name, _section_from_dict(name, cls, value))
        _validate(self)

    # ------------------------------------------------------------------ conversions
    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "TrainConfig":
        """Build from a plain mapping (e.g. parsed YAML); unknown keys are errors."""
        if not isinstance(d, Mapping):
            raise ConfigError("<root>", f"expected a mapping of keys to values, got {type(d).__name__}")
        known = [f.name for f in dataclasses.fields(cls)]
        for key in d:
            if key not in known:
                raise ConfigError(str(key), "unknown key" + _suggest(key, known), known)
        return cls(**dict(d))

    @classmethod
    def from_yaml(cls, path: str | Path) -> "TrainConfig":
        import yaml

        text = Path(path).read_text()
        try:
            data = yaml.safe_load(text) or {}
        except yaml.YAMLError as err:
            raise ConfigError("<file>", f"{path} is not valid YAML ({err})") from err
        return cls.from_dict(data)

    def to_dict(self) -> dict:
        """Plain-Python form, YAML-ready; sections use their YAML keys (``kd.lambda``)."""
        out = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name in _SECTIONS:
                value = {_YAML_KEYS.get(k, k): v for k, v in dataclasses.asdict(value).items()}
            out[f.name] = copy.deepcopy(value)
        return out

    def resolved(self) -> "TrainConfig":
        """A copy with every ``None`` default worked out (eps, alpha, eval_eps, ...)."""
        eps = self.eps if self.eps is not None else (8 / 255 if self.norm == "linf" else 128 / 255)
        updates = dict(
            eps=eps,
            alpha=self.alpha if self.alpha is not None else default_step_size(eps, self.norm),
            eval_eps=self.eval_eps if self.eval_eps is not None else eps,
            save_matrices_every=self.save_matrices_every or (1 if self.epochs <= 50 else 10),
            best_metric=self.best_metric if self.best_metric != "auto" else (
                "test_clean_acc" if self.objective == "standard" else "test_robust_acc"),
            fast_at=FastATConfig(self.fast_at.alpha if self.fast_at.alpha is not None else 1.25 * eps),
        )
        return dataclasses.replace(self, **updates)

    def identity(self) -> dict:
        """What a run's key is computed from: the resolved config without runtime-only
        fields (:data:`NON_IDENTITY`) and without the sections of other objectives."""
        d = self.resolved().to_dict()
        for key in NON_IDENTITY:
            d.pop(key)
        active = {"kd_at": "kd", "trades": "trades", "fast_at": "fast_at"}.get(self.objective)
        for name in _SECTIONS:
            if name != active:
                d.pop(name)
        return d

    def key(self) -> str:
        return runs.config_key(self.identity())


_SECTIONS = {"kd": KDConfig, "trades": TradesConfig, "fast_at": FastATConfig}
_YAML_KEYS = {"lam": "lambda"}


def _suggest(key: Any, known: Sequence[str]) -> str:
    close = difflib.get_close_matches(str(key), known, n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _section_from_dict(name: str, cls: type, d: Mapping[str, Any]):
    to_field = {v: k for k, v in _YAML_KEYS.items()}
    fields_ = [f.name for f in dataclasses.fields(cls)]
    yaml_names = [_YAML_KEYS.get(f, f) for f in fields_]
    kwargs = {}
    for key, value in d.items():
        attr = to_field.get(key, key)
        if attr not in fields_:
            raise ConfigError(f"{name}.{key}", "unknown key" + _suggest(key, yaml_names), yaml_names)
        kwargs[attr] = value
    return cls(**kwargs)


def make_config(config: Union[TrainConfig, Mapping[str, Any], str, Path, None] = None,
                **overrides: Any) -> TrainConfig:
    """A validated :class:`TrainConfig` from a config, a mapping or a YAML path, with
    keyword ``overrides`` on top (sections merge: ``kd={"lambda": 0.3}``)."""
    if isinstance(config, (str, Path)):
        config = TrainConfig.from_yaml(config)
    base = config.to_dict() if isinstance(config, TrainConfig) else dict(config or {})
    for key, value in overrides.items():
        if key in _SECTIONS and isinstance(value, Mapping) and isinstance(base.get(key), Mapping):
            value = {**base[key], **value}
        base[key] = value
    return TrainConfig.from_dict(base)


# --------------------------------------------------------------------------- validation

def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _need_int(key: str, v: Any, low: int, optional: bool = False) -> None:
    if v is None and optional:
        return
    if not _is_int(v) or v < low:
        raise ConfigError(key, f"must be an integer >= {low}{' or null' if optional else ''}, got {v!r}")


def _need_number(key: str, v: Any, *, low: float | None = None, high: float | None = None,
                 strict_low: bool = False, optional: bool = False) -> None:
    if v is None and optional:
        return
    ok = _is_number(v) and (low is None or (v > low if strict_low else v >= low)) \
        and (high is None or v <= high)
    if not ok:
        bound = []
        if low is not None:
            bound.append(f"{'>' if strict_low else '>='} {low}")
        if high is not None:
            bound.append(f"<= {high}")
        raise ConfigError(key, f"must be a finite number {' and '.join(bound)}, got {v!r}")


def _need_choice(key: str, v: Any, allowed: Sequence[str]) -> None:
    if v not in allowed:
        raise ConfigError(key, f"got {v!r}" + _suggest(v, allowed), allowed)


def _need_bool(key: str, v: Any) -> None:
    if not isinstance(v, bool):
        raise ConfigError(key, f"must be true or false, got {v!r}", [True, False])


def _validate(c: TrainConfig) -> None:
    """Every check that needs no data: types, ranges, choices.  Raises :class:`ConfigError`."""
    from .data import DATASETS
    from .models import MODELS

    _need_choice("dataset", str(c.dataset).lower().replace("_", "-"), DATASETS)
    _need_choice("model", str(c.model).lower().replace("-", "_"), MODELS)
    _need_choice("objective", c.objective, OBJECTIVES)
    _need_choice("norm", c.norm, NORMS)
    _need_choice("amp", c.amp, AMP_MODES)
    _need_choice("attack_mode", c.attack_mode, ATTACK_MODES)
    _need_choice("best_metric", c.best_metric, BEST_METRICS)
    if not isinstance(c.device, str) or not DEVICE_PATTERN.match(c.device):
        raise ConfigError("device", f"got {c.device!r}", ["auto", "cpu", "cuda", "cuda:N", "mps"])
    for key in ("data_kwargs", "model_kwargs"):
        if not isinstance(getattr(c, key), Mapping):
            raise ConfigError(key, f"must be a mapping, got {getattr(c, key)!r}")
    for key in ("augment", "normalize", "channels_last", "autoattack"):
        _need_bool(key, getattr(c, key))
    for key in ("n_train", "n_test", "eval_n", "autoattack_n"):
        _need_int(key, getattr(c, key), 1, optional=True)
    _need_int("data_seed", c.data_seed, 0)
    _need_int("seed", c.seed, 0)
    _need_int("epochs", c.epochs, 1)
    _need_int("batch_size", c.batch_size, 1)
    _need_int("eval_batch_size", c.eval_batch_size, 1)
    _need_int("eval_steps", c.eval_steps, 0)
    _need_int("save_matrices_every", c.save_matrices_every, 1, optional=True)
    _need_number("lr", c.lr, low=0, strict_low=True)
    _need_number("momentum", c.momentum, low=0, high=1)
    _need_number("weight_decay", c.weight_decay, low=0)
    _need_number("lr_gamma", c.lr_gamma, low=0, strict_low=True)
    _need_number("eps", c.eps, low=0, optional=True)
    _need_number("eval_eps", c.eval_eps, low=0, optional=True)
    _need_number("alpha", c.alpha, low=0, strict_low=True, optional=True)
    if not isinstance(c.milestones, (list, tuple)):
        raise ConfigError("milestones", f"must be a list of fractions of the epochs, got {c.milestones!r}")
    for m in c.milestones:
        _need_number("milestones", m, low=0, high=1, strict_low=True)
    if not isinstance(c.save_checkpoints_at, (list, tuple)):
        raise ConfigError("save_checkpoints_at", f"must be a list of epochs, got {c.save_checkpoints_at!r}")
    for e in c.save_checkpoints_at:
        if not _is_int(e) or not 1 <= e <= c.epochs:
            raise ConfigError("save_checkpoints_at", f"epoch {e!r} is not an integer in [1, {c.epochs}]")
    _validate_objective(c)


def _validate_objective(c: TrainConfig) -> None:
    adversarial = c.objective in ("pgd_at", "kd_at", "trades")
    _need_int("attack_steps", c.attack_steps, 1 if adversarial else 0)
    if c.objective == "fast_at":
        if c.norm != "linf":
            raise ConfigError("norm", "fast_at (FGSM with random start) is l-inf only", ["linf"])
        _need_number("fast_at.alpha", c.fast_at.alpha, low=0, strict_low=True, optional=True)
    if c.objective == "trades":
        _need_number("trades.beta", c.trades.beta, low=0)
    if c.objective == "kd_at":
        if not c.kd.teacher or not isinstance(c.kd.teacher, str):
            raise ConfigError("kd.teacher", "objective kd_at needs a teacher: the path of an xcf "
                              f"checkpoint (.pt) or of a run folder, got {c.kd.teacher!r}")
        _need_number("kd.lambda", c.kd.lam, low=0, high=1)
        _need_number("kd.temperature", c.kd.temperature, low=0, strict_low=True)


# =========================================================================== setup

@dataclass
class Setup:
    """Everything built from a config before training: checked, on the device."""

    config: TrainConfig                 # resolved
    device: torch.device
    x_train: torch.Tensor               # (N, C, H, W) in [0, 1], on device
    y_train: torch.Tensor               # (N,)
    x_eval: torch.Tensor                # (eval_n, C, H, W): the per-epoch evaluation set
    y_eval: torch.Tensor
    classes: list
    model: nn.Module
    meta: dict                          # how to rebuild the model (see xcf.runs)
    objective: Objective
    teacher_path: Optional[Path] = None


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device", f"{name!r} requested but CUDA is not available", ["auto", "cpu"])
    return device


def _load_data(c: TrainConfig):
    from . import data

    try:
        ds = data.load(c.dataset, root=c.data_root, n_train=c.n_train, n_test=c.n_test,
                       seed=c.data_seed, **c.data_kwargs)
    except TypeError as err:  # an unknown keyword of the dataset's loader
        raise ConfigError("data_kwargs", f"not accepted by dataset {c.dataset!r}: {err}") from err
    K = ds.num_classes
    if len(ds.y_test) < K or (c.eval_n is not None and c.eval_n < K):
        raise ConfigError("eval_n", f"the evaluation set needs at least one sample of each of the "
                          f"{K} classes (Algorithm 1 averages per class); got "
                          f"n_test={len(ds.y_test)}, eval_n={c.eval_n}")
    idx = data.stratified_indices(ds.y_test, c.eval_n, torch.Generator().manual_seed(c.data_seed))
    return ds, ds.x_test[idx], ds.y_test[idx]


def model_meta(c: TrainConfig, num_classes: int, image_shape: Sequence[int]) -> dict:
    """How to rebuild the model of config ``c`` (saved in every checkpoint)."""
    from .data import NORMALIZATION

    kwargs = dict(c.model_kwargs)
    key = str(c.dataset).lower().replace("_", "-")
    if c.normalize and key in NORMALIZATION and "mean" not in kwargs:
        kwargs["mean"], kwargs["std"] = (list(v) for v in NORMALIZATION[key])
    if c.model.replace("-", "_").lower() == "deit_tiny":
        kwargs.setdefault("img_size", int(image_shape[-1]))
    return {"model": c.model, "num_classes": int(num_classes), "in_channels": int(image_shape[0]),
            "image_shape": [int(s) for s in image_shape], "model_kwargs": kwargs,
            "dataset": c.dataset}


def _build_model(c: TrainConfig, meta: dict, device: torch.device) -> nn.Module:
    torch.manual_seed(c.seed)  # the initial weights depend on the seed only
    try:
        model = runs.build_from_meta(meta)
    except TypeError as err:
        raise ConfigError("model_kwargs", f"not accepted by model {c.model!r}: {err}") from err
    model = model.to(device)
    if c.channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model


def _load_teacher(c: TrainConfig, meta: dict, device: torch.device) -> tuple[nn.Module, Path]:
    """The KD teacher, checked against the student's task before any training."""
    path = Path(c.kd.teacher)
    if not path.exists():
        raise ConfigError("kd.teacher", f"{path} does not exist (give an xcf checkpoint .pt "
                          "or a run folder, relative to the working directory)")
    try:
        ckpt, file = runs.read_checkpoint(path, "best")
    except runs.CheckpointError as err:
        raise ConfigError("kd.teacher", str(err)) from err
    t_meta = ckpt["meta"]
    for field_, what in (("num_classes", "classes"), ("in_channels", "input channels")):
        if t_meta.get(field_) != meta[field_]:
            raise ConfigError("kd.teacher", f"the teacher {file} has {t_meta.get(field_)} {what} "
                              f"but dataset {c.dataset!r} has {meta[field_]}")
    teacher = runs.build_from_meta(t_meta)
    runs.load_weights(teacher, ckpt, file)
    teacher = teacher.to(device).eval()
    if c.channels_last:
        teacher = teacher.to(memory_format=torch.channels_last)
    return teacher, file


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
        return DistillationAT(attack, teacher, c.kd.lam, c.kd.temperature)
    return AdversarialCE(attack, "pgd_at")


def prepare(config: TrainConfig) -> Setup:
    """Load data, build the model, teacher and objective: every check that can fail does
    so here, before any training."""
    c = config.resolved()
    device = resolve_device(c.device)
    ds, x_eval, y_eval = _load_data(c)
    meta = model_meta(c, ds.num_classes, ds.image_shape)
    model = _build_model(c, meta, device)
    teacher, teacher_path = _load_teacher(c, meta, device) if c.objective == "kd_at" else (None, None)
    return Setup(config=c, device=device, x_train=ds.x_train.to(device), y_train=ds.y_train.to(device),
                 x_eval=x_eval.to(device), y_eval=y_eval.to(device), classes=list(ds.classes),
                 model=model, meta=meta, objective=build_objective(c, teacher),
                 teacher_path=teacher_path)


# =========================================================================== evaluation

class AutocastModel(nn.Module):
    """``model`` with its forward and ``features`` run under bf16 autocast and returned in
    float32, so that attacks and the feature extractor are fast while the attribution
    statistics of Algorithm 1 (class means, cosines) stay in float32."""

    def __init__(self, model: nn.Module, device: torch.device) -> None:
        super().__init__()
        self.model, self.head, self.device_type = model, model.head, device.type

    def features(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device_type=self.device_type, dtype=torch.bfloat16):
            return self.model.features(x).float()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device_type=self.device_type, dtype=torch.bfloat16):
            return self.model(x).float()


def eval_seed(seed: int, epoch: int) -> int:
    """Seed of epoch ``epoch``'s evaluation attack: independent of the training stream."""
    return int(np.random.SeedSequence([seed, epoch, 0x5EED]).generate_state(1)[0])


def eval_attack(c: TrainConfig) -> PGD:
    """The test attack: PGD-``eval_steps`` (20) at ``eval_eps``, step eps/4 (l-inf) or
    eps/8 (l2), random start, model in eval mode (the official evaluation)."""
    return PGD(eps=c.eval_eps, steps=c.eval_steps, norm=c.norm)


def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, config: TrainConfig,
             epoch: int, *, amp: str = "none", instance: bool = False, progress: bool = False):
    """Test clean accuracy, test robust accuracy and C/CAS (Algorithm 1) of one epoch.

    One :func:`xcf.attribution.measure` pass on PGD examples gives robust accuracy, C and
    CAS together; a second pass on clean inputs gives clean accuracy and the clean C of
    Fig. 9 (a forward pass only).  Returns ``(numbers, adversarial, clean)`` with the two
    :class:`~xcf.attribution.Measurement` objects.
    """
    from .attribution import measure

    c = config.resolved()
    gen = torch.Generator(device=x.device).manual_seed(eval_seed(c.seed, epoch))
    net = AutocastModel(model, x.device) if amp == "bf16" else model
    clean = measure(net, x, y, None, batch_size=c.eval_batch_size, progress=False)
    adv = measure(net, x, y, eval_attack(c), batch_size=c.eval_batch_size, generator=gen,
                  instance=instance, progress=progress)
    numbers = {"test_clean_acc": clean.accuracy, "test_robust_acc": adv.accuracy,
               "cas": adv.cas, "cas_clean": clean.cas, "eval_n": int(len(y))}
    if instance:
        numbers["i_cas"] = adv.i_cas
    return numbers, adv, clean


def select_best(history: Sequence[Mapping[str, Any]], metric: str = "test_robust_acc") -> Optional[int]:
    """Epoch with the highest ``metric`` (the first one on ties; NaN never wins), as the
    paper picks its best checkpoint by test robust accuracy."""
    best_epoch, best = None, -math.inf
    for row in history:
        value = row.get(metric)
        if value is not None and value > best:  # NaN > x is False
            best_epoch, best = row["epoch"], value
    return best_epoch


# =========================================================================== the run loop

Callback = Callable[[dict, nn.Module, runs.Run], None]


def train(config: Union[TrainConfig, Mapping[str, Any], str, Path, None] = None, *,
          runs_dir: str | Path | None = None, progress: bool = True,
          callbacks: Sequence[Callback] = (), overwrite: bool = False,
          log: Optional[Callable[[str], None]] = None, **overrides: Any) -> runs.Run:
    """Train (or resume, or reuse) the run of ``config`` and return its :class:`~xcf.runs.Run`.

    ``config``: a :class:`TrainConfig`, a mapping, a YAML path, or ``None`` (Table 2
    defaults); keyword ``overrides`` go on top, e.g. ``train(dataset="planted", epochs=3)``.
    The run folder is ``runs_dir/<dataset>-<model>-<objective>-<key>`` (``runs_dir``
    defaults to ``$XCF_RUNS_DIR`` or ``./runs``).  A finished run is returned as it is
    (after adding an AutoAttack evaluation if newly requested); an unfinished one resumes
    from its last finished epoch; ``overwrite=True`` starts afresh.  ``callbacks`` are
    called as ``cb(metrics_row, model, run)`` after each epoch is saved.

    Raises :class:`ConfigError` (bad config, before training) and ``FloatingPointError``
    (non-finite loss; the epoch and batch are named and earlier checkpoints kept).
    """
    cfg = make_config(config, **overrides)
    log = log or _default_log
    run = _locate_run(cfg, runs_dir)
    if overwrite and run.path.exists():
        with run.lock():  # refuse to delete a folder another process is training
            pass
        shutil.rmtree(run.path)
    if run.finished:
        log(f"reusing finished run {run.path}")
        if cfg.autoattack and "autoattack" not in run.final():
            setup = prepare(cfg)
            with run.lock():
                _finish(run, setup, _history(run), log, progress)
        return run
    setup = prepare(cfg)  # every check, before the folder is created or any training
    with run.lock():
        _init_run_folder(run, setup)
        return _Trainer(setup, run, progress=progress, callbacks=callbacks, log=log).run()


def _default_log(line: str) -> None:
    tqdm.write(line, file=sys.stdout)
    sys.stdout.flush()


def default_runs_dir() -> Path:
    from .profiles import runs_dir

    return runs_dir()


def run_slug(c: TrainConfig) -> str:
    return f"{c.dataset}-{c.model}-{c.objective}".replace("/", "_").lower()


def _locate_run(cfg: TrainConfig, runs_dir: str | Path | None) -> runs.Run:
    root = Path(runs_dir) if runs_dir is not None else default_runs_dir()
    key = cfg.key()
    return runs.find_run(root, key) or runs.Run(root / f"{run_slug(cfg)}-{key}")


def _init_run_folder(run: runs.Run, setup: Setup) -> None:
    """Create the folder and config.yaml, or check an existing one matches the config."""
    cfg = setup.config
    if (run.path / "config.yaml").is_file():
        saved = TrainConfig.from_dict(run.config)
        if saved.identity() != cfg.identity():
            raise runs.CheckpointError(f"{run.path}/config.yaml does not match the config whose "
                                       f"key is {cfg.key()}; was it edited? Use overwrite=True "
                                       "to start this run afresh")
    else:
        run.write_config(cfg.to_dict())
    runs.remove_stale_temps(run.path)


def _history(run: runs.Run) -> list[dict]:
    state = run.load_state()
    return list(state["history"]) if state else run.metrics()


def _rng_state(gen: torch.Generator) -> dict:
    state = {"generator": gen.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(gen: torch.Generator, state: Mapping[str, Any]) -> None:
    gen.set_state(state["generator"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class _Trainer:
    """The epoch loop of :func:`train`: train, evaluate, commit, publish, report."""

    def __init__(self, setup: Setup, run: runs.Run, *, progress: bool,
                 callbacks: Sequence[Callback], log: Callable[[str], None]) -> None:
        self.s, self.c, self.run_ = setup, setup.config, run
        self.progress, self.callbacks, self.log = progress, list(callbacks), log
        self.optimizer = sgd(setup.model, self.c.lr, self.c.momentum, self.c.weight_decay)
        self.generator = torch.Generator(device=setup.device).manual_seed(self.c.seed)
        self.history: list[dict] = []
        self.best: dict = {"epoch": None, "value": None, "metric": self.c.best_metric}

    def run(self) -> runs.Run:
        start = self._resume()
        extra = {"resumed_from_epoch": start} if start else {}
        if self.s.teacher_path is not None:
            extra["teacher"] = {"path": str(self.s.teacher_path),
                                "sha256": runs.file_digest(self.s.teacher_path)}
        self.run_.start_session(runs.environment(self.s.device), seed=self.c.seed,
                                device=str(self.s.device), **extra)
        try:
            for epoch in range(start + 1, self.c.epochs + 1):
                self._epoch(epoch)
            _finish(self.run_, self.s, self.history, self.log, self.progress)
        except BaseException as err:  # KeyboardInterrupt too: record why the session ended
            self.run_.end_session("failed", error=f"{type(err).__name__}: {err}")
            raise
        self.run_.end_session("finished")
        return self.run_

    def _resume(self) -> int:
        state = self.run_.load_state()
        if state is None:
            return 0
        runs.load_weights(self.s.model, state, self.run_.state_path, meta=self.s.meta)
        self.optimizer.load_state_dict(state["optimizer"])
        _set_rng_state(self.generator, state["rng"])
        self.history = list(state["history"])
        self.best = dict(state["best"])
        self.run_.publish(state)  # repair files a kill may have left unwritten
        self.log(f"resuming {self.run_.path} after epoch {state['epoch']}")
        return int(state["epoch"])

    def _epoch(self, epoch: int) -> None:
        c, s = self.c, self.s
        lr = piecewise_lr(epoch - 1, c.lr, c.epochs, c.milestones, c.lr_gamma)
        stats = train_epoch(s.model, self.optimizer, s.x_train, s.y_train, epoch=epoch, lr=lr,
                            batch_size=c.batch_size, objective=s.objective, augment=c.augment,
                            generator=self.generator, progress=self.progress, amp=c.amp,
                            channels_last=c.channels_last, desc=f"epoch {epoch}/{c.epochs}")
        t0 = time.perf_counter()
        numbers, adv, clean = evaluate(s.model, s.x_eval, s.y_eval, c, epoch, amp=c.amp)
        row = {"epoch": epoch, "lr": lr, "train_loss": stats.loss,
               "train_clean_acc": stats.clean_accuracy, "train_robust_acc": stats.robust_accuracy,
               **numbers,
               "seconds": {"train": stats.seconds, "eval": time.perf_counter() - t0}}
        self.history.append(row)
        is_best = self._update_best(row)
        state = self._state(epoch, adv.C, clean.C, is_best)
        self.run_.save_state(state)  # the commit point
        self.run_.publish(state)     # derived files; repeated on resume if killed here
        self.log(summary_line(row, c.epochs, is_best))
        for cb in self.callbacks:
            cb(row, s.model, self.run_)

    def _update_best(self, row: dict) -> bool:
        value = row[self.c.best_metric]
        if self.best["epoch"] is None or (value is not None and value > self.best["value"]):
            self.best.update(epoch=row["epoch"], value=value)
            return True
        return False

    def _state(self, epoch: int, C: torch.Tensor, C_clean: torch.Tensor, is_best: bool) -> dict:
        c = self.c
        keep_matrix = is_best or epoch == c.epochs or epoch % c.save_matrices_every == 0
        checkpoints = (["best"] if is_best else []) + ([epoch] if epoch in c.save_checkpoints_at else [])
        return {
            "epoch": epoch, "config_key": c.key(), "meta": self.s.meta,
            "model": self.s.model.state_dict(), "optimizer": self.optimizer.state_dict(),
            "rng": _rng_state(self.generator), "history": list(self.history),
            "best": dict(self.best),
            "publish": {"matrices": {"C": C, "C_clean": C_clean} if keep_matrix else {},
                        "checkpoints": checkpoints},
        }


def summary_line(row: Mapping[str, Any], epochs: int, is_best: bool = False) -> str:
    """One line per epoch, e.g. ``epoch  3/10  lr 0.1  loss 1.234  train 45.2/30.1%
    test 50.0/33.3%  CAS 12.30 (clean 8.10)  9.5 s  *best``."""
    pct = lambda v: "  -  " if v is None else f"{100 * v:5.1f}"  # noqa: E731
    secs = sum(row.get("seconds", {}).values())
    width = len(str(epochs))
    return (f"epoch {row['epoch']:>{width}}/{epochs}  lr {row['lr']:.4g}  loss {row['train_loss']:.4f}"
            f"  train clean/robust {pct(row['train_clean_acc'])}/{pct(row['train_robust_acc'])}%"
            f"  test clean/robust {pct(row['test_clean_acc'])}/{pct(row['test_robust_acc'])}%"
            f"  CAS {row['cas']:.2f} (clean {row['cas_clean']:.2f})  {secs:.1f} s"
            + ("  *best" if is_best else ""))


# =========================================================================== after training

def _finish(run: runs.Run, setup: Setup, history: list[dict], log, progress: bool) -> None:
    """Write final.json (best and last epochs), with AutoAttack results if configured."""
    c = setup.config
    best_epoch = runs.load_torch(run.checkpoint_path("best"))["epoch"]
    by_epoch = {r["epoch"]: r for r in history}
    summary = dict(run.final(), epochs=c.epochs, best_epoch=best_epoch,
                   best_metric=c.best_metric, best=by_epoch.get(best_epoch),
                   last=history[-1] if history else None, finished_at=runs.now())
    if c.autoattack:
        summary["autoattack"] = {which: autoattack_accuracy(run, which, setup, progress)
                                 for which in ("best", "last")}
        log(f"AutoAttack accuracy: best {summary['autoattack']['best']:.4f}, "
            f"last {summary['autoattack']['last']:.4f}")
    run.write_final(summary)
    log(f"finished {run.path}: best epoch {best_epoch}")


def autoattack_accuracy(run: runs.Run, which: str, setup: Setup, progress: bool = False) -> float:
    """Robust accuracy under AutoAttack (standard version, torchattacks) of a checkpoint of
    ``run`` on ``autoattack_n`` test samples (default: the evaluation set)."""
    import torchattacks

    from .data import stratified_indices

    c = setup.config
    x, y = setup.x_eval, setup.y_eval
    if c.autoattack_n is not None and c.autoattack_n < len(y):
        idx = stratified_indices(y.cpu(), c.autoattack_n, torch.Generator().manual_seed(c.data_seed))
        x, y = x[idx.to(x.device)], y[idx.to(y.device)]
    model = run.load_model(which, device=setup.device)
    attack = torchattacks.AutoAttack(model, norm="Linf" if c.norm == "linf" else "L2",
                                     eps=c.eval_eps, version="standard",
                                     n_classes=len(setup.classes), seed=c.seed)
    correct = 0
    with attack_mode(model, "eval"):
        for start in tqdm(range(0, len(y), c.eval_batch_size), disable=not progress,
                          desc=f"AutoAttack {which}", leave=False):
            xb, yb = x[start:start + c.eval_batch_size], y[start:start + c.eval_batch_size]
            x_adv = attack(xb, yb)
            with torch.no_grad():
                correct += int((model(x_adv).argmax(1) == yb).sum())
    return correct / len(y)


def measure_run(run_dir: str | Path, which: runs.Which = "best", *, eval_n: Optional[int] = None,
                eval_steps: Optional[int] = None, eval_eps: Optional[float] = None,
                instance: bool = False, device: Optional[str] = None, progress: bool = False):
    """Recompute test clean/robust accuracy, C and CAS of a saved checkpoint of a run.

    With the defaults this repeats the run's own evaluation of that epoch (same test
    subset, same attack, same random seed), so on the same device it reproduces the
    numbers in metrics.jsonl.  Returns ``(epoch, numbers, adversarial, clean)``; see
    :func:`evaluate`.
    """
    run = runs.Run(run_dir)
    if not (run.path / "config.yaml").is_file():
        raise FileNotFoundError(f"{run.path} is not a run folder (no config.yaml)")
    overrides = {k: v for k, v in dict(eval_n=eval_n, eval_steps=eval_steps, eval_eps=eval_eps,
                                       device=device).items() if v is not None}
    cfg = make_config(run.config, **overrides).resolved()
    path = run.find_checkpoint(which)
    ckpt = runs.load_torch(path)
    dev = resolve_device(cfg.device)
    _, x_eval, y_eval = _load_data(cfg)
    meta = model_meta(cfg, ckpt["meta"]["num_classes"], x_eval.shape[1:])
    model = runs.build_from_meta(meta)
    runs.load_weights(model, ckpt, path, meta=meta)
    model = model.to(dev).eval()
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    epoch = int(ckpt["epoch"])
    numbers, adv, clean = evaluate(model, x_eval.to(dev), y_eval.to(dev), cfg, epoch, amp=cfg.amp,
                                   instance=instance, progress=progress)
    return epoch, numbers, adv, clean
