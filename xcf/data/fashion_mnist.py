"""Fashion-MNIST: torchvision's copy, Debian's ``dataset-fashion-mnist`` files, or a download."""
from __future__ import annotations

import dataclasses
import gzip
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from xcf.inputs import ArgumentError, ArgumentTypeError, check_count
from xcf.data.dataset import Dataset, DatasetUnavailableError, from_uint8

__all__ = ["FASHION_MNIST_CLASSES", "FASHION_MNIST_DIRS", "read_idx", "load_fashion_mnist"]

FASHION_MNIST_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                         "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
# Where Debian's `dataset-fashion-mnist` package puts the original IDX files.
FASHION_MNIST_DIRS: tuple[Path, ...] = (Path("/usr/share/datasets/fashion-mnist"),)
_FASHION_FILES = {"train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
                  "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")}


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (the MNIST format; ``.gz`` is decompressed): a big-endian header
    ``0, 0, dtype code, ndim``, ``ndim`` int32 sizes, then the raw values."""
    path = Path(path)
    raw = gzip.open(path).read() if path.suffix == ".gz" else path.read_bytes()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise ValueError(f"{path} is not an unsigned-byte IDX file")
    ndim = raw[3]
    dims = np.frombuffer(raw, dtype=">i4", count=ndim, offset=4)
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise ValueError(f"{path}: header says {tuple(dims)} but holds {data.size} values")
    return data.reshape(tuple(int(d) for d in dims))


def _fashion_from_dir(folder: Path) -> tuple[torch.Tensor, ...]:
    out = []
    for split in ("train", "test"):
        images, labels = (folder / f for f in _FASHION_FILES[split])
        out += [torch.from_numpy(read_idx(images).copy()),
                torch.from_numpy(read_idx(labels).astype(np.int64))]
    return tuple(out)


def load_fashion_mnist(key: str, root: Path, n_train, n_test, seed, download, *,
                        pad_to: int | None = None, image_size: int = 28,
                        source_dir: str | Path | None = None) -> Dataset:
    """Sources in order: ``source_dir`` (four IDX ``.gz`` files), torchvision's folder under
    ``root``, Debian's ``/usr/share/datasets/fashion-mnist``, torchvision download.

    ``image_size`` resizes (bilinear, antialiased) from 28 px; ``pad_to`` then zero-pads
    symmetrically, e.g. ``pad_to=32`` for models built for 32 px inputs.  Both are checked
    before any file is read (:mod:`xcf.inputs` errors)."""
    _check_sizes(image_size, pad_to, source_dir)
    from torchvision import datasets  # lazily: torchvision is slow to import

    dirs = [Path(source_dir)] if source_dir is not None else list(FASHION_MNIST_DIRS)
    found = next((d for d in dirs if all((d / f).exists() for fs in _FASHION_FILES.values()
                                         for f in fs)), None)
    if source_dir is not None and found is None:
        raise DatasetUnavailableError(f"{source_dir} lacks the Fashion-MNIST IDX files "
                                      f"{sorted(f for fs in _FASHION_FILES.values() for f in fs)}")
    tensors = None
    if source_dir is None:
        try:  # torchvision's own copy, if a previous run downloaded it
            tv = [datasets.FashionMNIST(str(root), train=t, download=False) for t in (True, False)]
            tensors = (tv[0].data, tv[0].targets, tv[1].data, tv[1].targets)
        except RuntimeError:
            pass
    if tensors is None and found is not None:
        tensors = _fashion_from_dir(found)
    if tensors is None and download:
        try:
            tv = [datasets.FashionMNIST(str(root), train=t, download=True) for t in (True, False)]
            tensors = (tv[0].data, tv[0].targets, tv[1].data, tv[1].targets)
        except Exception as err:  # no internet
            raise DatasetUnavailableError(_fashion_help(root, err)) from err
    if tensors is None:
        raise DatasetUnavailableError(_fashion_help(root, None))
    data = from_uint8(key, tensors[0], tensors[1], tensors[2], tensors[3],
                       FASHION_MNIST_CLASSES, n_train, n_test, seed)
    return _resize_pad(data, image_size, pad_to)


def _check_sizes(image_size, pad_to, source_dir) -> None:
    """``image_size`` a positive integer, ``pad_to`` none or at least ``image_size``."""
    check_count(image_size, "image_size", 1, 28)
    if pad_to is not None:
        check_count(pad_to, "pad_to", 1, 32)
        if pad_to < image_size:
            raise ArgumentError(f"pad_to={pad_to} is smaller than the image ({image_size} px); "
                                f"pass pad_to >= {image_size}, or None for no padding")
    if source_dir is not None and not isinstance(source_dir, (str, Path)):
        raise ArgumentTypeError(f"source_dir {source_dir!r} is not a folder path (it is a "
                                f"{type(source_dir).__name__}); pass a str or pathlib.Path")


def _fashion_help(root: Path, err: Exception | None) -> str:
    why = f" and could not be downloaded ({err})" if err else ""
    return (f"Fashion-MNIST was found neither in {root / 'FashionMNIST'} nor in "
            f"{', '.join(map(str, FASHION_MNIST_DIRS))}{why}. Install it with\n"
            f"    sudo apt-get install dataset-fashion-mnist\n"
            f"(Debian/Ubuntu), or let torchvision download it on a connected machine with "
            f"load('fashion-mnist', download=True).")


def _resize_pad(data: Dataset, image_size: int, pad_to: int | None) -> Dataset:
    def fix(x: torch.Tensor) -> torch.Tensor:
        if image_size != x.shape[-1]:
            x = F.interpolate(x, size=(image_size, image_size), mode="bilinear",
                              antialias=True, align_corners=False).clamp_(0, 1)
        if pad_to is not None:
            extra = pad_to - x.shape[-1]
            if extra < 0:
                raise ValueError(f"pad_to={pad_to} is smaller than the image ({x.shape[-1]} px)")
            x = F.pad(x, (extra // 2, extra - extra // 2, extra // 2, extra - extra // 2))
        return x
    return dataclasses.replace(data, x_train=fix(data.x_train), x_test=fix(data.x_test))
