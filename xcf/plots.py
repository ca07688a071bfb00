"""Paper-style figures: correlation matrices (Blues, class indices), difference maps, curves."""
from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch


def _np(a) -> np.ndarray:
    return a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else np.asarray(a)


def correlation_heatmap(C, ax=None, *, title: str | None = None, vmin: float = 0.0,
                        vmax: float = 1.0, cmap: str = "Blues", annotate: bool | None = None,
                        labels: Sequence[str] | None = None):
    """Draw a (K, K) matrix as in Fig. 2 of the paper; returns the image artist."""
    C = _np(C)
    ax = ax or plt.gca()
    im = ax.imshow(C, cmap=cmap, vmin=vmin, vmax=vmax)
    K = C.shape[0]
    ticks = range(K)
    ax.set_xticks(ticks)
    ax.set_yticks(ticks)
    if labels is not None:
        ax.set_xticklabels(labels, rotation=90, fontsize=7)
        ax.set_yticklabels(labels, fontsize=7)
    if annotate if annotate is not None else K <= 10:
        for i in range(K):
            for j in range(K):
                shade = (C[i, j] - vmin) / max(vmax - vmin, 1e-12)
                ax.text(j, i, f"{C[i, j]:.2f}", ha="center", va="center", fontsize=6,
                        color="white" if shade > 0.6 else "black")
    if title:
        ax.set_title(title, fontsize=9)
    return im


def sharing_heatmap(sharing, ax=None, *, title: str = "planted sharing pairs"):
    """The ground-truth (K, K) sharing graph of planted data, as a 0/1 matrix."""
    S = _np(sharing).astype(float)
    ax = ax or plt.gca()
    ax.imshow(S, cmap="Greys", vmin=0, vmax=1.4)
    K = S.shape[0]
    ax.set_xticks(range(K))
    ax.set_yticks(range(K))
    for i in range(K):
        for j in range(K):
            if S[i, j]:
                ax.text(j, i, "shared", ha="center", va="center", fontsize=6, color="white")
    ax.set_title(title, fontsize=9)


def image_grid(x, y, classes: Sequence[str], per_class: int = 4, ax=None):
    """A (per_class x K) grid of example images, one column per class."""
    x, y = _np(x), _np(y)
    K = len(classes)
    rows = []
    for k in range(K):
        idx = np.flatnonzero(y == k)[:per_class]
        rows.append(np.concatenate([x[i].transpose(1, 2, 0) for i in idx], axis=0))
    grid = np.concatenate(rows, axis=1)
    ax = ax or plt.gca()
    ax.imshow(grid.squeeze(), cmap="gray" if grid.shape[-1] == 1 else None, vmin=0, vmax=1)
    h = x.shape[3]
    ax.set_xticks([h * k + h / 2 for k in range(K)])
    ax.set_xticklabels(classes, fontsize=7)
    ax.set_yticks([])
