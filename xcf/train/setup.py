"""Setup of a training run: everything built from a config before the first step.

:func:`prepare` loads the data (with the per-epoch evaluation set and an optional held-out
part of the training set), builds the model, loads and checks the KD teacher, and makes
the objective, so that every check that can fail does so before any training: also that
the optional packages the config needs are installed (:func:`check_optional_dependencies`;
torchattacks for ``autoattack``, which runs only after the last epoch).  The training
images go to the device as uint8 when that encoding is exact (:func:`device_images`).
"""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import torch
import torch.nn as nn

from xcf.runs.checkpoints import CheckpointError, build_from_meta, load_weights, read_checkpoint
from xcf.runs.config import DEVICE_PATTERN, TrainConfig
from xcf.runs.config_file import ConfigError
from xcf.data import load
from xcf.data.cifar import NORMALIZATION
from xcf.data.dataset import Dataset, as_uint8, stratified_indices
from xcf.train.objectives import Objective, build_objective

__all__ = ["OPTIONAL_DEPENDENCIES", "Setup", "resolve_device", "check_optional_dependencies",
           "load_data", "split_holdout", "device_images", "model_meta", "build_model",
           "load_teacher", "prepare"]

# Config key -> (module it imports, the pip extra that installs it).
OPTIONAL_DEPENDENCIES = {"autoattack": ("torchattacks", "autoattack")}


@dataclass
class Setup:
    """Everything built from a config before training: checked, on the device."""

    config: TrainConfig                 # resolved
    device: torch.device
    x_train: torch.Tensor               # (N, C, H, W) in [0, 1] on device; uint8 (255 x) if exact
    y_train: torch.Tensor               # (N,)
    x_eval: torch.Tensor                # (eval_n, C, H, W): the per-epoch evaluation set
    y_eval: torch.Tensor
    classes: list
    model: nn.Module
    meta: dict                          # how to rebuild the model (see xcf.runs.checkpoints)
    objective: Objective
    teacher_path: Optional[Path] = None
    x_holdout: Optional[torch.Tensor] = None  # (holdout_n, C, H, W): training images not trained on
    y_holdout: Optional[torch.Tensor] = None


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA if present, else the CPU; a name that is not a device (``gpu``) or
    a CUDA device that is absent is a :class:`~xcf.runs.config_file.ConfigError`."""
    if not isinstance(name, str) or not DEVICE_PATTERN.match(name):  # not torch's RuntimeError
        raise ConfigError("device", f"got {name!r}", ["auto", "cpu", "cuda", "cuda:N", "mps"])
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device", f"{name!r} requested but CUDA is not available", ["auto", "cpu"])
    return device


def check_optional_dependencies(c: TrainConfig) -> None:
    """A :class:`~xcf.runs.config_file.ConfigError` naming the fix when a config key is on whose
    optional package is not installed (``autoattack: true`` needs torchattacks, which is
    imported only after the last epoch: without this check a missing package would end a
    day of training with an ImportError)."""
    for key, (module, extra) in OPTIONAL_DEPENDENCIES.items():
        if getattr(c, key) and not _installed(module):
            raise ConfigError(key, f"{key}: true needs the {module} package, which is not "
                              f"installed; install it with pip install \"xcf[{extra}]\" (or "
                              f"pip install {module}), or set {key}: false")


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a parent package missing; sys.modules[module] None
        return False


def load_data(c: TrainConfig) -> tuple[Dataset, torch.Tensor, torch.Tensor]:
    """The dataset of a resolved config (``n_train`` plus ``holdout_n`` training samples),
    and its per-epoch evaluation set ``(x_eval, y_eval)``: a class-balanced ``eval_n`` of
    the test samples."""
    n_load = None if c.n_train is None else c.n_train + (c.holdout_n or 0)
    try:
        ds = load(c.dataset, root=c.data_root, n_train=n_load, n_test=c.n_test,
                       seed=c.data_seed, **c.data_kwargs)
    except (TypeError, ValueError) as err:  # an unknown keyword or bad value for the loader
        if isinstance(err, ConfigError):
            raise
        raise ConfigError("data_kwargs", f"{dict(c.data_kwargs)!r} not accepted by dataset "
                          f"{c.dataset!r}: {err}") from err
    K = ds.num_classes
    if len(ds.y_test) < K or (c.eval_n is not None and c.eval_n < K):
        raise ConfigError("eval_n", f"the evaluation set needs at least one sample of each of the "
                          f"{K} classes (Algorithm 1 averages per class); got "
                          f"n_test={len(ds.y_test)}, eval_n={c.eval_n}")
    idx = stratified_indices(ds.y_test, c.eval_n, torch.Generator().manual_seed(c.data_seed))
    return ds, ds.x_test[idx], ds.y_test[idx]


def split_holdout(x: torch.Tensor, y: torch.Tensor, n: Optional[int], seed: int):
    """``(x_train, y_train, x_holdout, y_holdout)``: a class-balanced ``n`` of the training
    samples held out (``None``: nothing held out), the rest kept for training, both in
    their original order."""
    if not n:
        return x, y, None, None
    K = int(y.max()) + 1 if len(y) else 0
    if not K <= n < len(y):
        raise ConfigError("holdout_n", f"must hold out at least one sample of each of the {K} "
                          f"classes and leave some to train on: got {n} of {len(y)} training samples")
    hold = stratified_indices(y, n, torch.Generator().manual_seed(seed + 1))
    keep = torch.ones(len(y), dtype=torch.bool)
    keep[hold] = False
    return x[keep], y[keep], x[hold], y[hold]


def device_images(x: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Training images on ``device``: as uint8 (a quarter of the memory; converted per
    batch by :func:`xcf.train.loop.train_epoch`, to the same float32 bits) when ``x`` is
    exactly ``bytes / 255`` (:func:`xcf.data.dataset.as_uint8`: CIFAR, Tiny-ImageNet,
    Fashion-MNIST at 28 px), else as they are (planted images, resized ones)."""
    packed = as_uint8(x)
    return (x if packed is None else packed).to(device)


