"""Datasets as in-memory tensors: the registry.

:func:`load` is the entry point: ``xcf.data.load(name, ...)`` returns a
:class:`~xcf.data.dataset.Dataset` of ``(N, C, H, W)`` float32 images in ``[0, 1]`` and
``(N,)`` int64 labels.  One loader per module:

- ``cifar10``, ``cifar100``: :mod:`xcf.data.cifar` (torchvision).
- ``tiny-imagenet``: :mod:`xcf.data.tiny_imagenet` (the official archive).
- ``fashion-mnist``: :mod:`xcf.data.fashion_mnist` (torchvision, or Debian's files).
- ``planted``: :mod:`xcf.data.planted`, synthetic images with known cross-class parts, the
  ground truth for the feature attribution correlation matrix C (Eq. 5-6).

Batching and augmentation are in :mod:`xcf.data.batching`.  Absent data raise
:class:`~xcf.data.dataset.DatasetUnavailableError` saying how to obtain them.
"""
from __future__ import annotations

import inspect
import os
from pathlib import Path

from xcf.inputs import ArgumentError, ArgumentTypeError, check_count, check_flag

# Modules, not their functions: ``xcf.data.planted`` stays the module, so each name has
# one import path (``xcf.data.planted.planted``).
from xcf.data import cifar, dataset, fashion_mnist, planted, tiny_imagenet

__all__ = ["DATASETS", "default_root", "load"]

DATASETS: tuple[str, ...] = ("cifar10", "cifar100", "tiny-imagenet", "fashion-mnist", "planted")


def default_root() -> Path:
    """``$XCF_DATA_DIR`` (or the older ``$XCF_DATA``) if set, else ``./data``."""
    return Path(os.environ.get("XCF_DATA_DIR") or os.environ.get("XCF_DATA", "data"))


def load(name: str, *, root: str | Path | None = None, n_train: int | None = None,
         n_test: int | None = None, seed: int = 0, download: bool = True, **kwargs) -> dataset.Dataset:
    """Load dataset ``name`` (one of :data:`DATASETS`) into memory.

    ``n_train`` / ``n_test`` take a class-balanced subset (``None``: everything; for
    ``planted``: the number of images generated); ``n_train=0`` loads the test set only,
    ``n_test`` is at least 1. ``root`` defaults to ``$XCF_DATA_DIR`` or ``./data``. ``kwargs``
    go to the dataset's loader (``planted``: see :func:`xcf.data.planted.planted`;
    ``fashion-mnist``: ``pad_to``, ``image_size``, ``source_dir``; ``tiny-imagenet``:
    ``cache``).

    Every argument is checked before any work (no download, no image drawn): a bad one
    raises an :mod:`xcf.inputs` error naming it and the fix (:class:`~xcf.inputs.ArgumentTypeError`
    for a wrong type, e.g. a bool or a string where a number belongs;
    :class:`~xcf.inputs.ArgumentError` for a value out of range or an unknown name).
    """
    key = _dataset_key(name)
    _check_common(key, root, n_train, n_test, seed, download, kwargs)
    if key == "planted":
        sizes = {k: v for k, v in (("n_train", n_train), ("n_test", n_test)) if v is not None}
        return planted.planted(**sizes, seed=seed, **kwargs)
    root = Path(root) if root is not None else default_root()
    return _LOADERS[key](key, root, n_train, n_test, seed, download, **kwargs)


_LOADERS = {"cifar10": cifar.load_cifar, "cifar100": cifar.load_cifar,
            "tiny-imagenet": tiny_imagenet.load_tiny_imagenet,
            "fashion-mnist": fashion_mnist.load_fashion_mnist, "planted": planted.planted}


def _dataset_key(name) -> str:
    """``name`` as a key of :data:`DATASETS` (``Tiny_ImageNet`` -> ``tiny-imagenet``)."""
    if not isinstance(name, str):
        raise ArgumentTypeError(f"dataset name {name!r} is not a string (it is a "
                                f"{type(name).__name__}); pass one of {', '.join(DATASETS)}")
    key = name.lower().replace("_", "-")
    if key not in DATASETS:
        raise ArgumentError(f"unknown dataset {name!r}; choose one of {DATASETS}")
    return key


def _check_common(key: str, root, n_train, n_test, seed, download, kwargs: dict) -> None:
    """The arguments every loader shares, and the names of the loader's own keywords."""
    if root is not None and not isinstance(root, (str, os.PathLike)):
        raise ArgumentTypeError(f"root {root!r} is not a folder path (it is a "
                                f"{type(root).__name__}); pass a str or pathlib.Path, or None "
                                "for $XCF_DATA_DIR")
    # n_train=0 is the test set alone (as xcf measure-model loads it); no use reads an
    # empty test set, and a negative size used to reach torch as a RuntimeError.
    if n_train is not None:
        check_count(n_train, "n_train", 0, 1000)
    if n_test is not None:
        check_count(n_test, "n_test", 1, 1000)
    check_count(seed, "seed", 0, 0)
    check_flag(download, "download")
    own = [p.name for p in inspect.signature(_LOADERS[key]).parameters.values()
           if p.kind is p.KEYWORD_ONLY and p.name != "seed"]
    for param in kwargs:
        if param not in own:
            raise ArgumentError(f"dataset {key!r} has no parameter {param!r}; its parameters "
                                f"are {', '.join(own) or 'none'} (drop {param}=...)")
