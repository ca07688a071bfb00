"""Evaluation of a model during training: test accuracy, C and CAS of one epoch.

One concept: *how an epoch is measured*.  :func:`evaluate` gives test clean and robust
accuracy (PGD-20, :func:`eval_attack`, the official evaluation) and the feature
attribution correlation matrix C with its CAS (Eq. 6-7, Algorithm 1 of Wei, Guo & Wang,
ICML 2025), on adversarial and on clean inputs (Fig. 9), with a bootstrap 95% interval of
CAS over the test samples (``cas_ci95``; not in the paper).  Its attack draws from its own
generator seeded by ``(seed, epoch)`` (:func:`eval_seed`), so the training trajectory does
not depend on evaluation settings and an epoch's numbers can be recomputed exactly.
Under torchrun (``world``) each rank attacks its shard and all get the numbers of the
whole evaluation set (:func:`xcf.train.distributed.measure_sharded`).  Nothing here reads
or writes a run folder: the evaluations of a finished run's checkpoints (the whole test
set, AutoAttack) are in :mod:`xcf.train.final_test`.
"""
from __future__ import annotations

import reprlib

import numpy as np
import torch
import torch.nn as nn

from xcf.attacks import PGD
from xcf.attribution import Measurement, bootstrap_cas, measure
from xcf.inputs import (ArgumentError, ArgumentTypeError, check_count, check_images, check_labels,
                        check_lengths)
from xcf.runs.config import AMP_MODES, TrainConfig
from xcf.train.distributed import SINGLE, World, measure_sharded, rank_seed
from xcf.train.precision import AutocastModel

__all__ = ["BOOTSTRAP_RESAMPLES", "eval_seed", "eval_attack", "evaluate", "evaluate_holdout"]


# Bootstrap resamples of the test samples behind each epoch's 95% interval of CAS.
BOOTSTRAP_RESAMPLES = 200


def eval_seed(seed: int, epoch: int) -> int:
    """Seed of epoch ``epoch``'s evaluation attack: independent of the training stream.
    ``seed`` and ``epoch`` are integers >= 0 (:class:`xcf.inputs.ArgumentError` otherwise)."""
    check_count(seed, "seed", 0, 0)
    check_count(epoch, "epoch", 0, 1)
    return int(np.random.SeedSequence([seed, epoch, 0x5EED]).generate_state(1)[0])


def eval_attack(c: TrainConfig) -> PGD:
    """The test attack: PGD-``eval_steps`` (20) at ``eval_eps``, step eps/4 (l-inf) or
    eps/8 (l2), random start, model in eval mode (the official evaluation)."""
    return PGD(eps=c.eval_eps, steps=c.eval_steps, norm=c.norm)


def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, config: TrainConfig,
             epoch: int, *, amp: str = "none", instance: bool = False, progress: bool = False,
             world: World = SINGLE):
    """Test clean accuracy, test robust accuracy and C/CAS (Algorithm 1) of one epoch.

    One :func:`xcf.attribution.measure` pass on PGD examples gives robust accuracy, C and
    CAS together; a second pass on clean inputs gives clean accuracy and the clean C of
    Fig. 9 (a forward pass only).  Returns ``(numbers, adversarial, clean)`` with the two
    :class:`~xcf.attribution.Measurement` objects.

    ``x``: (N, C, H, W) in [0, 1]; ``y``: (N,) labels of the model's classes; ``config``:
    a :class:`TrainConfig` (a dict is refused, naming :func:`xcf.runs.config.make_config`);
    ``amp``: one of :data:`xcf.runs.config.AMP_MODES`.  Checked before either pass
    (:mod:`xcf.inputs`).

    ``world``: under torchrun (``world.size > 1``) every rank passes all of ``(x, y)`` and
    attacks its shard (:func:`xcf.train.distributed.measure_sharded`); every rank gets the same
    numbers, from all N samples, but the attack's random starts are each rank's own
    (seeded by the rank too).  ``instance`` needs one process; ``progress`` shows no
    bar there.
    """
    _check_eval_inputs(model, x, y, config, epoch, amp)
    if instance and world.size > 1:
        raise ArgumentError(f"instance=True (I-CAS) needs one process, not a world of "
                            f"{world.size} ranks; measure I-CAS in one process, or pass "
                            "instance=False")
    c = config.resolved()
    gen = _attack_generator(x.device, eval_seed(c.seed, epoch), world)
    net = AutocastModel(model, x.device, amp) if amp != "none" else model
    clean = _measure(net, x, y, None, c, world)
    adv = _measure(net, x, y, eval_attack(c), c, world, generator=gen, instance=instance,
                   keep_features=True, progress=progress)
    boot = bootstrap_cas(adv.features, y, model.head.weight.detach(), n_boot=BOOTSTRAP_RESAMPLES,
                         generator=torch.Generator().manual_seed(eval_seed(c.seed, epoch) + 2))
    adv.features = None  # (N, n): not kept past this point
    numbers = {"test_clean_acc": clean.accuracy, "test_robust_acc": adv.accuracy,
               "cas": adv.cas, "cas_clean": clean.cas, "eval_n": int(len(y)),
               "cas_ci95": [float(v) for v in torch.quantile(boot, torch.tensor([0.025, 0.975]))]}
    if instance:
        numbers["i_cas"] = adv.i_cas
    return numbers, adv, clean


