"""CIFAR-10 and CIFAR-100 through torchvision (downloaded where the internet is reachable)."""
from __future__ import annotations

from pathlib import Path

import torch

from xcf.data.dataset import Dataset, DatasetUnavailableError, from_uint8

__all__ = ["NORMALIZATION", "load_cifar"]

# Per-channel statistics used by the official code to normalise inputs inside the model
# (pass them as ``mean``/``std`` to :mod:`xcf.models`).
NORMALIZATION: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2471, 0.2435, 0.2616)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
}


def load_cifar(key: str, root: Path, n_train, n_test, seed, download) -> Dataset:
    from torchvision import datasets  # lazily: torchvision is slow to import

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
            f"(or point $XCF_DATA_DIR / root= at its parent).") from err
    return from_uint8(key, torch.from_numpy(train.data), train.targets,
                       torch.from_numpy(test.data), test.targets, list(train.classes),
                       n_train, n_test, seed)