def model_meta(c: TrainConfig, num_classes: int, image_shape: Sequence[int]) -> dict:
    """How to rebuild the model of config ``c`` (saved in every checkpoint)."""
    kwargs = dict(c.model_kwargs)
    key = str(c.dataset).lower().replace("_", "-")
    if c.normalize and key in NORMALIZATION and "mean" not in kwargs:
        kwargs["mean"], kwargs["std"] = (list(v) for v in NORMALIZATION[key])
    if c.model.replace("-", "_").lower() == "deit_tiny":
        kwargs.setdefault("img_size", int(image_shape[-1]))
    return {"model": c.model, "num_classes": int(num_classes), "in_channels": int(image_shape[0]),
            "image_shape": [int(s) for s in image_shape], "model_kwargs": kwargs,
            "dataset": c.dataset}


def build_model(c: TrainConfig, meta: dict, device: torch.device) -> nn.Module:
    """The freshly initialised model of config ``c`` on ``device`` (weights depend on the
    seed only), in channels-last layout and compiled if the config says so."""
    torch.manual_seed(c.seed)  # the initial weights depend on the seed only
    try:
        model = build_from_meta(meta)
    except (TypeError, ValueError, RuntimeError, AssertionError) as err:
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ConfigError("model_kwargs", f"{dict(c.model_kwargs)!r} not accepted by model "
                          f"{c.model!r}: {first}") from err
    model = model.to(device)
    if c.channels_last:
        model = model.to(memory_format=torch.channels_last)
    if c.compile:
        model.compile()  # in place: state_dict keys and checkpoints stay as without it
    return model


def load_teacher(c: TrainConfig, meta: dict, device: torch.device) -> tuple[nn.Module, Path]:
    """The KD teacher, checked against the student's task before any training: a run
    folder must be finished (its final.json written: else best.pt is only the best of the
    epochs trained so far), and the teacher must have the student's classes, input
    channels and image size (a model with global pooling would take other sizes silently)."""
    path = Path(c.kd.teacher)
    if not path.exists():
        raise ConfigError("kd.teacher", f"{path} does not exist (give an xcf checkpoint .pt "
                          "or a run folder, relative to the working directory)")
    if path.is_dir() and not (path / "final.json").is_file():
        raise ConfigError("kd.teacher", f"the teacher run {path} is not finished (no "
                          "final.json): train it to the end first (xcf train on its "
                          "config.yaml resumes it), or give a finished run")
    try:
        ckpt, file = read_checkpoint(path, "best")
    except CheckpointError as err:
        raise ConfigError("kd.teacher", str(err)) from err
    t_meta = ckpt["meta"]
    for field_, what in (("num_classes", "classes"), ("in_channels", "input channels")):
        if t_meta.get(field_) != meta[field_]:
            raise ConfigError("kd.teacher", f"the teacher {file} has {t_meta.get(field_)} {what} "
                              f"but dataset {c.dataset!r} has {meta[field_]}")
    shape = t_meta.get("image_shape")  # absent from checkpoints of before it was recorded
    if shape is not None and [int(v) for v in shape] != [int(v) for v in meta["image_shape"]]:
        raise ConfigError("kd.teacher", f"the teacher {file} was trained on images of shape "
                          f"{tuple(shape)} (channels, height, width) but the student's data "
                          f"(dataset {c.dataset!r}, data_kwargs {dict(c.data_kwargs)}) have "
                          f"{tuple(meta['image_shape'])}; train the teacher on the student's "
                          "data (same dataset and data_kwargs)")
    teacher = build_from_meta(t_meta)
    load_weights(teacher, ckpt, file)
    teacher = teacher.to(device).eval()
    if c.channels_last:
        teacher = teacher.to(memory_format=torch.channels_last)
    return teacher, file


def prepare(config: TrainConfig) -> Setup:
    """Load data, build the model, teacher and objective: every check that can fail does
    so here, before any training."""
    c = config.resolved()
    device = resolve_device(c.device)
    check_optional_dependencies(c)
    ds, x_eval, y_eval = load_data(c)
    x_tr, y_tr, x_ho, y_ho = split_holdout(ds.x_train, ds.y_train, c.holdout_n, c.data_seed)
    meta = model_meta(c, ds.num_classes, ds.image_shape)
    model = build_model(c, meta, device)
    teacher, teacher_path = load_teacher(c, meta, device) if c.objective == "kd_at" else (None, None)
    move = lambda t: None if t is None else t.to(device)  # noqa: E731
    x_train, y_train = device_images(x_tr, device), y_tr.to(device)
    objective = build_objective(c, teacher)
    if hasattr(objective, "match"):  # label smoothing matched to the teacher (issue 28)
        objective.match(x_train, y_train)
    return Setup(config=c, device=device, x_train=x_train, y_train=y_train,
                 x_eval=x_eval.to(device), y_eval=y_eval.to(device), classes=list(ds.classes),
                 model=model, meta=meta, objective=objective,
                 teacher_path=teacher_path, x_holdout=move(x_ho), y_holdout=move(y_ho))
