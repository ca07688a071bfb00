"""Evaluation of a model during and after training: test accuracy, C and CAS.

One concept: *how an epoch is measured*.  :func:`evaluate` gives test clean and robust
accuracy (PGD-20, :func:`eval_attack`, the official evaluation) and the feature
attribution correlation matrix C with its CAS (Eq. 6-7, Algorithm 1 of Wei, Guo & Wang,
ICML 2025), on adversarial and on clean inputs (Fig. 9), with a bootstrap 95% interval of
CAS over the test samples (``cas_ci95``; not in the paper).  Its attack draws from its own
generator seeded by ``(seed, epoch)`` (:func:`eval_seed`), so the training trajectory does
not depend on evaluation settings and an epoch's numbers can be recomputed exactly.
Under torchrun (``world``) each rank attacks its shard and all get the numbers of the
whole evaluation set (:func:`xcf.train.distributed.measure_sharded`).
:func:`final_test` measures the best and the last checkpoint once more when training ends,
on the whole test set (the per-epoch evaluation may use a subset, ``eval_n``), with the
same attack, seeds and numbers as an epoch; :func:`add_final_test` adds that block to a run
finished before it existed.  :func:`autoattack_accuracy` adds the final AutoAttack
evaluation.
"""
from __future__ import annotations

import dataclasses
import reprlib
from typing import Mapping, Sequence

import numpy as np
import torch
import torch.nn as nn
from tqdm.auto import tqdm

from xcf.attacks import PGD, attack_mode
from xcf.attribution import Measurement, bootstrap_cas, measure
from xcf.runs.checkpoints import CheckpointError
from xcf.runs.config import AMP_MODES, TrainConfig
from xcf.data.dataset import stratified_indices
from xcf.train.distributed import SINGLE, World, measure_sharded, rank_seed
from xcf.inputs import (ArgumentError, ArgumentTypeError, check_count, check_images, check_labels,
                     check_lengths)
from xcf.train.precision import AutocastModel
from xcf.train.setup import Setup, load_data, resolve_device
from xcf.runs.folder import Run

__all__ = ["BOOTSTRAP_RESAMPLES", "FINAL_TEST_NUMBERS", "eval_seed", "eval_attack", "evaluate",
           "evaluate_holdout", "whole_test_set", "final_test", "add_final_test",
           "autoattack_accuracy"]


# Bootstrap resamples of the test samples behind each epoch's 95% interval of CAS.
BOOTSTRAP_RESAMPLES = 200
# The numbers of an epoch row that the final whole-test-set evaluation records per checkpoint.
FINAL_TEST_NUMBERS = ("test_clean_acc", "test_robust_acc", "cas", "cas_clean", "cas_ci95")


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


def whole_test_set(config: TrainConfig) -> bool:
    """Whether the per-epoch evaluation of ``config`` already uses every test sample
    (``eval_n`` unset, or at least ``n_test``), known without loading the data."""
    c = config
    return c.eval_n is None or (c.n_test is not None and c.eval_n >= c.n_test)


def final_test(run: Run, config: TrainConfig, history: Sequence[Mapping], best_epoch: int,
               device: torch.device | str = "cpu", progress: bool = False) -> dict:
    """The best and the last checkpoint of ``run`` on the whole test set (all ``n_test``
    samples): clean and robust accuracy (PGD-``eval_steps`` at ``eval_eps``), CAS of
    Algorithm 1 (Wei, Guo & Wang, ICML 2025, Eq. 7) with its bootstrap 95% interval and
    the clean CAS, as :func:`evaluate` gives them for an epoch, with the same attack seed
    as that epoch (:func:`eval_seed`): the numbers are deterministic.

    Returns ``{"source", "attack", "best": {"epoch", "n", ...}, "last": {...}}`` with the
    numbers of :data:`FINAL_TEST_NUMBERS` per checkpoint.  ``source`` is ``"epoch rows"``
    when the per-epoch evaluation already used the whole test set (its rows of those
    epochs in ``history`` are copied; nothing is measured) and ``"recomputed"`` otherwise
    (the checkpoints ``best.pt`` and ``last.pt`` are loaded and attacked on ``device``).
    """
    c = config.resolved()
    rows = {int(r["epoch"]): r for r in history}
    epochs = {"best": int(best_epoch), "last": int(history[-1]["epoch"])}
    missing = [e for e in epochs.values() if e not in rows]
    if missing:
        raise ArgumentError(f"history has no row of epoch(s) {missing}; it holds epochs "
                            f"{sorted(rows)}: pass the run's whole metrics history")
    attack = f"PGD-{c.eval_steps} {c.norm} eps {c.eval_eps:.6g}"
    if whole_test_set(c):
        return _from_rows(rows, epochs, attack)
    _, x, y = load_data(dataclasses.replace(c, eval_n=None))  # the run's test set, in order
    if len(y) <= c.eval_n:  # eval_n >= the dataset's test set: the epochs saw all of it
        return _from_rows(rows, epochs, attack)
    device = torch.device(device)
    x, y = x.to(device), y.to(device)
    block: dict = {"source": "recomputed", "attack": attack}
    for which, epoch in epochs.items():
        if which == "last" and epoch == epochs["best"]:  # the same weights and seed
            block["last"] = dict(block["best"])
            continue
        model = _checkpoint_model(run, which, device, c.channels_last)
        numbers, _, _ = evaluate(model, x, y, c, epoch, amp=c.amp, progress=progress)
        block[which] = {"epoch": epoch, "n": numbers["eval_n"],
                        **{k: numbers[k] for k in FINAL_TEST_NUMBERS}}
    return block


