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

import os
from pathlib import Path

# Modules, not their functions: ``xcf.data.planted`` stays the module, so each name has
# one import path (``xcf.data.planted.planted``).
from . import cifar, dataset, fashion_mnist, planted, tiny_imagenet

__all__ = ["DATASETS", "default_root", "load"]

DATASETS: tuple[str, ...] = ("cifar10", "cifar100", "tiny-imagenet", "fashion-mnist", "planted")


def default_root() -> Path:
    """``$XCF_DATA_DIR`` (or the older ``$XCF_DATA``) if set, else ``./data``."""
    return Path(os.environ.get("XCF_DATA_DIR") or os.environ.get("XCF_DATA", "data"))


def load(name: str, *, root: str | Path | None = None, n_train: int | None = None,
         n_test: int | None = None, seed: int = 0, download: bool = True, **kwargs) -> dataset.Dataset:
    """Load dataset ``name`` (one of :data:`DATASETS`) into memory.

    ``n_train`` / ``n_test`` take a class-balanced subset (``None``: everything; for
    ``planted``: the number of images generated). ``root`` defaults to ``$XCF_DATA`` or
    ``./data``. ``kwargs`` go to the dataset's loader (``planted``: see :func:`xcf.data.planted.planted`;
    ``fashion-mnist``: ``pad_to``, ``image_size``, ``source_dir``; ``tiny-imagenet``:
    ``cache``).
    """
    key = name.lower().replace("_", "-")
    if key not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {DATASETS}")
    if key == "planted":
        sizes = {k: v for k, v in (("n_train", n_train), ("n_test", n_test)) if v is not None}
        return planted.planted(**sizes, seed=seed, **kwargs)
    root = Path(root) if root is not None else default_root()
    loader = {"cifar10": cifar.load_cifar, "cifar100": cifar.load_cifar,
              "tiny-imagenet": tiny_imagenet.load_tiny_imagenet,
              "fashion-mnist": fashion_mnist.load_fashion_mnist}[key]
    return loader(key, root, n_train, n_test, seed, download, **kwargs)
