"""Training configuration: :class:`TrainConfig`, its sections, and its validation.

One concept: *what defines a run*.  :class:`TrainConfig` holds every knob of
:func:`xcf.train.runner.train`, with the defaults of Table 2 (Appendix B) of Wei, Guo & Wang
(ICML 2025): SGD, momentum 0.9, weight decay 5e-4, batch 128, lr 0.1 decayed x0.1 after
50% and 75% of 200 epochs, PGD-10 with step eps/4 (l-inf) or eps/8 (l2), eps 8/255 or
128/255, evaluation with PGD-20.  The sections :class:`KDConfig` (Eq. 3),
:class:`TradesConfig` and :class:`FastATConfig` hold the settings of one objective each.

:func:`make_config` builds a validated config from a config, a mapping or a YAML file;
every check that needs no data runs here and raises
:class:`~xcf.runs.config_file.ConfigError` naming the key.

**Run keys.**  :meth:`TrainConfig.key` names a run's folder (:mod:`xcf.runs.folder`): a hash
of the identity fields whose value differs from a frozen baseline, with floats rounded
first; the pieces (:data:`~xcf.runs.identity.KEY_BASELINE`,
:func:`~xcf.runs.identity.canonical`, the folder's name) are :mod:`xcf.runs.identity`'s.
Reading a YAML file and the errors are :mod:`xcf.runs.config_file`'s, the checks of one
value :mod:`xcf.runs.config_checks`'s.
"""
from __future__ import annotations

import copy
import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Optional, Union

from xcf.attacks import L2_EPS_MAX, LINF_EPS_MAX, NORMS, default_step_size
from xcf.data import DATASETS
from xcf.models import MODELS
from xcf.runs.config_checks import (as_float, did_you_mean, is_int, need_bool, need_choice,
                                    need_int, need_number)
from xcf.runs.config_file import ConfigError, read_config_file, short_repr
from xcf.runs.identity import (KEY_BASELINE, NON_IDENTITY, canonical, config_key, teacher_digest,
                               teacher_identity)

__all__ = ["OBJECTIVES", "AMP_MODES", "ATTACK_MODES", "KD_FORMS", "KD_SOFT_LABELS", "BEST_METRICS",
           "DEVICE_PATTERN", "KDConfig", "TradesConfig",
           "FastATConfig", "TrainConfig", "check_sections_used", "make_config"]

OBJECTIVES = ("standard", "pgd_at", "kd_at", "fast_at", "trades")
# fp16 needs loss scaling (torch.amp.GradScaler, xcf.train.precision.grad_scaler): the fast path
# on GPUs without bf16 tensor cores (T4, V100).
AMP_MODES = ("none", "bf16", "fp16")
ATTACK_MODES = ("train", "eval")  # train: the official loop (model.train() before the attack)
KD_FORMS = ("eq3", "hinton")
# Whose soft labels KD-AT learns from: the teacher's (the paper), or a control of issue
# 28 that keeps their confidence and destroys their class similarity (xcf.train.objectives).
KD_SOFT_LABELS = ("teacher", "shuffled", "smoothing")
BEST_METRICS = ("auto", "test_robust_acc", "test_clean_acc")
DEVICE_PATTERN = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")
# LINF_EPS_MAX, L2_EPS_MAX: the bounds of the attack radius, defined by xcf.attacks so that
# PGD and FGSMRS refuse the same radii as a config.


