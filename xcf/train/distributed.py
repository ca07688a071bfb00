"""One run trained by several processes: torch.distributed and DistributedDataParallel.

``torchrun --nproc_per_node N -m xcf train CONFIG`` (or ``xcf train CONFIG --ddp N``)
starts N processes, the *ranks*; :func:`xcf.train.runner.train` calls :func:`join`, which
reads torchrun's environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``,
``MASTER_PORT``) and initialises the process group: nccl on GPUs (rank r on
``cuda:LOCAL_RANK``), gloo on the CPU.  Outside torchrun it returns :data:`SINGLE` and
nothing here runs.

How the work is split, so that N ranks train as one process does (Wei, Guo & Wang, ICML
2025 train with one global batch of 128 at lr 0.1, Table 2; neither changes):

- **data**: rank r holds the training samples ``r, r + N, r + 2N, ...`` (:func:`shard`:
  disjoint, together all of them).  Every rank draws the same permutation of the whole
  set, so the global batches are those of one process; each rank trains the members of
  a batch it holds (:func:`xcf.data.batching.shard_batches`), about ``batch_size / N``;
- **gradient**: DistributedDataParallel averages the ranks' gradients; each rank's loss
  is scaled by ``N * n_r / n`` (``n_r`` of the batch's ``n`` samples are its own), so the
  average is the gradient of the global batch's mean loss, as in one process, also when
  the shares differ (:func:`loss_share`);
- **evaluation**: each rank attacks its shard of the evaluation set; the features are
  gathered in the original order (:func:`gather_rows`) and the correct counts summed
  (:func:`all_reduce_sum`), and C and CAS (Algorithm 1) are computed from all of them
  (:func:`measure_sharded`), the bootstrap interval of CAS too
  (:func:`xcf.train.evaluation.evaluate` with ``world``);
- **files**: only rank 0 holds the run's lock and writes the run folder; the training
  state it saves is the unwrapped model's, so a run resumes under any number of ranks.

Random numbers: the shuffle and the augmentation come from one generator that every
rank advances alike (the training state keeps it); the attacks' random starts come from
a generator of each rank and epoch (:func:`rank_seed`).  So a model without batch norm
(deit_tiny) trained without random starts (``standard``) gets the weights of one process
up to the order of floating-point sums, whatever the number of ranks.  Adversarial
objectives draw other random starts than one process: a run is repeatable for a given
number of ranks, and differs from one process in those draws only.  Batch norm
normalises each rank's share of a batch by its own statistics (DDP's rule, not
SyncBatchNorm), so models with batch norm (small_cnn, preact_resnet18) train close to,
not exactly as, one process.
"""
from __future__ import annotations

import datetime
import os
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np
import torch
import torch.distributed as dist
import torch.nn as nn

from xcf.attacks import Attack
from xcf.attribution import Measurement, attack_and_embed, check_measure_inputs, summarise

__all__ = ["TIMEOUT", "World", "SINGLE", "RankZeroFailed", "torchrun_world_size", "join",
           "leave", "shard", "loss_share", "rank_seed", "broadcast", "all_reduce_sum",
           "gather_rows", "wrap", "Replica", "measure_sharded"]

# How long a rank waits in a collective (a gradient all-reduce, rank 0's decision) before
# the job fails; rank 0 saving a checkpoint or waiting for the run's lock must fit in it.
TIMEOUT = datetime.timedelta(minutes=30)


@dataclass(frozen=True)
class World:
    """Where this process stands: ``rank`` of ``size`` processes (``local_rank`` on its
    node), and the device it trains on (``None``: the config's, one process)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    device: Optional[str] = None

    @property
    def is_main(self) -> bool:
        """Rank 0: the one that holds the lock, writes the run folder and logs."""
        return self.rank == 0


SINGLE = World()


class RankZeroFailed(RuntimeError):
    """Raised on the other ranks when rank 0 stopped before training (the run locked, a
    broken run folder); rank 0 raises and reports the error itself."""


def torchrun_world_size(environ: Optional[dict] = None) -> int:
    """``WORLD_SIZE`` as torchrun sets it (1 without torchrun); a value that is not a
    positive integer is a ``ValueError`` naming it."""
    text = (os.environ if environ is None else environ).get("WORLD_SIZE", "1")
    try:
        size = int(text)
    except ValueError:
        size = 0
    if size < 1:
        raise ValueError(f"WORLD_SIZE={text!r} is not a positive integer; start several "
                         "processes with torchrun --nproc_per_node N (which sets it), or "
                         "unset it for one process")
    return size


def join(device: str = "auto") -> World:
    """This process's :class:`World`: :data:`SINGLE` outside torchrun; under torchrun the
    process group, initialised once (nccl with CUDA, gloo on the CPU; :data:`TIMEOUT`).

    ``device`` is the config's: ``cpu`` trains every rank on the CPU; ``auto``, ``cuda``
    or ``cuda:N`` train rank r on ``cuda:LOCAL_RANK`` (one GPU per rank; torchrun's
    ``--nproc_per_node`` should not exceed the GPUs).  ``mps`` cannot be shared."""
    if not dist.is_initialized() and torchrun_world_size() == 1:
        return SINGLE
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        for name in ("RANK", "MASTER_ADDR", "MASTER_PORT"):
            if name not in os.environ:
                raise ValueError(f"WORLD_SIZE is set but {name} is not: start the processes "
                                 "with torchrun --nproc_per_node N -m xcf train CONFIG (or "
                                 "xcf train CONFIG --ddp N), which sets them")
        cuda = _wants_cuda(device)
        if cuda and local >= torch.cuda.device_count():
            raise ValueError(f"LOCAL_RANK {local} needs GPU {local}, but only "
                             f"{torch.cuda.device_count()} are visible: start at most that "
                             "many processes per node (--nproc_per_node), one per GPU")
        if cuda:
            torch.cuda.set_device(local)
        dist.init_process_group("nccl" if cuda else "gloo", timeout=TIMEOUT)
    cuda = dist.get_backend() == "nccl"
    return World(rank=dist.get_rank(), size=dist.get_world_size(), local_rank=local,
                 device=f"cuda:{local}" if cuda else "cpu")


def _wants_cuda(device: str) -> bool:
    if device == "cpu":
        return False
    if device.startswith("mps"):
        raise ValueError(f"device {device!r} cannot be shared by several processes; train "
                         "with DDP on cuda or cpu, or start one process (no torchrun)")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested under torchrun, but CUDA is not "
                         "available; set device: cpu to train the ranks on the CPU (gloo)")
    return torch.cuda.is_available()


def leave() -> None:
    """Destroy the process group, if one was initialised (at the end of ``xcf train``)."""
    if dist.is_initialized():
        dist.destroy_process_group()


def shard(t: torch.Tensor, world: World) -> torch.Tensor:
    """Rows ``rank, rank + size, ...`` of ``t`` (a copy, so the whole tensor can be freed);
    :func:`gather_rows` is the inverse."""
    return t[world.rank::world.size].clone()


def loss_share(world: World, n_local: int, n_batch: int) -> float:
    """The factor of a rank's mean loss over its ``n_local`` of a batch's ``n_batch``
    samples: DDP averages gradients over ``size`` ranks, so ``size * n_local / n_batch``
    makes the average the gradient of the whole batch's mean loss."""
    return world.size * n_local / n_batch