def _from_rows(rows: Mapping[int, Mapping], epochs: Mapping[str, int], attack: str) -> dict:
    block: dict = {"source": "epoch rows", "attack": attack}
    for which, epoch in epochs.items():
        r = rows[epoch]
        block[which] = {"epoch": epoch, "n": r.get("eval_n"),
                        **{k: r[k] for k in FINAL_TEST_NUMBERS if k in r}}
    return block


def _checkpoint_model(run: Run, which: str, device: torch.device, channels_last: bool):
    try:
        model = run.load_model(which, device=device)
    except CheckpointError as err:
        raise CheckpointError(f"{err}: the whole-test-set evaluation needs the run's "
                              "checkpoints (committed results leave them out)") from err
    # The layout the run was evaluated in every epoch (a speed choice, same numbers up to
    # floating-point rounding).
    return model.to(memory_format=torch.channels_last) if channels_last else model


def add_final_test(run: Run, device: str = "auto", progress: bool = False) -> dict:
    """Add the whole-test-set block (:func:`final_test`) to the final.json of a run that
    finished without one (before the block existed, or with ``final_test: false``), and
    return it; a block already there is returned as it is, with nothing measured.

    Where the per-epoch evaluation used a subset this loads the run's data and attacks
    its best.pt and last.pt: on CPU, seconds for 1,000 test images of a small CNN; for
    CIFAR-10's 10,000 with PreActResNet-18 about 0.9 PFLOP, minutes on a GPU.  Raises
    :class:`~xcf.runs.checkpoints.CheckpointError` for a folder without checkpoints (committed
    results) and ``ValueError`` for a run that has not finished."""
    final = run.final()
    if not final:
        raise ValueError(f"{run.path} has not finished training (no final.json); train it "
                         "first: its final.json then gets the block when training ends")
    if "test" in final:
        return final["test"]
    config = TrainConfig.from_dict(run.config)
    block = final_test(run, config, run.metrics(), run.best_epoch, resolve_device(device),
                       progress)
    with run.lock():
        run.write_final({**run.final(), "test": block})
    return block


def autoattack_accuracy(run: Run, which: str, setup: Setup, progress: bool = False) -> float:
    """Robust accuracy under AutoAttack (standard version, torchattacks) of a checkpoint of
    ``run`` on ``autoattack_n`` test samples (default: the evaluation set); ``which``:
    ``"best"``, ``"last"`` or an epoch number."""
    if which not in ("best", "last") and not (isinstance(which, int) and which >= 1):
        raise ArgumentError(f"which {which!r} is not 'best', 'last' or an epoch number >= 1")
    import torchattacks  # lazily: optional, slow to import, and only needed here

    c = setup.config
    x, y = setup.x_eval, setup.y_eval
    if c.autoattack_n is not None and c.autoattack_n < len(y):
        idx = stratified_indices(y.cpu(), c.autoattack_n, torch.Generator().manual_seed(c.data_seed))
        x, y = x[idx.to(x.device)], y[idx.to(y.device)]
    model = run.load_model(which, device=setup.device)
    attack = torchattacks.AutoAttack(model, norm="Linf" if c.norm == "linf" else "L2",
                                     eps=c.eval_eps, version="standard",
                                     n_classes=len(setup.classes), seed=c.seed)
    correct = 0
    with attack_mode(model, "eval"):
        for start in tqdm(range(0, len(y), c.eval_batch_size), disable=not progress,
                          desc=f"AutoAttack {which}", leave=False):
            xb, yb = x[start:start + c.eval_batch_size], y[start:start + c.eval_batch_size]
            x_adv = attack(xb, yb)
            with torch.no_grad():
                correct += int((model(x_adv).argmax(1) == yb).sum())
    return correct / len(y)