@dataclass
class KDConfig:
    """KD-AT settings (Eq. 3).  The paper gives no values; lambda 0.5 and T 2 are ours.

    ``form``: ``eq3``, Eq. 3 as printed, ``(1 - lam) CE + lam KL`` (the default: the
    official code has no KD, so the printed equation is the spec), or ``hinton``, the
    Hinton et al. (2015) form ``(1 - lam) CE + lam T^2 KL`` of the KD-AT code the paper
    builds on (Chen et al. 2021); see :func:`xcf.train.objectives.distillation_loss`.

    ``soft_labels`` (beyond the paper, issue 28): ``teacher`` (the paper's KD-AT),
    ``shuffled`` (the teacher's probabilities with the non-true classes permuted per
    sample: :class:`xcf.train.objectives.ShuffledDistillationAT`) or ``smoothing`` (label
    smoothing matched to the teacher's mean true-class probability:
    :class:`xcf.train.objectives.MatchedSmoothingAT`)."""

    teacher: Optional[str] = None   # xcf checkpoint file, or a run folder (its best.pt)
    lam: float = 0.5                # YAML key: lambda
    temperature: float = 2.0
    form: str = "eq3"
    soft_labels: str = "teacher"


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
    the per-epoch evaluation; ``None`` = the whole test set), ``holdout_n`` (training
    samples held out of training and attacked every epoch like the test set, for label-
    free checkpoint selection from training data only; ``None``: none), ``data_seed``, ``augment``
    (random crop with 4 px reflect padding + flip).
    Model: ``model`` (one of :data:`xcf.models.MODELS`), ``model_kwargs`` (e.g. ``width``),
    ``normalize`` (per-channel mean/std of CIFAR inside the model, as the official code).
    Objective: ``objective`` (:data:`OBJECTIVES`), ``norm``, ``eps`` (None: 8/255 l-inf or
    128/255 l2), ``alpha`` (None: eps/4 or eps/8), ``attack_steps`` (10), ``attack_mode``
    (model mode during the training attack), and the sections ``kd``, ``trades``,
    ``fast_at``.
    Optimisation: ``epochs`` (200), ``batch_size`` (128), ``lr`` (0.1), ``momentum`` (0.9),
    ``weight_decay`` (5e-4), ``milestones`` ([0.5, 0.75] of the epochs), ``lr_gamma``
    (0.1), ``seed``, ``amp`` (``none``, ``bf16`` autocast, or ``fp16`` autocast with loss
    scaling), ``channels_last``,
    ``compile`` (``model.compile()``, inductor: fuses batch norm, ReLU and additions; a
    one-off compile time per input shape and model mode), ``log_train_clean`` (log the
    accuracy on clean training batches for adversarial objectives, at one extra forward
    pass per batch; off by default, as it does not change training).
    Evaluation: ``eval_eps`` (None: eps), ``eval_steps`` (PGD-20), ``eval_batch_size``,
    ``best_metric`` (``auto``: test robust accuracy, or clean accuracy for ``standard``),
    ``save_matrices_every`` (None: every epoch up to 50 epochs, else every 10; best and
    last always), ``save_checkpoints_at`` (epochs whose model is kept besides best/last),
    ``autoattack`` / ``autoattack_n`` (final AutoAttack of best and last; ``None`` = the
    eval set), ``final_test`` (when training ends, best and last on the whole test set, as
    an epoch is evaluated: final.json's ``test``, :func:`xcf.train.final_test.final_test`; free
    when ``eval_n`` covers the test set), ``device`` (``auto``: CUDA if present).
    """

    dataset: str = "cifar10"
    data_kwargs: dict = field(default_factory=dict)
    data_root: Optional[str] = None
    n_train: Optional[int] = None
    n_test: Optional[int] = None
    eval_n: Optional[int] = None
    holdout_n: Optional[int] = None
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
    attack_mode: str = "train"
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
    compile: bool = False
    log_train_clean: bool = False
    eval_eps: Optional[float] = None
    eval_steps: int = 20
    eval_batch_size: int = 500
    best_metric: str = "auto"
    save_matrices_every: Optional[int] = None
    save_checkpoints_at: list = field(default_factory=list)
    autoattack: bool = False
    autoattack_n: Optional[int] = None
    final_test: bool = True
    device: str = "auto"

    def __post_init__(self) -> None:
        for name, cls in _SECTIONS.items():
            value = getattr(self, name)
            if value is None:
                setattr(self, name, cls())
            elif isinstance(value, Mapping):
                setattr(self, name, _section_from_dict(name, cls, value))
            elif not isinstance(value, cls):
                keys = [_YAML_KEYS.get(f.name, f.name) for f in dataclasses.fields(cls)]
                raise ConfigError(name, f"must be a mapping with the keys {', '.join(keys)}, "
                                  f"got {short_repr(value)}")
        _coerce_numbers(self)
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
                raise ConfigError(str(key), "unknown key" + did_you_mean(key, known), known)
        return cls(**dict(d))

    @classmethod
    def from_yaml(cls, path: str | Path) -> "TrainConfig":
        """Build from a YAML file (see :func:`~xcf.runs.config_file.read_config_file` for
        what the file must be); a section the objective does not use must not set anything
        (:func:`check_sections_used`)."""
        config = cls.from_dict(read_config_file(path))
        check_sections_used(config)
        return config

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
        """What a run's key is computed from: the identity fields of the resolved config
        (no runtime-only field, :data:`~xcf.runs.identity.NON_IDENTITY`; no section of
        another objective) whose canonical value differs from the baseline
        (:data:`~xcf.runs.identity.KEY_BASELINE`; a field added after it is compared with
        its own default).  A section is compared field by field.  A KD teacher is named by
        :func:`~xcf.runs.identity.teacher_identity`, and its content by
        :func:`~xcf.runs.identity.teacher_digest` (``kd.teacher_weights_sha256``) when one
        is known, so a student of a replaced teacher gets a key of its own, and a student
        of a teacher trained again bit for bit keeps its key."""
        d = self.resolved().to_dict()
        for key in NON_IDENTITY:
            d.pop(key, None)
        active = _ACTIVE_SECTION.get(self.objective)
        for name in _SECTIONS:
            if name != active:
                d.pop(name)
        if active == "kd" and d["kd"]["teacher"]:
            digest = teacher_digest(d["kd"]["teacher"])
            d["kd"]["teacher"] = teacher_identity(d["kd"]["teacher"])
            d["kd"].update(digest)  # empty (old teachers): the key of before digests
        base = _key_baseline(type(self))
        diff = {}
        for name, value in d.items():
            if name in _SECTIONS:
                sub = {k: v for k, v in value.items()
                       if canonical(v) != canonical(base[name].get(k))}
                if sub:
                    diff[name] = canonical(sub)
            elif canonical(value) != canonical(base.get(name)):
                diff[name] = canonical(value)
        return diff

    def key(self) -> str:
        """The run's key: :func:`~xcf.runs.identity.config_key` of :meth:`identity`."""
        return config_key(self.identity())



