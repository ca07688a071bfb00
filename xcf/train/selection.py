"""The one rule that picks a run's best epoch.

Wei, Guo & Wang (ICML 2025, Sec. 3.2) keep the checkpoint with the highest test robust
accuracy; :func:`select_best` applies that rule to any metric of a metrics history.  The
trainer calls it after every epoch to decide whether the epoch is the new best (its model
goes to ``checkpoints/best.pt`` and its number to ``final.json``), and readers take the
result from :attr:`xcf.runs.folder.Run.best_epoch` instead of picking again.
"""
from __future__ import annotations

import math
from typing import Any, Mapping, Optional, Sequence

__all__ = ["select_best"]


def select_best(history: Sequence[Mapping[str, Any]], metric: str = "test_robust_acc") -> Optional[int]:
    """Epoch with the highest ``metric`` (the first one on ties; ``None`` and NaN never
    win).  If no epoch has a number, the first epoch (a run always has a best checkpoint);
    ``None`` for an empty history."""
    best_epoch, best = None, -math.inf
    for row in history:
        value = row.get(metric)
        if value is not None and value > best:  # NaN > x is False
            best_epoch, best = row["epoch"], value
    if best_epoch is None and history:
        return history[0]["epoch"]
    return best_epoch
