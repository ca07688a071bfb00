"""Diagnostics of single runs that the claims and the settings search read: robust
overfitting (:func:`overfitting`, and :func:`decay_drop` after the first lr decay, the
paper's shape), catastrophic overfitting (:func:`collapse_epoch`), and two measures
beyond the paper: :func:`label_free_selection` (choose the epoch by CAS on held-out
*training* samples) and :func:`planted_concentration` (where, on planted data with a
known sharing graph, the CAS drop happens).  Pure arithmetic over a run's metrics.
"""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from xcf.companion import readings

__all__ = ["OVERFIT_DROP", "OVERFIT_WINDOW", "COLLAPSE_FRACTION", "DECAY_DROP", "overfitting",
           "decay_drop", "collapse_epoch", "label_free_selection", "planted_concentration",
           "sharing_matrix", "wall_minutes"]

OVERFIT_DROP = 0.03      # a run robust-overfits if test RA falls >= 3 points after its peak
OVERFIT_WINDOW = 5       # ... judged on 5-epoch trailing means of test and train RA
COLLAPSE_FRACTION = 0.25  # catastrophic overfitting: test RA at most 1/4 of its peak
DECAY_DROP = 0.05        # the paper's shape: test RA falls >= 5 points after the first decay


def _smooth(values, window: int) -> np.ndarray:
    a = np.asarray(values, dtype=float)
    w = max(1, min(window, len(a)))
    return np.convolve(a, np.ones(w) / w, mode="valid")  # trailing means


def overfitting(run, window: int = OVERFIT_WINDOW) -> dict:
    """Robust overfitting of one run, judged on ``window``-epoch trailing means so that a
    single lucky evaluation (500 test images: about 2 points of standard error) neither
    makes nor hides it: the peak of the smoothed test RA, its value over the last
    ``window`` epochs, the drop, and whether the smoothed train robust accuracy kept
    rising.  The raw peak (the test-RA-selected best epoch) is reported beside it."""
    rows = run.metrics()
    w = max(1, min(window, len(rows)))
    train_key = "train_robust_acc" if rows[-1].get("train_robust_acc") is not None else "train_clean_acc"
    test = np.array([r["test_robust_acc"] for r in rows], dtype=float)
    train = np.array([r[train_key] for r in rows], dtype=float)
    s_test, s_train = _smooth(test, w), _smooth(train, w)
    peak = int(np.argmax(s_test))  # first maximum
    best = int(np.argmax(test))
    drop = float(s_test[peak] - s_test[-1])
    rising = bool(s_train[-1] > s_train[peak])
    return {"window": w, "peak_epoch": rows[peak + w - 1]["epoch"], "epochs": rows[-1]["epoch"],
            "ra_peak": float(s_test[peak]), "ra_last": float(s_test[-1]), "ra_drop": drop,
            "train_ra_at_peak": float(s_train[peak]), "train_ra_last": float(s_train[-1]),
            "raw_best_epoch": rows[best]["epoch"], "raw_ra_best": float(test[best]),
            "raw_ra_last": float(test[-1]), "overfits": bool(drop >= OVERFIT_DROP and rising)}


def decay_drop(run, window: int = OVERFIT_WINDOW) -> dict:
    """Robust overfitting in the paper's shape (Rice et al. 2020; the paper's best epoch
    108 of 200 comes just after the decay at 100): the peak of the ``window``-epoch
    trailing mean of test RA at or after the first lr decay, the mean over the last
    ``window`` epochs, and the drop between them.  ``after_decay``: the peak of the whole
    run is after the decay too (not in the first lr phase).  ``shape``: the drop is at
    least :data:`DECAY_DROP` and the peak is after the decay."""
    rows = run.metrics()
    lrs = [r["lr"] for r in rows]
    first = next((i for i in range(1, len(lrs)) if lrs[i] < lrs[i - 1]), None)
    test = [r["test_robust_acc"] for r in rows]
    w = max(1, min(window, len(rows)))
    s = _smooth(test, w)
    if first is None:
        return {"decay_epoch": None, "peak_epoch": None, "ra_peak": None,
                "ra_last": float(s[-1]), "drop": None, "after_decay": False, "shape": False}
    # trailing mean index j covers epochs j .. j + w - 1; windows that end at or after
    # the first decayed epoch
    start = max(0, first - w + 1)
    j = start + int(np.argmax(s[start:]))
    peak_all = int(np.argmax(s))
    drop = float(s[j] - s[-1])
    after = bool(peak_all + w - 1 >= first)
    return {"decay_epoch": rows[first]["epoch"], "peak_epoch": rows[j + w - 1]["epoch"],
            "ra_peak": float(s[j]), "ra_last": float(s[-1]), "drop": drop,
            "after_decay": after, "shape": bool(drop >= DECAY_DROP and after)}