def rank_seed(seed: int, *stream: int) -> int:
    """A seed for each rank (and epoch), independent of ``seed``'s own stream, e.g. the
    random starts of rank r's attacks in epoch e: ``rank_seed(seed, e, r)``."""
    return int(np.random.SeedSequence([int(seed), *map(int, stream), 0xD15]).generate_state(1)[0])


def broadcast(obj: Any, world: World) -> Any:
    """Rank 0's ``obj`` on every rank (pickled; ``obj`` itself with one process)."""
    if world.size == 1:
        return obj
    box = [obj if world.is_main else None]
    dist.broadcast_object_list(box, src=0, device=_comm_device(world))
    return box[0]


def all_reduce_sum(t: torch.Tensor, world: World) -> torch.Tensor:
    """The sum of ``t`` over the ranks, on every rank (``t`` itself with one process)."""
    if world.size == 1:
        return t
    out = t.to(_comm_device(world), copy=True)
    dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out.to(t.device)


def gather_rows(local: torch.Tensor, n: int, world: World) -> torch.Tensor:
    """Every rank's :func:`shard` of an ``(n, ...)`` tensor put back together, in the
    original row order, on every rank: ``gather_rows(shard(t), len(t)) == t``."""
    if world.size == 1:
        return local
    rows = -(-n // world.size)  # the largest shard; the others are padded to it
    device = _comm_device(world)
    padded = torch.zeros((rows, *local.shape[1:]), dtype=local.dtype, device=device)
    padded[:len(local)] = local.to(device)
    parts = [torch.empty_like(padded) for _ in range(world.size)]
    dist.all_gather(parts, padded)
    out = torch.empty((n, *local.shape[1:]), dtype=local.dtype, device=device)
    for r, part in enumerate(parts):
        out[r::world.size] = part[:len(range(r, n, world.size))]
    return out.to(local.device)


def _comm_device(world: World) -> torch.device:
    return torch.device(world.device if world.device and world.device.startswith("cuda")
                        else "cpu")


def wrap(model: nn.Module, world: World) -> nn.Module:
    """``model`` in DistributedDataParallel (its weights broadcast from rank 0), or
    ``model`` itself with one process.  The training loss's forward goes through the
    wrapper (its backward averages the gradients); attacks use ``model`` itself, whose
    input gradients must not be averaged."""
    if world.size == 1:
        return model
    ids = [world.local_rank] if _comm_device(world).type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=ids)


@dataclass
class Replica:
    """What :func:`xcf.train.loop.train_epoch` needs to train one rank's share: its world,
    the wrapped model (:func:`wrap`), the number of samples of the whole training set
    (the rank holds its :func:`shard`), and the rank's generator for random starts."""

    world: World
    module: nn.Module
    n_total: int
    generator: torch.Generator


def measure_sharded(model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                    attack: Optional[Attack], world: World, *, batch_size: int = 500,
                    generator: Optional[torch.Generator] = None,
                    keep_features: bool = False) -> Measurement:
    """:func:`xcf.attribution.measure` of all of ``(x, y)``, the work split across ranks:
    each attacks and embeds its :func:`shard`, the features ``(N, n)`` are gathered in
    the original order and the correct counts summed, then C (Eq. 6), CAS (Eq. 7) and the
    accuracy are computed from all N samples as ``measure`` does, on every rank.  Same
    result as ``measure`` given the same adversarial examples; the random starts differ
    (``generator`` is the rank's).  ``x``: (N, C, H, W) in [0, 1]; ``y``: (N,)."""
    W, counts = check_measure_inputs(model, x, y, batch_size=batch_size)
    xs, ys = shard(x, world), shard(y, world)
    local, correct = attack_and_embed(model, xs, ys, attack, batch_size=batch_size,
                                      generator=generator)
    features = gather_rows(local, len(x), world)
    correct = int(all_reduce_sum(torch.tensor([correct], dtype=torch.int64), world))
    return summarise(features, y, W, counts, correct, keep_features=keep_features)
