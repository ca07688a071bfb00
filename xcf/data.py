"""Datasets as in-memory tensors, and batched on-device augmentation.

Every loader returns a :class:`Dataset` holding ``(N, C, H, W)`` float32 images in
``[0, 1]`` and ``(N,)`` int64 labels; there is no DataLoader. Training code iterates with
:func:`batches` and augments with :func:`augment` (random crop with 4 px reflect padding +
horizontal flip, the paper's CIFAR augmentation, Appendix B / official code) on the device.

Registry (:data:`DATASETS`):

- ``cifar10``, ``cifar100``: torchvision (downloaded where the internet is reachable).
- ``tiny-imagenet``: the official ``tiny-imagenet-200`` archive (64x64x3, 200 classes).
- ``fashion-mnist``: torchvision, or Debian's ``dataset-fashion-mnist`` files.
- ``planted``: synthetic images with known cross-class parts (:func:`planted`, in
  :mod:`xcf.planted`), the ground truth for the feature attribution correlation matrix C
  (Eq. 5-6).

Absent data raise :class:`DatasetUnavailableError` saying how to obtain them.
"""
from __future__ import annotations

import dataclasses
import gzip
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
import torch.nn.functional as F

from .planted import planted

DATASETS: tuple[str, ...] = ("cifar10", "cifar100", "tiny-imagenet", "fashion-mnist", "planted")

# Per-channel statistics used by the official code to normalise inputs inside the model
# (pass them as ``mean``/``std`` to :mod:`xcf.models`).
NORMALIZATION: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2471, 0.2435, 0.2616)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
}

FASHION_MNIST_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                         "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
# Where Debian's `dataset-fashion-mnist` package puts the original IDX files.
FASHION_MNIST_DIRS: tuple[Path, ...] = (Path("/usr/share/datasets/fashion-mnist"),)
_FASHION_FILES = {"train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
                  "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")}

TINY_IMAGENET_URL = "http://cs231n.stanford.edu/tiny-imagenet-200.zip"
TINY_IMAGENET_MD5 = "90528d7ca1a48142e341f4ef8d21d0de"


class DatasetUnavailableError(RuntimeError):
    """The data are not on disk and could not be downloaded; the message says how to get them."""


# =========================================================================== Dataset

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


