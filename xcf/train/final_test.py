"""A run's final.json: what training records once the last epoch is saved.

:func:`finish_run` writes final.json when training ends: the best and last epochs, the
sha256 of best.pt, AutoAttack accuracies if configured (:func:`autoattack_accuracy`), and
the best and the last checkpoint measured once more on the whole test set
(:func:`final_test`; the per-epoch evaluation may use a subset, ``eval_n``), with the same
attack, seeds and numbers as an epoch (:func:`xcf.train.evaluation.evaluate`).
:func:`add_final_test` adds that block to a run finished before it existed.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping, Optional, Sequence

import torch
from tqdm.auto import tqdm

from xcf.attacks import attack_mode
from xcf.data.dataset import stratified_indices
from xcf.inputs import ArgumentError
from xcf.runs.checkpoints import CheckpointError, file_digest, weights_digest
from xcf.runs.config import TrainConfig
from xcf.runs.folder import Run
from xcf.runs.provenance import now
from xcf.train.evaluation import evaluate
from xcf.train.selection import select_best
from xcf.train.setup import Setup, load_data, resolve_device

__all__ = ["FINAL_TEST_NUMBERS", "whole_test_set", "final_test", "add_final_test",
           "autoattack_accuracy", "finish_run"]

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


def finish_run(run: Run, setup: Setup, history: list[dict], log: Callable[[str], None],
               progress: bool = False) -> None:
    """Write final.json of ``run`` once its last epoch is saved: best and last epochs, the
    sha256 of best.pt, the best and last checkpoints on the whole test set (``test``,
    :func:`final_test`; the epoch rows themselves when ``eval_n`` covered it) unless
    ``final_test`` is off, and AutoAttack results if configured.  A ``test`` block of an
    earlier final.json is kept.  ``log`` gets the lines that report the results."""
    c = setup.config
    best_epoch = select_best(history, c.best_metric)
    by_epoch = {r["epoch"]: r for r in history}
    previous = run.final()
    summary = dict(previous, epochs=c.epochs, best_epoch=best_epoch,
                   best_metric=c.best_metric, best=by_epoch.get(best_epoch),
                   last=history[-1] if history else None, finished_at=now())
    best_pt = run.checkpoint_path("best")
    if not previous and best_pt.is_file():
        # The content of best.pt, recorded once, when training ends: a KD student's key
        # includes the weights digest (xcf.runs.identity.teacher_digest); the file digest tells
        # a best.pt replaced by hand.  Neither is added to a final.json of before, so the
        # students of older teachers keep their keys.
        summary["best_sha256"] = file_digest(best_pt)
        summary["best_weights_sha256"] = weights_digest(best_pt)
    if c.final_test and "test" not in summary and history:
        summary["test"] = final_test(run, c, history, best_epoch, setup.device, progress)
    if c.autoattack:
        summary["autoattack"] = {which: autoattack_accuracy(run, which, setup, progress)
                                 for which in ("best", "last")}
        log(f"AutoAttack accuracy: best {summary['autoattack']['best']:.4f}, "
            f"last {summary['autoattack']['last']:.4f}")
    run.write_final(summary)
    log(f"finished {run.path}: best epoch {best_epoch}" + _test_text(summary.get("test")))


def _test_text(block: Optional[Mapping[str, Any]]) -> str:
    """``; whole test set (n 10000, PGD-20 linf eps 0.0313725): best clean/robust
    82.1/52.3% CAS 14.20, last 84.0/44.9% CAS 9.87`` (empty without a block)."""
    if not block:
        return ""

    def part(r: Mapping[str, Any]) -> str:
        return (f"{100 * r['test_clean_acc']:.1f}/{100 * r['test_robust_acc']:.1f}% "
                f"CAS {r['cas']:.2f}")

    b, last = block["best"], block["last"]
    return (f"; whole test set (n {b['n']}, {block['attack']}): best clean/robust {part(b)}, "
            f"last {part(last)}")
