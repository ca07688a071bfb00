"""A finished run's checkpoints evaluated once more: the whole test set and AutoAttack.

:func:`final_test` measures the best and the last checkpoint of a run folder when
training ends, on the whole test set (the per-epoch evaluation may use a subset,
``eval_n``), with the same attack, seeds and numbers as an epoch
(:func:`xcf.train.evaluation.evaluate`); :func:`add_final_test` adds that block to the
final.json of a run finished before it existed.  :func:`autoattack_accuracy` adds the
final AutoAttack evaluation.
"""
from __future__ import annotations

import dataclasses
from typing import Mapping, Sequence

import torch
from tqdm.auto import tqdm

from xcf.attacks import attack_mode
from xcf.data.dataset import stratified_indices
from xcf.inputs import ArgumentError
from xcf.runs.checkpoints import CheckpointError
from xcf.runs.config import TrainConfig
from xcf.runs.folder import Run
from xcf.train.evaluation import evaluate
from xcf.train.setup import Setup, load_data, resolve_device

__all__ = ["FINAL_TEST_NUMBERS", "whole_test_set", "final_test", "add_final_test",
           "autoattack_accuracy"]

# The numbers of an epoch row that the final whole-test-set evaluation records per checkpoint.
FINAL_TEST_NUMBERS = ("test_clean_acc", "test_robust_acc", "cas", "cas_clean", "cas_ci95")


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
    the clean CAS, as :func:`~xcf.train.evaluation.evaluate` gives them for an epoch, with
    the same attack seed as that epoch (:func:`~xcf.train.evaluation.eval_seed`): the
    numbers are deterministic.

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
