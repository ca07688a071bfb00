"""Batching and on-device augmentation of in-memory tensors.

Training code iterates with :func:`batches` and augments with :func:`augment` (random crop
with 4 px reflect padding + horizontal flip, the paper's CIFAR augmentation, Appendix B /
official code) on the device, a whole batch at a time.
"""
from __future__ import annotations

from typing import Iterator

import torch
import torch.nn.functional as F

from ..inputs import check_batch_size, check_lengths

__all__ = ["augment", "batches"]


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
    check_lengths(x, y)
    check_batch_size(batch_size)
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
