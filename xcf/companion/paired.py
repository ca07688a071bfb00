"""Paired statistics over seeds: the test every rule of :mod:`xcf.companion.claims` decides with.

A claim such as "CAS is higher at the best checkpoint than at the last one" is a
statement about a *difference within a run*.  Over seeds, the rule book tests the mean
of those per-seed differences: a Student t interval (95%, ``n - 1`` degrees of freedom)
around the mean, and an exact two-sided sign test beside it, which assumes nothing about
the shape of the differences.  A verdict then reads off the interval:

- *holds*: the interval lies above 0 (the claimed direction, beyond seed-to-seed noise);
- *does not hold*: it lies below 0 (significantly the opposite);
- *inconclusive*: it contains 0, or fewer than :data:`MIN_SEEDS` seeds were tested.

Counting seeds that agree is reported too, but never decides alone.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
from scipy import stats

__all__ = ["MIN_SEEDS", "LEVEL", "Paired", "paired", "verdict_of", "partial_spearman"]

MIN_SEEDS = 3   # fewer seeds give no useful t interval (2 seeds: t(0.975, 1) = 12.7)
LEVEL = 0.95


@dataclass(frozen=True)
class Paired:
    """Per-seed differences ``diffs`` (claimed direction positive) and their summary:
    mean, the t interval ``(low, high)`` at :data:`LEVEL` (``None`` below two seeds),
    how many differences are positive, and the exact two-sided sign-test p-value."""

    diffs: tuple[float, ...]
    mean: float
    ci: Optional[tuple[float, float]]
    positive: int
    sign_p: float

    @property
    def n(self) -> int:
        return len(self.diffs)

    def text(self, digits: int = 2, scale: float = 1.0, unit: str = "") -> str:
        """``mean [low, high]`` with the count, e.g. ``+1.52 [0.31, 2.73] (5/5 > 0)``."""
        if not self.diffs:
            return "no seed tested"
        f = lambda v: f"{scale * v:+.{digits}f}{unit}"  # noqa: E731
        interval = f" [{f(self.ci[0])}, {f(self.ci[1])}]" if self.ci else ""
        return f"{f(self.mean)}{interval} ({self.positive}/{self.n} > 0)"


def paired(diffs: Sequence[float], level: float = LEVEL) -> Paired:
    """Summary of per-seed paired differences (see the module docstring).

    >>> p = paired([1.0, 2.0, 3.0])
    >>> round(p.mean, 3), [round(v, 3) for v in p.ci], p.positive
    (2.0, [-0.484, 4.484], 3)
    """
    d = tuple(float(v) for v in diffs)
    if any(not math.isfinite(v) for v in d):
        raise ValueError(f"paired differences must be finite numbers, got {list(d)}")
    n = len(d)
    if n == 0:
        return Paired(d, float("nan"), None, 0, 1.0)
    mean = sum(d) / n
    ci = None
    if n >= 2:
        sd = math.sqrt(sum((v - mean) ** 2 for v in d) / (n - 1))
        half = stats.t.ppf(0.5 + level / 2, n - 1) * sd / math.sqrt(n)
        ci = (float(mean - half), float(mean + half))
    positive = sum(v > 0 for v in d)
    nonzero = sum(v != 0 for v in d)
    sign_p = (float(stats.binomtest(positive, nonzero, 0.5).pvalue) if nonzero else 1.0)
    return Paired(d, mean, ci, positive, sign_p)


def verdict_of(p: Paired, min_seeds: int = MIN_SEEDS) -> str:
    """*not tested* (no seed met the premise), *inconclusive* (fewer than ``min_seeds``,
    or an interval that contains 0), *holds* (interval above 0) or *does not hold*
    (interval below 0)."""
    if p.n == 0:
        return "not tested"
    if p.n < min_seeds or p.ci is None:
        return "inconclusive"
    low, high = p.ci
    return "holds" if low > 0 else "does not hold" if high < 0 else "inconclusive"


def partial_spearman(x: Sequence[float], y: Sequence[float], z: Sequence[float]
                     ) -> tuple[float, float]:
    """Spearman's partial correlation of ``x`` and ``y`` with ``z`` held fixed (ranks of
    x and y residualised on the rank of z), and its two-sided p-value (t with n - 3
    degrees of freedom)."""
    rx, ry, rz = (stats.rankdata(v) for v in (x, y, z))
    if np.ptp(rz) == 0:  # z constant: nothing to hold fixed, the plain rank correlation
        res = lambda v: v - v.mean()  # noqa: E731
    else:
        res = lambda v: v - np.polyval(np.polyfit(rz, v, 1), rz)  # noqa: E731
    r = float(np.corrcoef(res(rx), res(ry))[0, 1])
    n = len(x)
    t = r * np.sqrt(max(n - 3, 1) / max(1e-12, 1 - r * r))
    return r, float(2 * stats.t.sf(abs(t), max(n - 3, 1)))