def evaluate_holdout(model: nn.Module, x: torch.Tensor, y: torch.Tensor, config: TrainConfig,
                     epoch: int, *, amp: str = "none", world: World = SINGLE) -> dict:
    """Robust accuracy and CAS on held-out *training* samples (``holdout_n``), attacked as
    the test set is: what a label-free selector may look at without touching test data.
    Its attack has its own generator, so adding a holdout leaves the test numbers alone.
    ``world``: as for :func:`evaluate`."""
    _check_eval_inputs(model, x, y, config, epoch, amp)
    c = config.resolved()
    gen = _attack_generator(x.device, eval_seed(c.seed, epoch) + 1, world)
    net = AutocastModel(model, x.device, amp) if amp != "none" else model
    adv = _measure(net, x, y, eval_attack(c), c, world, generator=gen)
    return {"holdout_robust_acc": adv.accuracy, "holdout_cas": adv.cas, "holdout_n": int(len(y))}


def _attack_generator(device: torch.device, seed: int, world: World) -> torch.Generator:
    """The generator of an evaluation attack's random starts: seeded by ``seed`` in one
    process; under torchrun each rank's own, seeded by ``seed`` and the rank
    (:func:`xcf.train.distributed.rank_seed`), so that the ranks' shards draw different starts
    and a rerun under the same world size draws the same."""
    if world.size > 1:
        seed = rank_seed(seed, world.rank)
    return torch.Generator(device=device).manual_seed(seed)


def _measure(net: nn.Module, x: torch.Tensor, y: torch.Tensor, attack, c: TrainConfig,
             world: World, *, generator: torch.Generator | None = None, instance: bool = False,
             keep_features: bool = False, progress: bool = False) -> Measurement:
    """One measurement pass over all of ``(x, y)``: :func:`xcf.attribution.measure` in one
    process, :func:`xcf.train.distributed.measure_sharded` (each rank its shard) under torchrun."""
    if world.size > 1:
        return measure_sharded(net, x, y, attack, world, batch_size=c.eval_batch_size,
                               generator=generator, keep_features=keep_features)
    return measure(net, x, y, attack, batch_size=c.eval_batch_size, generator=generator,
                   instance=instance, keep_features=keep_features, progress=progress)


def _check_eval_inputs(model: nn.Module, x: torch.Tensor, y: torch.Tensor, config, epoch: int,
                       amp: str) -> None:
    """Every check of an evaluation's arguments, before the first forward pass."""
    if not isinstance(config, TrainConfig):  # a dict has no .resolved(): an AttributeError
        raise ArgumentTypeError(f"config {reprlib.repr(config)} is a {type(config).__name__}, "
                                "not a TrainConfig; pass xcf.runs.config.make_config(config) (it "
                                "takes a mapping or a YAML path)")
    if amp not in AMP_MODES:
        raise ArgumentError(f"amp {amp!r} is not one of {', '.join(AMP_MODES)}; pass "
                            "amp='none' (float32), or an autocast mode for speed")
    check_count(epoch, "epoch", 0, 1)
    check_images(x)
    head = getattr(model, "head", None)
    if isinstance(getattr(head, "weight", None), torch.Tensor):
        check_labels(y, head.weight.shape[0])
    check_lengths(x, y)