_SECTIONS = {"kd": KDConfig, "trades": TradesConfig, "fast_at": FastATConfig}
_ACTIVE_SECTION = {"kd_at": "kd", "trades": "trades", "fast_at": "fast_at"}  # its section
_YAML_KEYS = {"lam": "lambda"}


def check_sections_used(c: TrainConfig) -> None:
    """A :class:`~xcf.runs.config_file.ConfigError` naming the section and the objective
    when a section that ``c.objective`` does not read sets a value (``kd: {lambda: 0.3}``
    under ``objective: pgd_at`` would be ignored silently, and left out of the run key).

    A value equal to the field's default, or to what :meth:`TrainConfig.resolved` makes of
    it (``fast_at.alpha`` = 1.25 eps), passes: the config.yaml of every run holds all
    sections so, and must stay trainable as it is.  Applied where a user's config is read
    (:meth:`TrainConfig.from_yaml`, :func:`make_config` of a path, ``xcf train`` with its
    ``--set`` overrides), not by :meth:`TrainConfig.from_dict`, which also reads the
    config.yaml of runs made before this check existed."""
    active = _ACTIVE_SECTION.get(c.objective)
    for name, cls in _SECTIONS.items():
        if name == active:
            continue
        default = cls()
        resolved = getattr(dataclasses.replace(c, **{name: cls()}).resolved(), name)
        given = getattr(c, name)
        changed = [f"{_YAML_KEYS.get(f.name, f.name)}: {short_repr(getattr(given, f.name))}"
                   for f in dataclasses.fields(cls)
                   if canonical(getattr(given, f.name)) not in (
                       canonical(getattr(default, f.name)), canonical(getattr(resolved, f.name)))]
        if changed:
            user = next(o for o, s in _ACTIVE_SECTION.items() if s == name)
            raise ConfigError(name, f"section '{name}' sets {', '.join(changed)}, but objective "
                              f"{c.objective!r} does not use it (only {user} does), so it would "
                              f"be ignored; remove the section (xcf train: --set {name}=null), "
                              f"or set objective: {user}")


