"""Tiny fake datasets in each dataset's real on-disk format, for the loaders to parse:

- CIFAR-10 / CIFAR-100: torchvision's python pickles (``cifar-10-batches-py/data_batch_1``
  .. ``_5``, ``test_batch``, ``batches.meta``; ``cifar-100-python/train``, ``test``,
  ``meta``), rows of 3072 bytes (the R, G, B planes of a 32x32 image, row-major);
- Tiny-ImageNet: the official ``tiny-imagenet-200.zip``, built as a zip and unpacked with
  torchvision's ``extract_archive`` (what the download path does): ``wnids.txt``,
  ``words.txt``, ``train/<wnid>/images/*.JPEG`` with ``<wnid>_boxes.txt``,
  ``val/images/*.JPEG`` with ``val/val_annotations.txt``, and ``test/images``.

Every class gets ``per_class`` images in each split, so class-balanced subsets of any size
up to that work.  torchvision checks the CIFAR files against the md5 sums of the real
ones; :func:`skip_cifar_md5` turns that check off (the parsing stays torchvision's).
"""
from __future__ import annotations

import io
import pickle
import zipfile
from pathlib import Path

import numpy as np

__all__ = ["write_cifar10", "write_cifar100", "write_tiny_imagenet", "skip_cifar_md5"]


def _rows(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)


def _dump(path: Path, obj: dict) -> None:
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=2)  # the real files are Python 2 pickles


def write_cifar10(root: Path, per_class: int = 1, seed: int = 0) -> Path:
    """``root/cifar-10-batches-py``: five training batches and a test batch, each with
    ``per_class`` images of every one of the 10 classes."""
    rng = np.random.default_rng(seed)
    folder = Path(root) / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for name in names:
        labels = [k for k in range(10) for _ in range(per_class)]
        _dump(folder / name, {"batch_label": name, "labels": labels,
                              "data": _rows(rng, len(labels)),
                              "filenames": [f"{name}_{i}.png" for i in range(len(labels))]})
    _dump(folder / "batches.meta", {"label_names": [f"class{k}" for k in range(10)],
                                    "num_cases_per_batch": 10 * per_class, "num_vis": 3072})
    return folder


def write_cifar100(root: Path, per_class: int = 1, seed: int = 0) -> Path:
    """``root/cifar-100-python``: ``train`` and ``test`` with ``per_class`` images of each
    of the 100 fine classes, and ``meta``."""
    rng = np.random.default_rng(seed)
    folder = Path(root) / "cifar-100-python"
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("train", "test"):
        fine = [k for k in range(100) for _ in range(per_class)]
        _dump(folder / name, {"batch_label": name, "fine_labels": fine,
                              "coarse_labels": [k // 5 for k in fine],
                              "data": _rows(rng, len(fine)),
                              "filenames": [f"{name}_{i}.png" for i in range(len(fine))]})
    _dump(folder / "meta", {"fine_label_names": [f"fine{k}" for k in range(100)],
                            "coarse_label_names": [f"coarse{k}" for k in range(20)]})
    return folder


def write_tiny_imagenet(root: Path, per_class: int = 1, classes: int = 200,
                        seed: int = 0) -> Path:
    """``root/tiny-imagenet-200`` unpacked from a fake ``tiny-imagenet-200.zip`` with
    ``classes`` wnids and ``per_class`` 64x64 JPEGs of each in train and in val."""
    from PIL import Image
    from torchvision.datasets.utils import extract_archive

    rng = np.random.default_rng(seed)
    wnids = [f"n{10000000 + 7 * k:08d}" for k in range(classes)]

    def jpeg() -> bytes:
        buf = io.BytesIO()
        Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(buf, "JPEG")
        return buf.getvalue()

    archive = Path(root) / "tiny-imagenet-200.zip"
    archive.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("tiny-imagenet-200/wnids.txt", "\n".join(wnids) + "\n")
        z.writestr("tiny-imagenet-200/words.txt",
                   "".join(f"{w}\tthing {k}, other name\n" for k, w in enumerate(wnids)))
        val = []
        for k, w in enumerate(wnids):
            boxes = []
            for i in range(per_class):
                name = f"{w}_{i}.JPEG"
                z.writestr(f"tiny-imagenet-200/train/{w}/images/{name}", jpeg())
                boxes.append(f"{name}\t0\t0\t63\t63")
                val.append((f"val_{k * per_class + i}.JPEG", w))
            z.writestr(f"tiny-imagenet-200/train/{w}/{w}_boxes.txt", "\n".join(boxes) + "\n")
        for name, w in val:
            z.writestr(f"tiny-imagenet-200/val/images/{name}", jpeg())
        z.writestr("tiny-imagenet-200/val/val_annotations.txt",
                   "".join(f"{name}\t{w}\t0\t0\t63\t63\n" for name, w in val))
        z.writestr("tiny-imagenet-200/test/images/test_0.JPEG", jpeg())
    extract_archive(str(archive), str(root))
    archive.unlink()
    return Path(root) / "tiny-imagenet-200"


def skip_cifar_md5(monkeypatch) -> None:
    """torchvision compares the CIFAR files with the md5 sums of the real archives, which
    hand-written files cannot match: accept them (everything else stays torchvision's)."""
    import torchvision.datasets.cifar as tvc

    monkeypatch.setattr(tvc, "check_integrity", lambda *a, **k: True)
