"""What one run says about the paper's claims, read from its metrics history.

The rule book (:mod:`xcf.companion.claims`) decides over seeds; this module reads each run once,
with the two choices that make a reading fair:

- **Selection apart from reporting.**  The paper (and the official code) picks the best
  checkpoint by *test* robust accuracy and then reports that checkpoint's test numbers:
  the argmax of ~100 noisy evaluations (500 images: ~2 points of standard error) is
  biased upward, and so is everything read at it.  :func:`reading` picks the best epoch
  on the held-out *training* images every run evaluates (``holdout_robust_acc``, never
  used to train or to select otherwise) and reports test RA and CAS there; the
  test-selected reading is kept as a second, labelled row (``select="test"``).
- **The paper's positions, scaled.**  The under-fitted checkpoints are the paper's
  epochs scaled to the run's length (:func:`paper_epoch`): Table 1's epoch 10 of 200
  and Fig. 2's epoch 70 of 200 (5 and 35 of a 100-epoch run), one definition for every
  page.

Pure arithmetic over ``run.metrics()``; nothing here trains.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Optional, Sequence

import numpy as np

from xcf.companion import diagnostics, paired, paper
from xcf.train.selection import select_best

__all__ = ["SELECTIONS", "MIN_AFTER_BEST", "paper_epoch", "Reading", "reading",
           "beyond_intervals", "tracking_after_best", "eps_points", "second_half_trend"]

SELECTIONS = ("holdout", "test")
MIN_AFTER_BEST = 10  # epochs after the best that the specificity control needs


def paper_epoch(paper_epoch_of_200: int, epochs: int) -> int:
    """The paper's epoch ``paper_epoch_of_200`` (of its 200) scaled to a run of ``epochs``
    epochs, at least 1: Table 1's 10 -> 5 of 100, Fig. 2's 70 -> 35 of 100."""
    return max(1, round(paper_epoch_of_200 / paper.EPOCHS * epochs))


@dataclass(frozen=True)
class Reading:
    """One run read for the rules: the selected best epoch (``selected_by``: ``holdout``
    or ``test``), the rows at the best, the last and the under-fitted epochs
    (``early``: Table 1's position; ``fig2``: Fig. 2's), and robust overfitting by
    :func:`xcf.companion.diagnostics.overfitting` (``overfits``, ``ra_drop``: smoothed, so that
    neither the selection nor one lucky evaluation makes it)."""

    selected_by: str
    best: Mapping
    last: Mapping
    early: Mapping
    fig2: Mapping
    overfits: bool
    ra_drop: float
    rows: Sequence[Mapping]

    @property
    def cas_gap(self) -> float:
        return float(self.best["cas"] - self.last["cas"])

    @property
    def ra_gap(self) -> float:
        return float(self.best["test_robust_acc"] - self.last["test_robust_acc"])

    @property
    def cas_peak_epoch(self) -> int:
        return int(max(self.rows, key=lambda r: r["cas"])["epoch"])


def _row(rows: Sequence[Mapping], epoch: int) -> Mapping:
    return next(r for r in rows if r["epoch"] == min(epoch, rows[-1]["epoch"]))


def reading(run, select: str = "holdout") -> Reading:
    """Read ``run`` (see the module docstring).  ``select``: ``holdout`` (the best epoch by
    held-out robust accuracy; a run without held-out rows is read by test RA and says
    so in ``selected_by``) or ``test`` (the paper's rule)."""
    if select not in SELECTIONS:
        raise ValueError(f"select={select!r}: use one of {', '.join(SELECTIONS)}")
    rows = run.metrics()
    if not rows:
        raise ValueError(f"{run.path} has no finished epoch to read")
    by = select if select == "test" or rows[0].get("holdout_robust_acc") is not None else "test"
    epoch = select_best(rows, "holdout_robust_acc" if by == "holdout" else "test_robust_acc")
    n = rows[-1]["epoch"]
    over = diagnostics.overfitting(run)
    return Reading(by, _row(rows, epoch), rows[-1], _row(rows, paper_epoch(paper.TABLE1_EARLY_EPOCH, n)),
                   _row(rows, paper_epoch(paper.UNDERFITTED_EPOCH, n)), over["overfits"],
                   over["ra_drop"], rows)


def beyond_intervals(high: Mapping, low: Mapping) -> bool:
    """CAS at ``high`` exceeds CAS at ``low`` beyond both bootstrap 95% intervals
    (``cas_ci95``); a point comparison where a row has no interval."""
    a, b = high.get("cas_ci95"), low.get("cas_ci95")
    if a and b:
        return float(a[0]) > float(b[1])
    return float(high["cas"]) > float(low["cas"])


def tracking_after_best(r: Reading, min_epochs: int = MIN_AFTER_BEST) -> Optional[float]:
    """The control for C1's fall: after the best epoch, does CAS follow test RA *beyond*
    their common trend in time?  Spearman's partial correlation of CAS and test RA with
    the epoch held fixed (ranks residualised on the epoch's rank), over the epochs after
    the best.  ``None`` with fewer than ``min_epochs`` such epochs or a constant series.

    Both fall over time when a run robust-overfits, so their plain correlation would
    follow from time alone; a fall of CAS that belongs to robust overfitting should also
    follow RA's epoch-to-epoch moves around that trend."""
    after = [x for x in r.rows if x["epoch"] > r.best["epoch"]]
    if len(after) < min_epochs:
        return None
    cas, ra = ([x[k] for x in after] for k in ("cas", "test_robust_acc"))
    if np.ptp(cas) == 0 or np.ptp(ra) == 0:
        return None
    rho, _ = paired.partial_spearman(cas, ra, [x["epoch"] for x in after])
    return rho if np.isfinite(rho) else None


def eps_points(eps_runs: Sequence[tuple[float, int, Any]]) -> list[dict]:
    """C3's points: each ``(ε, seed, run)`` read (:func:`reading`) into its ε, seed, CAS and
    RA gaps, best epoch, CAS at the best, and CAS at the under-fitted epoch of Table 1."""
    pts = []
    for eps, seed, run in eps_runs:
        r = reading(run)
        pts.append({"eps": float(eps), "seed": seed, "cas_gap": r.cas_gap, "ra_gap": r.ra_gap,
                    "best_epoch": int(r.best["epoch"]), "cas_early": float(r.early["cas"]),
                    "early_epoch": int(r.early["epoch"]), "cas_best": float(r.best["cas"]),
                    "run": run})
    return pts


def second_half_trend(run) -> tuple[float, float]:
    """C5's flatness: ``(change, mean)`` of clean CAS over the second half of the epochs,
    the change by its linear trend (slope times the half's span; 0 with one epoch)."""
    rows = run.metrics()
    half = rows[len(rows) // 2:]
    e = np.array([r["epoch"] for r in half], dtype=float)
    v = np.array([r["cas_clean"] for r in half], dtype=float)
    if len(half) < 2:
        return 0.0, float(v.mean())
    slope = np.polyfit(e, v, 1)[0]
    return float(slope * (e[-1] - e[0])), float(v.mean())
