"""Batching and on-device augmentation of in-memory tensors.

Training code iterates with :func:`batches` and augments with :func:`augment` (random crop
with 4 px reflect padding + horizontal flip, the paper's CIFAR augmentation, Appendix B /
official code) on the device, a whole batch at a time.  A rank of a distributed run
(:mod:`xcf.train.distributed`) iterates with :func:`shard_batches`: its own members of the same
global batches, augmented with the draws one process would make for them.
"""
from __future__ import annotations

from typing import Iterator

import torch
import torch.nn.functional as F

from xcf.inputs import check_batch_size, check_lengths

__all__ = ["augment", "batches", "shard_batches"]


def augment(x: torch.Tensor, *, padding: int = 4, flip: bool = True,
            generator: torch.Generator | None = None, mode: str = "reflect",
            rows: torch.Tensor | None = None, of_batch: int | None = None) -> torch.Tensor:
    """Random crop after ``padding`` px of ``mode`` padding, plus random horizontal flip,
    for a whole batch ``(B, C, H, W)`` on its own device: the paper's CIFAR augmentation
    (RandomCrop(32, padding=4, padding_mode='reflect') + RandomHorizontalFlip in the
    official code). Each sample gets its own offset in ``[0, 2 * padding]^2`` and flip.

    The batch is padded once and the crops gathered with one index; the random draws use
    ``generator`` (on its device) so results are reproducible. Returns a new tensor.
    ``rows`` (B,) and ``of_batch``: ``x`` holds the rows ``rows`` of a batch of
    ``of_batch`` samples (a rank's share, :func:`shard_batches`); the draws are made for
    the whole batch, as one process makes them, and those rows' used.
    """
    if x.dim() != 4:
        raise ValueError(f"augment expects (B, C, H, W), got shape {tuple(x.shape)}")
    if (rows is None) != (of_batch is None):
        raise ValueError("augment needs rows and of_batch together (a share of a batch), "
                         "or neither (a whole batch)")
    b, c, h, w = x.shape
    n = b if of_batch is None else of_batch
    gdev = generator.device if generator is not None else x.device
    dy = torch.randint(0, 2 * padding + 1, (n,), generator=generator, device=gdev).to(x.device)
    dx = torch.randint(0, 2 * padding + 1, (n,), generator=generator, device=gdev).to(x.device)
    flips = torch.rand(n, generator=generator, device=gdev).to(x.device) < 0.5
    if rows is not None:
        keep = rows.to(x.device)
        dy, dx, flips = dy[keep], dx[keep], flips[keep]
    if not flip:
        flips = torch.zeros_like(flips)
    xp = F.pad(x, (padding,) * 4, mode=mode) if padding > 0 else x
    wp = w + 2 * padding
    cols = dx[:, None] + torch.arange(w, device=x.device)                 # (B, W)
    cols = torch.where(flips[:, None], cols.flip(1), cols)                # mirrored crop
    rows = dy[:, None] + torch.arange(h, device=x.device)                 # (B, H)
    flat = (rows[:, :, None] * wp + cols[:, None, :]).view(b, 1, h * w)   # (B, 1, H*W)
    out = xp.reshape(b, c, xp.shape[2] * wp).gather(2, flat.expand(b, c, h * w))  # b may be 0
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


def shard_batches(x: torch.Tensor, y: torch.Tensor, batch_size: int, *, rank: int,
                  world_size: int, n_total: int, generator: torch.Generator | None = None
                  ) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]]:
    """One rank's share of each global batch of ``batches(shuffle=True)`` over the whole
    training set of ``n_total`` samples, of which this rank holds samples ``rank,
    rank + world_size, ...`` as ``x`` and ``y`` (:func:`xcf.train.distributed.shard`).

    Every rank draws the same permutation from ``generator`` as one process does, so the
    global batches are one process's; yields ``(xb, yb, rows, n)``: the members of the
    batch this rank holds (possibly none), their positions ``rows`` in the batch, and
    the batch's size ``n`` (``batch_size``, or less for the last one)."""
    check_lengths(x, y)
    check_batch_size(batch_size)
    if not 0 <= rank < world_size or len(x) != len(range(rank, n_total, world_size)):
        raise ValueError(f"rank {rank} of {world_size} holds {len(x)} samples, but its shard "
                         f"of {n_total} has {len(range(rank, n_total, world_size))}; pass "
                         "x[rank::world_size] of the whole training set")
    gdev = generator.device if generator is not None else "cpu"
    order = torch.randperm(n_total, generator=generator, device=gdev)
    for start in range(0, n_total, batch_size):
        idx = order[start:start + batch_size]
        mine = idx % world_size == rank
        local = (idx[mine] // world_size).to(x.device)
        yield x[local], y[local.to(y.device)], mine.nonzero().flatten(), len(idx)