def _key_baseline(cls: type) -> dict:
    """:data:`~xcf.runs.identity.KEY_BASELINE`, completed with the current defaults of
    ``cls`` for the fields (and section fields) it lacks."""
    base = cls().resolved().to_dict()
    for name, frozen in KEY_BASELINE.items():
        base[name] = {**base.get(name, {}), **frozen} if name in _SECTIONS else frozen
    return base


def _section_from_dict(name: str, cls: type, d: Mapping[str, Any]):
    to_field = {v: k for k, v in _YAML_KEYS.items()}
    fields_ = [f.name for f in dataclasses.fields(cls)]
    yaml_names = [_YAML_KEYS.get(f, f) for f in fields_]
    kwargs = {}
    for key, value in d.items():
        attr = to_field.get(key, key)
        if attr not in fields_:
            raise ConfigError(f"{name}.{key}", "unknown key" + did_you_mean(key, yaml_names), yaml_names)
        kwargs[attr] = value
    return cls(**kwargs)


def make_config(config: Union[TrainConfig, Mapping[str, Any], str, Path, None] = None,
                **overrides: Any) -> TrainConfig:
    """A validated :class:`TrainConfig` from a config, a mapping or a YAML path, with
    keyword ``overrides`` on top (sections merge: ``kd={"lambda": 0.3}``).  From a path,
    a section the objective does not use must not set anything (:func:`check_sections_used`)."""
    from_file = isinstance(config, (str, Path))
    if from_file:
        config = TrainConfig.from_dict(read_config_file(config))
    base = config.to_dict() if isinstance(config, TrainConfig) else dict(config or {})
    for key, value in overrides.items():
        if key in _SECTIONS and isinstance(value, Mapping) and isinstance(base.get(key), Mapping):
            value = {**base[key], **value}
        base[key] = value
    made = TrainConfig.from_dict(base)
    if from_file:  # a user's file: what it sets must be used (after the overrides)
        check_sections_used(made)
    return made


# --------------------------------------------------------------------------- validation

# Fields (and section fields) that hold a float: a string that reads as a number (YAML 1.1
# reads ``1e-3``, without a dot, as a string) or as a fraction (``8/255``) is taken as that
# float before validation, so a run key does not depend on how the number was typed.
_FLOAT_FIELDS = ("lr", "momentum", "weight_decay", "lr_gamma", "eps", "eval_eps", "alpha")
_FLOAT_SECTION_FIELDS = {"kd": ("lam", "temperature"), "trades": ("beta",), "fast_at": ("alpha",)}


def _coerce_numbers(c: "TrainConfig") -> None:
    """Numbers written as strings (``lr: 1e-3``) become floats; anything else is left for
    :func:`_validate` to judge."""
    for name in _FLOAT_FIELDS:
        setattr(c, name, as_float(getattr(c, name)))
    for section, names in _FLOAT_SECTION_FIELDS.items():
        sub = getattr(c, section)
        for name in names:
            setattr(sub, name, as_float(getattr(sub, name)))
    if isinstance(c.milestones, (list, tuple)):
        c.milestones = [as_float(m) for m in c.milestones]


# model_kwargs that size a layer: integers >= 1 (checked here, before any data is loaded).
_MODEL_SIZES = ("width", "img_size", "patch_size", "depth", "num_heads", "embed_dim")


