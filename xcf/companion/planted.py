"""Planted data (notebook 02): does the matrix C of Algorithm 1 find the class pairs that
share a planted part?

The planted dataset (:mod:`xcf.data`) comes with its ground truth, ``sharing`` (a K x K
boolean matrix: classes i and j share a part).  :func:`sharing_pairs` compares C on those
pairs with C on all the others and ranks every pair by C; :func:`c_beside_sharing` draws
C beside the ground truth.
"""
from __future__ import annotations

from typing import Any, Callable

import matplotlib.pyplot as plt
import torch

from xcf import plots

__all__ = ["sharing_pairs", "c_beside_sharing"]


def sharing_pairs(C: torch.Tensor, sharing: torch.Tensor,
                  say: Callable[[str], Any] = print) -> dict:
    """C's off-diagonal entries on the planted sharing pairs against those on every other
    pair, and whether ranking the pairs (i < j) by C puts exactly the sharing pairs
    first.  Says both (through ``say``) and returns ``mean_c_shared``, ``mean_c_other``,
    ``min_c_shared``, ``max_c_other`` and ``top_pairs_are_shared``."""
    C, sharing = torch.as_tensor(C), torch.as_tensor(sharing, dtype=torch.bool)
    K = C.shape[0]
    off = ~torch.eye(K, dtype=torch.bool)
    shared, other = C[sharing], C[off & ~sharing]
    iu = torch.triu_indices(K, K, offset=1)
    order = C[iu[0], iu[1]].argsort(descending=True)
    n_shared = int(sharing[iu[0], iu[1]].sum())
    top = order[:n_shared]
    out = dict(mean_c_shared=float(shared.mean()), mean_c_other=float(other.mean()),
               min_c_shared=float(shared.min()), max_c_other=float(other.max()),
               top_pairs_are_shared=bool(sharing[iu[0][top], iu[1][top]].all()))
    say(f"mean C on sharing pairs {out['mean_c_shared']:.3f} | on other pairs "
        f"{out['mean_c_other']:.3f} | min sharing {out['min_c_shared']:.3f} vs max other "
        f"{out['max_c_other']:.3f}")
    say(f"the {n_shared} highest-ranked pairs are exactly the planted ones: "
        f"{out['top_pairs_are_shared']}")
    return out


def c_beside_sharing(m: Any, sharing: torch.Tensor, profile: str):
    """C of a measurement ``m`` (:func:`xcf.attribution.measure`, on adversarial test
    examples) on [0, 1], titled with its robust accuracy and CAS, beside the planted
    sharing graph; returns the figure."""
    fig, axes = plt.subplots(1, 2, figsize=(9, 4.2))
    plots.correlation_heatmap(m.C, axes[0], vmin=0, vmax=1, title=(
        f"C on adversarial test examples\nRA {m.accuracy:.1%}, CAS {m.cas:.2f}"
        f" ({profile} profile)"))
    plots.sharing_heatmap(sharing, axes[1])
    fig.tight_layout()
    return fig
