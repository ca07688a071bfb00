"""Tiny-ImageNet: the official ``tiny-imagenet-200`` archive (64x64x3, 200 classes)."""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

from xcf import atomic
from xcf.inputs import check_flag
from xcf.data.dataset import Dataset, DatasetUnavailableError, from_uint8, stratified_indices

__all__ = ["TINY_IMAGENET_URL", "TINY_IMAGENET_MD5", "load_tiny_imagenet"]

TINY_IMAGENET_URL = "http://cs231n.stanford.edu/tiny-imagenet-200.zip"
TINY_IMAGENET_MD5 = "90528d7ca1a48142e341f4ef8d21d0de"


def load_tiny_imagenet(key: str, root: Path, n_train, n_test, seed, download, *,
                        cache: bool = True) -> Dataset:
    """The official archive layout under ``root/tiny-imagenet-200``: ``wnids.txt``,
    ``words.txt``, ``train/<wnid>/images/*.JPEG``, ``val/images/*.JPEG`` with labels in
    ``val/val_annotations.txt`` (the val split is the test set; the official test split has
    no labels). Classes are the sorted wnids, named by the first synonym in ``words.txt``.

    Decoding 110k JPEGs takes a while, so a full load is cached as uint8 tensors in
    ``tiny-imagenet-200/xcf-cache.pt`` (``cache=False`` to skip); a subset decodes only the
    images it picks."""
    check_flag(cache, "cache")
    base = root / "tiny-imagenet-200"
    if not (base / "wnids.txt").exists() and download:
        try:
            from torchvision.datasets.utils import download_and_extract_archive  # lazily: slow import
            download_and_extract_archive(TINY_IMAGENET_URL, str(root), md5=TINY_IMAGENET_MD5)
        except Exception as err:  # no internet
            raise DatasetUnavailableError(_tiny_help(root, err)) from err
    if not (base / "wnids.txt").exists():
        raise DatasetUnavailableError(_tiny_help(root, None))
    cache_file = base / "xcf-cache.pt"
    c = _load_cache(cache_file) if cache else None
    if c is not None:
        return from_uint8(key, c["x_train"], c["y_train"], c["x_test"], c["y_test"],
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
        _save_cache({"x_train": x_tr, "y_train": y_tr, "x_test": x_te, "y_test": y_te,
                      "classes": classes}, cache_file)
    # Already subset: hand over everything.
    return from_uint8(key, x_tr, y_tr, x_te, y_te, classes, None, None, seed)


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
    from PIL import Image  # lazily: only the first, uncached load decodes JPEGs

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


_CACHE_KEYS = ("x_train", "y_train", "x_test", "y_test", "classes")


def _load_cache(path: Path) -> dict | None:
    """The decoded dataset cached in ``path``, or ``None`` when there is none or it is
    unusable (then the JPEGs are decoded again and the cache rewritten).  Loaded with
    ``weights_only=True``: tensors, lists and strings only, no code runs while loading."""
    if not path.is_file():
        return None
    try:
        c = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # torn, foreign, or holding objects weights_only refuses
        return None
    if not isinstance(c, dict) or any(k not in c for k in _CACHE_KEYS):
        return None
    return c


def _save_cache(obj: dict, path: Path) -> None:
    try:
        atomic.torch_save(obj, path)
    except OSError:  # read-only data folder: run without a cache
        pass


def _tiny_help(root: Path, err: Exception | None) -> str:
    why = f" and could not be downloaded ({err})" if err else ""
    return (f"Tiny-ImageNet is not in {root / 'tiny-imagenet-200'}{why}. On a connected "
            f"machine fetch {TINY_IMAGENET_URL} (md5 {TINY_IMAGENET_MD5}) and unzip it into "
            f"{root} so that {root / 'tiny-imagenet-200' / 'wnids.txt'} exists (or point "
            f"$XCF_DATA_DIR / root= at the folder holding tiny-imagenet-200).")