def _validate(c: TrainConfig) -> None:
    """Every check that needs no data: types, ranges, choices (:mod:`xcf.runs.config_checks`).
    Raises :class:`~xcf.runs.config_file.ConfigError`."""
    need_choice("dataset", str(c.dataset).lower().replace("_", "-"), DATASETS)
    need_choice("model", str(c.model).lower().replace("-", "_"), MODELS)
    need_choice("objective", c.objective, OBJECTIVES)
    need_choice("norm", c.norm, NORMS)
    need_choice("amp", c.amp, AMP_MODES)
    need_choice("attack_mode", c.attack_mode, ATTACK_MODES)
    need_choice("best_metric", c.best_metric, BEST_METRICS)
    if not isinstance(c.device, str) or not DEVICE_PATTERN.match(c.device):
        raise ConfigError("device", f"got {c.device!r}", ["auto", "cpu", "cuda", "cuda:N", "mps"])
    for key in ("data_kwargs", "model_kwargs"):
        if not isinstance(getattr(c, key), Mapping):
            raise ConfigError(key, f"must be a mapping, got {getattr(c, key)!r}")
    for name, value in c.model_kwargs.items():
        if name in _MODEL_SIZES:
            need_int(f"model_kwargs.{name}", value, 1)
    for key in ("augment", "normalize", "channels_last", "compile", "log_train_clean", "autoattack",
                "final_test"):
        need_bool(key, getattr(c, key))
    for key in ("n_train", "n_test", "eval_n", "holdout_n", "autoattack_n"):
        need_int(key, getattr(c, key), 1, optional=True)
    need_int("data_seed", c.data_seed, 0)
    need_int("seed", c.seed, 0)
    need_int("epochs", c.epochs, 1)
    need_int("batch_size", c.batch_size, 1)
    need_int("eval_batch_size", c.eval_batch_size, 1)
    need_int("eval_steps", c.eval_steps, 0)
    need_int("save_matrices_every", c.save_matrices_every, 1, optional=True)
    need_number("lr", c.lr, low=0, strict_low=True)
    need_number("momentum", c.momentum, low=0, high=1)
    need_number("weight_decay", c.weight_decay, low=0)
    need_number("lr_gamma", c.lr_gamma, low=0, strict_low=True)
    high = LINF_EPS_MAX if c.norm == "linf" else L2_EPS_MAX
    hint = (f" (the attack radius in [0, 1] pixel units: 0 < eps <= {high:g} for {c.norm}; "
            f"the paper uses {'8/255' if c.norm == 'linf' else '128/255'})")
    need_number("eps", c.eps, low=0, high=high, strict_low=True, optional=True, hint=hint)
    need_number("eval_eps", c.eval_eps, low=0, high=high, optional=True,
                 hint=hint.replace("0 < eps", "0 <= eval_eps"))
    need_number("alpha", c.alpha, low=0, high=high, strict_low=True, optional=True,
                 hint=" (the attack step size; null: eps/4 for linf, eps/8 for l2)")
    if not isinstance(c.milestones, (list, tuple)):
        raise ConfigError("milestones", f"must be a list of fractions of the epochs, got {c.milestones!r}")
    for m in c.milestones:
        need_number("milestones", m, low=0, high=1, strict_low=True)
    if not isinstance(c.save_checkpoints_at, (list, tuple)):
        raise ConfigError("save_checkpoints_at", f"must be a list of epochs, got {c.save_checkpoints_at!r}")
    for e in c.save_checkpoints_at:
        if not is_int(e) or not 1 <= e <= c.epochs:
            raise ConfigError("save_checkpoints_at", f"epoch {e!r} is not an integer in [1, {c.epochs}]")
    _validate_objective(c)


def _validate_objective(c: TrainConfig) -> None:
    adversarial = c.objective in ("pgd_at", "kd_at", "trades")
    need_int("attack_steps", c.attack_steps, 1 if adversarial else 0)
    if c.objective == "fast_at":
        if c.norm != "linf":
            raise ConfigError("norm", "fast_at (FGSM with random start) is l-inf only", ["linf"])
        need_number("fast_at.alpha", c.fast_at.alpha, low=0, strict_low=True, optional=True)
    if c.objective == "trades":
        need_number("trades.beta", c.trades.beta, low=0)
    if c.objective == "kd_at":
        if not c.kd.teacher or not isinstance(c.kd.teacher, str):
            raise ConfigError("kd.teacher", "objective kd_at needs a teacher: the path of an xcf "
                              f"checkpoint (.pt) or of a run folder, got {c.kd.teacher!r}")
        need_number("kd.lambda", c.kd.lam, low=0, high=1)
        need_number("kd.temperature", c.kd.temperature, low=0, strict_low=True)
        need_choice("kd.form", c.kd.form, KD_FORMS)
        need_choice("kd.soft_labels", c.kd.soft_labels, KD_SOFT_LABELS)
