"""The :class:`Dataset` type every loader returns, and class-balanced subsets.

A :class:`Dataset` holds ``(N, C, H, W)`` float32 images in ``[0, 1]`` and ``(N,)`` int64
labels as in-memory tensors; there is no DataLoader.  :func:`stratified_indices` draws the
class-balanced subsets behind ``n_train`` / ``n_test``; :func:`from_uint8` turns a loader's
uint8 arrays into a (subset) :class:`Dataset`.  :func:`as_uint8` and :func:`uint8_to_float`
let a training set live on the device as uint8 (a quarter of float32: Tiny-ImageNet's
100k training images take 1.2 GB instead of 4.9 GB) and be converted per batch, to the
very values a float32 copy would hold.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

__all__ = ["Dataset", "DatasetUnavailableError", "stratified_indices", "from_uint8",
           "uint8_to_float", "as_uint8"]


class DatasetUnavailableError(RuntimeError):
    """The data are not on disk and could not be downloaded; the message says how to get them."""


@dataclass(eq=False)  # field-wise == on tensors would be ambiguous
class Dataset:
    """A classification dataset held as tensors.

    ``x_*``: ``(N, C, H, W)`` float32 in ``[0, 1]``; ``y_*``: ``(N,)`` int64 in ``[0, K)``.
    ``sharing``: ``(K, K)`` bool ground truth of which class pairs share a planted part
    (symmetric, False diagonal); ``None`` for natural data.
    ``info``: free-form metadata. Entries whose key ends in ``_train`` / ``_test`` and that
    are tensors with one row per sample (e.g. ``planted``'s ``layout_train``) are
    per-sample and follow :meth:`subset`; they stay on the CPU under :meth:`to`.
    """

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    classes: list[str]
    sharing: torch.Tensor | None = None
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """``(C, H, W)``."""
        return tuple(self.x_train.shape[1:])  # type: ignore[return-value]

    def to(self, device: torch.device | str) -> "Dataset":
        """A copy with images, labels and ``sharing`` on ``device`` (e.g. to augment there)."""
        move = lambda t: None if t is None else t.to(device)  # noqa: E731
        return dataclasses.replace(
            self, x_train=move(self.x_train), y_train=move(self.y_train),
            x_test=move(self.x_test), y_test=move(self.y_test), sharing=move(self.sharing))

    def subset(self, n_train: int | None, n_test: int | None, seed: int = 0) -> "Dataset":
        """Class-balanced random subset: ``n_train`` / ``n_test`` samples (``None``: keep the
        whole split), as equal per class as the class sizes allow. Deterministic in ``seed``;
        samples keep their original order."""
        gen = torch.Generator().manual_seed(seed)
        idx_tr = stratified_indices(self.y_train, n_train, gen)
        idx_te = stratified_indices(self.y_test, n_test, gen)
        info = dict(self.info)
        for key, value in self.info.items():
            idx = idx_tr if key.endswith("_train") else idx_te if key.endswith("_test") else None
            if idx is not None and torch.is_tensor(value) and len(value) == len(
                    self.y_train if key.endswith("_train") else self.y_test):
                info[key] = value[idx]
        return dataclasses.replace(
            self, x_train=self.x_train[idx_tr.to(self.x_train.device)],
            y_train=self.y_train[idx_tr.to(self.y_train.device)],
            x_test=self.x_test[idx_te.to(self.x_test.device)],
            y_test=self.y_test[idx_te.to(self.y_test.device)], info=info)

    def __repr__(self) -> str:  # tensors would print their contents
        return (f"Dataset({self.name!r}, train={len(self.y_train)}, test={len(self.y_test)}, "
                f"image_shape={self.image_shape}, classes={self.num_classes}, "
                f"device={self.x_train.device})")


def stratified_indices(y: torch.Tensor, n: int | None, generator: torch.Generator) -> torch.Tensor:
    """Sorted indices of a class-balanced random sample of size ``n`` from labels ``y``.

    Each class gets ``n // K`` (the first ``n % K`` classes in a random order one more);
    a class with too few samples gives all it has and the rest is spread over the others.
    ``n=None`` or ``n >= len(y)`` returns all indices.
    """
    y = y.cpu()
    if n is None or n >= len(y):
        return torch.arange(len(y))
    if n < 0:
        raise ValueError(f"subset size must be >= 0, got {n}")
    labels = torch.unique(y)
    pools = [torch.nonzero(y == c).flatten() for c in labels]
    pools = [p[torch.randperm(len(p), generator=generator)] for p in pools]
    sizes = torch.tensor([len(p) for p in pools])
    quota = torch.zeros(len(pools), dtype=torch.long)
    left = n
    # Water-filling: hand out the remaining budget evenly to classes that still have samples.
    while left > 0:
        open_ = torch.nonzero(quota < sizes).flatten()
        open_ = open_[torch.randperm(len(open_), generator=generator)]
        share, extra = divmod(left, len(open_))
        add = torch.full((len(open_),), share, dtype=torch.long)
        add[:extra] += 1
        add = torch.minimum(add, sizes[open_] - quota[open_])
        quota[open_] += add
        left -= int(add.sum())
    picked = torch.cat([p[:q] for p, q in zip(pools, quota.tolist())])
    return picked.sort().values


def from_uint8(name: str, x_train: torch.Tensor, y_train, x_test: torch.Tensor, y_test,
                classes: list[str], n_train: int | None, n_test: int | None,
                seed: int) -> Dataset:
    """Subset first (cheap on uint8), then convert ``(N, H, W, C)`` or ``(N, C, H, W)``
    uint8 to float32 ``(N, C, H, W)`` in ``[0, 1]``."""
    gen = torch.Generator().manual_seed(seed)
    y_train = torch.as_tensor(np.asarray(y_train), dtype=torch.int64)
    y_test = torch.as_tensor(np.asarray(y_test), dtype=torch.int64)
    i_tr = stratified_indices(y_train, n_train, gen)
    i_te = stratified_indices(y_test, n_test, gen)
    return Dataset(name, _to_float(x_train[i_tr]), y_train[i_tr],
                   _to_float(x_test[i_te]), y_test[i_te], list(classes))


def _to_float(x: torch.Tensor) -> torch.Tensor:
    if x.dim() == 3:  # (N, H, W) greyscale
        x = x.unsqueeze(1)
    elif x.shape[-1] in (1, 3) and x.shape[1] not in (1, 3):  # (N, H, W, C)
        x = x.permute(0, 3, 1, 2)
    # On the CPU, division by a scalar is IEEE division: each value is v / 255 correctly
    # rounded, the entry v of _BYTE_VALUES (whole datasets: no index tensor is built).
    return x.contiguous().float().div_(255.0)


# float32 v / 255 for every byte v, by the CPU's IEEE division (see _to_float).
_BYTE_VALUES = torch.arange(256, dtype=torch.float32).div_(255.0)
_TABLES: dict[torch.device, torch.Tensor] = {}


def uint8_to_float(x: torch.Tensor) -> torch.Tensor:
    """uint8 bytes ``v`` (any shape, e.g. a ``(B, C, H, W)`` batch) -> float32 ``v / 255``
    in [0, 1] on ``x``'s device, bit for bit the values :func:`from_uint8` gives on the
    CPU.  A table lookup, not a division: CUDA may divide by a scalar by multiplying with
    its reciprocal, which rounds half of the 256 values differently."""
    table = _TABLES.get(x.device)
    if table is None:
        table = _TABLES[x.device] = _BYTE_VALUES.to(x.device)
    return table[x.int()]


def as_uint8(x: torch.Tensor, chunk: int = 4096) -> torch.Tensor | None:
    """``x`` (float, ``(N, ...)`` in [0, 1]) as uint8 ``round(255 x)`` when that encoding
    is exact, i.e. :func:`uint8_to_float` of the result gives back ``x`` bit for bit (true
    of images a loader read as bytes: CIFAR, Tiny-ImageNet, Fashion-MNIST at its own
    size); ``None`` otherwise (resized or synthetic images, such as ``planted``).  Works
    ``chunk`` samples at a time, so the check needs little memory beyond the result."""
    if x.dtype != torch.float32 or x.dim() == 0:  # per batch, bytes become float32
        return None
    out = torch.empty(x.shape, dtype=torch.uint8, device=x.device)
    for start in range(0, len(x), chunk):
        part = x[start:start + chunk]
        if not bool(((part >= 0) & (part <= 1) & ~part.signbit()).all()):  # -0.0: no byte
            return None
        code = part.mul(255.0).round_().to(torch.uint8)
        if not torch.equal(uint8_to_float(code), part):
            return None
        out[start:start + chunk] = code
    return out
