"""Paper-style figures: correlation matrices (Blues, class indices), difference maps, curves."""
from __future__ import annotations

__all__ = ["correlation_heatmap", "sharing_heatmap", "image_grid", "matrix_grid",
           "accuracy_curves", "cas_and_accuracy"]

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
    if annotate if annotate is not None else K <= 6:
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


def matrix_grid(panels: Sequence[tuple], *, vmin: float = 0.0, vmax: float = 1.0,
                cmap: str = "Blues", size: float = 3.4, ncols: int = 3,
                suptitle: str | None = None, annotate: bool | None = None):
    """Correlation matrices in rows of at most ``ncols``, sharing one colour bar (Figs. 2,
    3, 5-10).  At most three a row and 3.4 inches each, so that the class indices of a
    10 x 10 matrix stay readable when the book scales the figure to its page width.

    ``panels``: ``(C, title)`` pairs.  Returns the figure.
    """
    n = len(panels)
    cols = max(1, min(ncols, n))
    nrows = -(-n // cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(size * cols + 0.9, (size + 0.35) * nrows),
                             squeeze=False, layout="constrained")
    im = None
    for ax, (C, title) in zip(axes.flat, panels):
        im = correlation_heatmap(C, ax, title=title, vmin=vmin, vmax=vmax, cmap=cmap,
                                 annotate=annotate)
    for ax in list(axes.flat)[n:]:
        ax.set_visible(False)
    fig.colorbar(im, ax=axes.ravel().tolist(), shrink=0.8)
    if suptitle:
        fig.suptitle(suptitle, fontsize=10)
    return fig


def accuracy_curves(histories: dict, ax=None, *, title: str | None = None):
    """Train (dashed) and test (solid) robust accuracy per epoch for each labelled run (Fig. 1).

    ``histories``: label -> list of metrics rows (``xcf.runs.folder.Run.metrics()``).
    """
    ax = ax or plt.gca()
    for k, (label, rows) in enumerate(histories.items()):
        ep = [r["epoch"] for r in rows]
        color = f"C{k}"
        ax.plot(ep, [r["test_robust_acc"] for r in rows], color=color, label=f"{label} test")
        ax.plot(ep, [r["train_robust_acc"] for r in rows], color=color, ls="--", label=f"{label} train")
    ax.set_xlabel("epoch")
    ax.set_ylabel("robust accuracy")
    ax.legend(fontsize=7, ncol=2)
    if title:
        ax.set_title(title, fontsize=9)


def cas_and_accuracy(rows: Sequence[dict], ax=None, *, title: str | None = None,
                     best_epoch: int | None = None, band: Sequence[tuple] | None = None):
    """CAS (left axis) and test robust accuracy (right axis) per epoch; the best epoch is
    marked.  ``band``: optional (low, high) per epoch for CAS, drawn as a shaded interval."""
    ax = ax or plt.gca()
    ep = [r["epoch"] for r in rows]
    ax.plot(ep, [r["cas"] for r in rows], color="C0", label="CAS")
    if band is not None:
        ax.fill_between(ep, [b[0] for b in band], [b[1] for b in band], color="C0", alpha=0.2)
    ax.set_xlabel("epoch")
    ax.set_ylabel("CAS", color="C0")
    ax2 = ax.twinx()
    ax2.plot(ep, [r["test_robust_acc"] for r in rows], color="C3", label="test RA")
    ax2.set_ylabel("test robust accuracy", color="C3")
    if best_epoch is not None:
        ax.axvline(best_epoch, color="grey", ls=":", lw=1)
    if title:
        ax.set_title(title, fontsize=9)
    return ax, ax2