def collapse_epoch(run, fraction: float = COLLAPSE_FRACTION) -> Optional[int]:
    """First epoch after the best whose test robust accuracy is at most ``fraction`` of
    the best (catastrophic overfitting, Section 5.2); ``None`` if it never collapses."""
    rows = run.metrics()
    best = max(rows, key=lambda r: r["test_robust_acc"])
    for r in rows:
        if r["epoch"] > best["epoch"] and r["test_robust_acc"] <= fraction * best["test_robust_acc"]:
            return int(r["epoch"])
    return None


def label_free_selection(run) -> dict:
    """Beyond the paper: pick the epoch with the highest CAS on held-out *training*
    samples (no test labels) and compare its test RA with the test-RA-selected best; the
    held-out robust accuracy (a plain validation split) is shown as the usual alternative."""
    rows = run.metrics()
    if "holdout_cas" not in rows[0]:
        raise ValueError(f"{run.path.name} has no held-out measurements; train it with holdout_n")
    pick = lambda key: max(rows, key=lambda r: r[key])  # noqa: E731  first maximum
    test, by_cas, by_val = pick("test_robust_acc"), pick("holdout_cas"), pick("holdout_robust_acc")
    return {"test_best_epoch": test["epoch"], "test_best_ra": test["test_robust_acc"],
            "cas_epoch": by_cas["epoch"], "cas_ra": by_cas["test_robust_acc"],
            "cas_regret": test["test_robust_acc"] - by_cas["test_robust_acc"],
            "holdout_ra_epoch": by_val["epoch"], "holdout_ra_ra": by_val["test_robust_acc"],
            "holdout_ra_regret": test["test_robust_acc"] - by_val["test_robust_acc"],
            "last_ra": rows[-1]["test_robust_acc"],
            "last_regret": test["test_robust_acc"] - rows[-1]["test_robust_acc"]}


def planted_concentration(run, sharing: np.ndarray) -> dict:
    """Beyond the paper: on planted data, the change of C from the best to the last epoch
    on the planted sharing pairs and on all other pairs, and the share of the CAS drop
    (positive parts, Eq. 7) that the sharing pairs carry."""
    best, last = readings.checkpoint(run, "best"), readings.checkpoint(run, "last")
    share = np.asarray(sharing, dtype=bool)
    other = ~share & ~np.eye(len(share), dtype=bool)
    pos_drop = np.clip(best.C, 0, None) - np.clip(last.C, 0, None)
    total = float(pos_drop[share | other].sum())
    return {"best_epoch": best.epoch, "last_epoch": last.epoch, "cas_best": best.cas,
            "cas_last": last.cas, "C_share_best": readings.pair_mean(best.C, share),
            "C_share_last": readings.pair_mean(last.C, share),
            "C_other_best": readings.pair_mean(best.C, other),
            "C_other_last": readings.pair_mean(last.C, other),
            "drop_share_of_cas_drop": float(pos_drop[share].sum()) / total if total else float("nan"),
            "share_fraction_of_pairs": float(share.sum() / (share | other).sum())}


def sharing_matrix(num_classes: int, pairs: Sequence[Sequence[int]]) -> np.ndarray:
    """The (K, K) boolean ground truth of planted sharing ``pairs`` (symmetric, no diagonal)."""
    S = np.zeros((num_classes, num_classes), dtype=bool)
    for i, j in pairs:
        S[i, j] = S[j, i] = True
    return S


def wall_minutes(run) -> float:
    """Minutes the run spent training and evaluating, summed over its epochs' ``seconds``
    (resumed sessions included; start-up and data loading not)."""
    return sum(sum(r.get("seconds", {}).values()) for r in run.metrics()) / 60