def _from_uint8(name: str, x_train: torch.Tensor, y_train, x_test: torch.Tensor, y_test,
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
    return x.contiguous().float().div_(255.0)


# =========================================================================== registry

def default_root() -> Path:
    """``$XCF_DATA`` if set, else ``./data``."""
    return Path(os.environ.get("XCF_DATA", "data"))


def load(name: str, *, root: str | Path | None = None, n_train: int | None = None,
         n_test: int | None = None, seed: int = 0, download: bool = True, **kwargs) -> Dataset:
    """Load dataset ``name`` (one of :data:`DATASETS`) into memory.

    ``n_train`` / ``n_test`` take a class-balanced subset (``None``: everything; for
    ``planted``: the number of images generated). ``root`` defaults to ``$XCF_DATA`` or
    ``./data``. ``kwargs`` go to the dataset's loader (``planted``: see :func:`planted`;
    ``fashion-mnist``: ``pad_to``, ``image_size``, ``source_dir``; ``tiny-imagenet``:
    ``cache``).
    """
    key = name.lower().replace("_", "-")
    if key not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {DATASETS}")
    if key == "planted":
        sizes = {k: v for k, v in (("n_train", n_train), ("n_test", n_test)) if v is not None}
        return planted(**sizes, seed=seed, **kwargs)
    root = Path(root) if root is not None else default_root()
    loader = {"cifar10": _load_cifar, "cifar100": _load_cifar,
              "tiny-imagenet": _load_tiny_imagenet, "fashion-mnist": _load_fashion_mnist}[key]
    return loader(key, root, n_train, n_test, seed, download, **kwargs)


# --------------------------------------------------------------------------- CIFAR

def _load_cifar(key: str, root: Path, n_train, n_test, seed, download) -> Dataset:
    from torchvision import datasets

    cls = datasets.CIFAR10 if key == "cifar10" else datasets.CIFAR100
    try:
        train = cls(str(root), train=True, download=download)
        test = cls(str(root), train=False, download=download)
    except Exception as err:  # offline download (URLError), missing/corrupt files (RuntimeError)
        folder = cls.base_folder
        raise DatasetUnavailableError(
            f"{key} is not readable in {root / folder} and could not be downloaded ({err!r}). "
            f"On a machine with internet run\n"
            f"    python -c \"import torchvision; torchvision.datasets.{cls.__name__}('data', "
            f"download=True)\"\n"
            f"or fetch {cls.url} and unpack it, then copy the folder '{folder}' into {root} "
            f"(or point $XCF_DATA / root= at its parent).") from err
    return _from_uint8(key, torch.from_numpy(train.data), train.targets,
                       torch.from_numpy(test.data), test.targets, list(train.classes),
                       n_train, n_test, seed)


# --------------------------------------------------------------------------- Fashion-MNIST

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


def _load_fashion_mnist(key: str, root: Path, n_train, n_test, seed, download, *,
                        pad_to: int | None = None, image_size: int = 28,
                        source_dir: str | Path | None = None) -> Dataset:
    """Sources in order: ``source_dir`` (four IDX ``.gz`` files), torchvision's folder under
    ``root``, Debian's ``/usr/share/datasets/fashion-mnist``, torchvision download.

    ``image_size`` resizes (bilinear, antialiased) from 28 px; ``pad_to`` then zero-pads
    symmetrically, e.g. ``pad_to=32`` for models built for 32 px inputs."""
    from torchvision import datasets

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
    data = _from_uint8(key, tensors[0], tensors[1], tensors[2], tensors[3],
                       FASHION_MNIST_CLASSES, n_train, n_test, seed)
    return _resize_pad(data, image_size, pad_to)


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


# --------------------------------------------------------------------------- Tiny-ImageNet

def _load_tiny_imagenet(key: str, root: Path, n_train, n_test, seed, download, *,
                        cache: bool = True) -> Dataset:
    """The official archive layout under ``root/tiny-imagenet-200``: ``wnids.txt``,
    ``words.txt``, ``train/<wnid>/images/*.JPEG``, ``val/images/*.JPEG`` with labels in
    ``val/val_annotations.txt`` (the val split is the test set; the official test split has
    no labels). Classes are the sorted wnids, named by the first synonym in ``words.txt``.

    Decoding 110k JPEGs takes a while, so a full load is cached as uint8 tensors in
    ``tiny-imagenet-200/xcf-cache.pt`` (``cache=False`` to skip); a subset decodes only the
    images it picks."""
    base = root / "tiny-imagenet-200"
    if not (base / "wnids.txt").exists() and download:
        try:
            from torchvision.datasets.utils import download_and_extract_archive
            download_and_extract_archive(TINY_IMAGENET_URL, str(root), md5=TINY_IMAGENET_MD5)
        except Exception as err:  # no internet
            raise DatasetUnavailableError(_tiny_help(root, err)) from err
    if not (base / "wnids.txt").exists():
        raise DatasetUnavailableError(_tiny_help(root, None))
    cache_file = base / "xcf-cache.pt"
    if cache and cache_file.exists():
        c = torch.load(cache_file)
        return _from_uint8(key, c["x_train"], c["y_train"], c["x_test"], c["y_test"],
                           c["classes"], n_train, n_test, seed)
    wnids = sorted(w.strip() for w in (base / "wnids.txt").read_text().split() if w.strip())
    index = {w: i for i, w in enumerate(wnids)}
    classes = _tiny_class_names(base, wnids)
    train_files, train_labels = [], []
    for w in wnids:
        files = sorted((base / "train" / w / "images").glob("*.JPEG"))
        train_files += files
        train_labels += [index[w]] * len(files)
    test_files, test_labels = [], []
    for line in (base / "val" / "val_annotations.txt").read_text().splitlines():
        parts = line.split("\t")
        if len(parts) >= 2:
            test_files.append(base / "val" / "images" / parts[0])
            test_labels.append(index[parts[1]])
    gen = torch.Generator().manual_seed(seed)
    i_tr = stratified_indices(torch.tensor(train_labels), n_train, gen)
    i_te = stratified_indices(torch.tensor(test_labels), n_test, gen)
    x_tr = _decode_jpegs([train_files[i] for i in i_tr])
    x_te = _decode_jpegs([test_files[i] for i in i_te])
    y_tr, y_te = torch.tensor(train_labels)[i_tr], torch.tensor(test_labels)[i_te]
    full = n_train is None and n_test is None
    if cache and full:
        _save_atomic({"x_train": x_tr, "y_train": y_tr, "x_test": x_te, "y_test": y_te,
                      "classes": classes}, cache_file)
    # Already subset: hand over everything.
    return _from_uint8(key, x_tr, y_tr, x_te, y_te, classes, None, None, seed)


def _tiny_class_names(base: Path, wnids: list[str]) -> list[str]:
    words = {}
    if (base / "words.txt").exists():
        for line in (base / "words.txt").read_text().splitlines():
            wnid, _, names = line.partition("\t")
            words[wnid.strip()] = names.split(",")[0].strip()
    return [words.get(w) or w for w in wnids]


def _decode_jpegs(files: list[Path], size: int = 64) -> torch.Tensor:
    """JPEGs -> uint8 ``(N, size, size, 3)``; greyscale images become RGB. Threads help
    because PIL releases the GIL while decoding."""
    from PIL import Image

    def one(path: Path) -> np.ndarray:
        with Image.open(path) as im:
            im = im.convert("RGB")
            if im.size != (size, size):
                im = im.resize((size, size), Image.BILINEAR)
            return np.asarray(im, dtype=np.uint8)

    if not files:
        return torch.empty(0, size, size, 3, dtype=torch.uint8)
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        return torch.from_numpy(np.stack(list(pool.map(one, files))))


def _save_atomic(obj: Any, path: Path) -> None:
    tmp = path.with_suffix(".tmp")
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    except OSError:  # read-only data folder: run without a cache
        tmp.unlink(missing_ok=True)


def _tiny_help(root: Path, err: Exception | None) -> str:
    why = f" and could not be downloaded ({err})" if err else ""
    return (f"Tiny-ImageNet is not in {root / 'tiny-imagenet-200'}{why}. On a connected "
            f"machine fetch {TINY_IMAGENET_URL} (md5 {TINY_IMAGENET_MD5}) and unzip it into "
            f"{root} so that {root / 'tiny-imagenet-200' / 'wnids.txt'} exists (or point "
            f"$XCF_DATA / root= at the folder holding tiny-imagenet-200).")


# =========================================================================== batching

def augment(x: torch.Tensor, *, padding: int = 4, flip: bool = True,
            generator: torch.Generator | None = None, mode: str = "reflect") -> torch.Tensor:
    """Random crop after ``padding`` px of ``mode`` padding, plus random horizontal flip,
    for a whole batch ``(B, C, H, W)`` on its own device: the paper's CIFAR augmentation
    (RandomCrop(32, padding=4, padding_mode='reflect') + RandomHorizontalFlip in the
    official code). Each sample gets its own offset in ``[0, 2 * padding]^2`` and flip.

    The batch is padded once and the crops gathered with one index; the random draws use
    ``generator`` (on its device) so results are reproducible. Returns a new tensor.
    """
    if x.dim() != 4:
        raise ValueError(f"augment expects (B, C, H, W), got shape {tuple(x.shape)}")
    b, c, h, w = x.shape
    gdev = generator.device if generator is not None else x.device
    dy = torch.randint(0, 2 * padding + 1, (b,), generator=generator, device=gdev).to(x.device)
    dx = torch.randint(0, 2 * padding + 1, (b,), generator=generator, device=gdev).to(x.device)
    flips = torch.rand(b, generator=generator, device=gdev).to(x.device) < 0.5
    if not flip:
        flips = torch.zeros_like(flips)
    xp = F.pad(x, (padding,) * 4, mode=mode) if padding > 0 else x
    wp = w + 2 * padding
    cols = dx[:, None] + torch.arange(w, device=x.device)                 # (B, W)
    cols = torch.where(flips[:, None], cols.flip(1), cols)                # mirrored crop
    rows = dy[:, None] + torch.arange(h, device=x.device)                 # (B, H)
    flat = (rows[:, :, None] * wp + cols[:, None, :]).view(b, 1, h * w)   # (B, 1, H*W)
    out = xp.reshape(b, c, -1).gather(2, flat.expand(b, c, h * w))
    return out.view(b, c, h, w)


def batches(x: torch.Tensor, y: torch.Tensor, batch_size: int, *, shuffle: bool,
            generator: torch.Generator | None = None
            ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield ``(xb, yb)`` minibatches of in-memory tensors; one pass = one epoch, the last
    partial batch included. With ``shuffle`` the order is a fresh permutation drawn from
    ``generator`` (on its device)."""
    if len(x) != len(y):
        raise ValueError(f"x has {len(x)} samples but y has {len(y)}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    n = len(x)
    if not shuffle:
        for start in range(0, n, batch_size):
            yield x[start:start + batch_size], y[start:start + batch_size]
        return
    gdev = generator.device if generator is not None else "cpu"
    order = torch.randperm(n, generator=generator, device=gdev)
    for start in range(0, n, batch_size):
        idx = order[start:start + batch_size]
        yield x[idx.to(x.device)], y[idx.to(y.device)]
