"""The baseline of the benchmarks: the algorithm of the official implementation.

Wei, Guo & Wang's code (PKU-ML/Cross-Class-Features-AT: ``train.py``, ``utils.py``,
``evaluate_matrix.py``) is followed step by step here, in our own code, so that the
benchmarks time the same work it does:

- data: a ``DataLoader`` (``shuffle=True``, no worker processes, its default) over a
  dataset of uint8 images that applies, per sample on PIL images,
  ``RandomCrop(32, padding=4, padding_mode='reflect')``, ``RandomHorizontalFlip()``,
  ``ToTensor()``;
- the model sees ``normalize(x + delta)`` with CIFAR-10's mean and std applied *outside*
  the model; NCHW, float32;
- training step (:func:`train_step`): ``model.train()``; PGD-10 from a uniform start in
  which every step calls ``loss.backward()`` (so the weight gradients are computed too,
  and the model stays in train mode, batch-norm statistics included); cross-entropy on
  the adversarial batch, ``zero_grad``, ``backward``, ``step``; then one more forward on
  the clean batch, with autograd on, for the logged clean accuracy;
- Algorithm 1 (:func:`attribution`): per class, batches of 100 test samples (a class's
  remainder dropped), PGD-20 with the same attack (weight gradients computed), the
  attribution vectors ``g(x + delta) * W[y]`` from a feature forward, an extra full
  forward for the accuracy, then per-class means and their cosine matrix.

The network is xcf's PreActResNet-18 (identical architecture and initialisation to the
one xcf trains), wrapped so that it has no normalisation inside: :class:`OfficialStyleNet`.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms

CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2471, 0.2435, 0.2616)
_MU = torch.tensor(CIFAR10_MEAN).view(3, 1, 1)
_SIGMA = torch.tensor(CIFAR10_STD).view(3, 1, 1)


def normalize_cifar(x: torch.Tensor) -> torch.Tensor:
    """``(x - mean) / std`` per channel, outside the model, as the official code."""
    return (x - _MU.to(x.device)) / _SIGMA.to(x.device)


# --------------------------------------------------------------------------- data

def synthetic_cifar(n: int, *, num_classes: int = 10, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """CIFAR-shaped stand-in data (CIFAR-10 cannot be downloaded here): ``n`` uint8
    images ``(n, 32, 32, 3)`` (HWC, as torchvision's CIFAR10 stores them) with uniform
    random pixels, and class-balanced int64 labels ``(n,)`` in random order, from ``seed``.
    Timing does not depend on the pixel values."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, 32, 32, 3), dtype=np.uint8)
    labels = rng.permutation(np.arange(n) % num_classes).astype(np.int64)
    return images, labels


def to_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 ``(n, H, W, C)`` -> float32 ``(n, C, H, W)`` in [0, 1] (xcf keeps data so)."""
    return torch.from_numpy(images).permute(0, 3, 1, 2).contiguous().float().div_(255.0)


class PILImages(Dataset):
    """A map-style dataset like torchvision's ``CIFAR10``: each item is turned into a PIL
    image and passed through ``transform``."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, transform) -> None:
        self.images, self.labels, self.transform = images, labels, transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        return self.transform(Image.fromarray(self.images[i])), int(self.labels[i])


def train_loader(images: np.ndarray, labels: np.ndarray, batch_size: int, *,
                 seed: int = 0) -> DataLoader:
    """The official training loader: per-sample PIL augmentation, shuffled batches."""
    transform = transforms.Compose([
        transforms.RandomCrop(32, padding=4, padding_mode="reflect"),
        transforms.RandomHorizontalFlip(),
        transforms.ToTensor(),
    ])
    return DataLoader(PILImages(images, labels, transform), batch_size=batch_size, shuffle=True,
                      generator=torch.Generator().manual_seed(seed))


def endless(loader: DataLoader):
    """Batches of ``loader``, epoch after epoch."""
    while True:
        yield from loader


# --------------------------------------------------------------------------- model

class OfficialStyleNet(nn.Module):
    """An xcf :class:`~xcf.models.FeatureClassifier` without its in-model normalisation:
    ``forward(x) = head(embed(x))`` on inputs already normalised by the caller, and
    ``get_feature(x, i) = embed(x) * W[i]`` (the attribution vectors of the official
    ``get_feature``)."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.head(self.net.embed(x))

    def get_feature(self, x: torch.Tensor, i: int) -> torch.Tensor:
        return self.net.embed(x) * self.net.head.weight[i]


# --------------------------------------------------------------------------- attack

def pgd_delta(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, eps: float, alpha: float,
              steps: int, normalize=normalize_cifar) -> torch.Tensor:
    """l-inf PGD as the official ``Attack.perturb``: uniform start clamped to the image
    box, then ``steps`` sign steps, each from ``loss.backward()`` on the mean
    cross-entropy, so every parameter's ``.grad`` is computed (and accumulated) as well.
    Returns ``delta`` (detached), with ``x + delta`` in the eps-ball and in [0, 1]."""
    delta = torch.zeros_like(x).uniform_(-eps, eps)
    delta = torch.clamp(delta, 0 - x, 1 - x)
    delta.requires_grad = True
    for _ in range(steps):
        loss = F.cross_entropy(model(normalize(x + delta)), y)
        loss.backward()
        d = torch.clamp(delta + alpha * torch.sign(delta.grad.detach()), min=-eps, max=eps).detach()
        d = torch.clamp(d, 0 - x, 1 - x)
        delta.data = d
        delta.grad.zero_()
    return delta.detach()


# --------------------------------------------------------------------------- training step

def train_step(model: nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor, *,
               eps: float = 8 / 255, alpha: float = 2 / 255, steps: int = 10,
               normalize=normalize_cifar) -> dict:
    """One iteration of the official training loop (``mode == 'AT'``) on a batch ``x``
    ``(B, 3, 32, 32)`` in [0, 1] with labels ``y`` ``(B,)``.  Returns the loss and the
    robust and clean correct counts it logs."""
    model.train()
    delta = pgd_delta(model, x, y, eps=eps, alpha=alpha, steps=steps, normalize=normalize)
    output = model(normalize(x + delta))
    loss = F.cross_entropy(output, y)
    opt.zero_grad()
    loss.backward()
    opt.step()
    robust = (output.max(1)[1] == y).float().sum().item()
    clean_output = model(normalize(x))  # train mode, autograd on, as the official loop
    clean = (clean_output.max(1)[1] == y).float().sum().item()
    model.eval()
    return {"loss": loss.item(), "robust_correct": robust, "clean_correct": clean}


# --------------------------------------------------------------------------- Algorithm 1

def attribution(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, num_classes: int,
                eps: float = 8 / 255, steps: int = 20, batch: int = 100,
                normalize=normalize_cifar) -> tuple[torch.Tensor, float]:
    """Algorithm 1 as the official ``evaluate_matrix.py``: for each class, batches of
    ``batch`` of its test samples (the remainder dropped), PGD-``steps`` with step eps/4,
    the model in eval mode.  Returns the ``(K, K)`` cosine matrix of the per-class mean
    attribution vectors and the robust accuracy."""
    model.eval()
    alpha = eps / 4
    per_class, correct, count = [], 0.0, 0
    for i in range(num_classes):
        xi, yi = x[y == i], y[y == i]
        feats = []
        for k in range(len(xi) // batch):
            xb, yb = xi[batch * k:batch * (k + 1)].clone(), yi[batch * k:batch * (k + 1)]
            delta = pgd_delta(model, xb, yb, eps=eps, alpha=alpha, steps=steps, normalize=normalize)
            feats.append(model.get_feature(normalize(xb + delta), i).detach())
            correct += (model(normalize(xb + delta)).max(1)[1] == yb).float().sum().item()
            count += len(yb)
        per_class.append(torch.cat(feats).cpu())
    unit = [f.mean(0) / torch.norm(f.mean(0), p=2) for f in per_class]
    C = torch.zeros(num_classes, num_classes)
    for i in range(num_classes):
        for j in range(num_classes):
            C[i, j] = (unit[i] * unit[j]).sum()
    return C, correct / max(count, 1)
