"""The paper's figures, each drawn from run folders by one function.

The section notebooks call these for the runs they train, and notebook 10 calls them again
for every profile whose results exist.  Every title names the profile, so a figure from a
reduced run says so.  Colour scales follow the paper: [0, 1] for matrices (Figs. 2, 3, 6,
7, 10), [-0.75, 0.75] for Fig. 5, [0, 0.5] for Fig. 9 and for the differences of Fig. 4.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np

from . import plots, studies


def _tag(profile: str) -> str:
    return f" [{profile} profile]"


def fig1_accuracy_curves(runs_by_eps: Mapping[str, object], profile: str):
    """Fig. 1: train and test robust accuracy per epoch, one colour per ε."""
    fig, ax = plt.subplots(figsize=(7, 4))
    plots.accuracy_curves({f"ε={k}": r.metrics() for k, r in runs_by_eps.items()}, ax,
                          title="Fig. 1: robust accuracy of PGD-AT" + _tag(profile))
    return fig


def fig2_three_stages(run, profile: str):
    """Fig. 2: C at an under-fitted epoch, at the best and at the last checkpoint."""
    cps = [studies.checkpoint(run, studies.underfitted_epoch(run), "under-fitted"),
           studies.checkpoint(run, "best", "best"), studies.checkpoint(run, "last", "last")]
    return plots.matrix_row([(c.C, c.title()) for c in cps], suptitle="Fig. 2: PGD-AT" + _tag(profile))


def best_last(run, name: str, profile: str, *, vmin: float = 0.0, vmax: float = 1.0):
    """Best and last checkpoint side by side (Figs. 3a/b, 5, 6)."""
    cps = [studies.checkpoint(run, "best", "best"), studies.checkpoint(run, "last", "last")]
    return plots.matrix_row([(c.C, c.title()) for c in cps], vmin=vmin, vmax=vmax,
                            suptitle=name + _tag(profile))


def fig4_differences(runs_by_eps: Mapping[str, object], profile: str):
    """Fig. 4: C_best - C_last per ε, with the CAS of both checkpoints."""
    panels = []
    for label, run in runs_by_eps.items():
        b, l = studies.checkpoint(run, "best"), studies.checkpoint(run, "last")
        panels.append((b.C - l.C, f"ε={label}: CAS {b.cas:.2f} → {l.cas:.2f}\n(epochs {b.epoch} → {l.epoch})"))
    return plots.matrix_row(panels, vmin=0.0, vmax=0.5,
                            suptitle="Fig. 4: C_best − C_last" + _tag(profile))


def fig7_fast_at(run, early_epoch: int, profile: str):
    """Fig. 7: fast AT at an early epoch, at its best, and at the end (after catastrophic
    overfitting, where it happened)."""
    saved = [e for e in studies.saved_matrix_epochs(run) if e <= run.best_epoch] or [run.best_epoch]
    # The nearest epoch whose matrix was kept (runs keep every 10th after 50 epochs).
    early = min(saved, key=lambda e: abs(e - min(early_epoch, run.best_epoch)))
    cps = [studies.checkpoint(run, early, "early"), studies.checkpoint(run, "best", "best"),
           studies.checkpoint(run, "last", "last")]
    return plots.matrix_row([(c.C, c.title()) for c in cps], suptitle="Fig. 7: fast AT" + _tag(profile))


def fig9_standard(run, n: int, profile: str):
    """Fig. 9: standard training, C on clean examples at ``n`` spread epochs, scale [0, 0.5]."""
    epochs = studies.spread_epochs(studies.saved_matrix_epochs(run, clean=True), n)
    cps = [studies.checkpoint(run, e, f"epoch {e}", clean=True) for e in epochs]
    return plots.matrix_row([(c.C, f"epoch {c.epoch}: clean acc {c.clean_acc:.1%}\nCAS (clean) {c.cas:.2f}")
                             for c in cps], vmin=0.0, vmax=0.5,
                            suptitle="Fig. 9: standard training, clean examples" + _tag(profile))


def fig10_epochs(run, n: int, profile: str):
    """Fig. 10: C at ``n`` epochs spread over training."""
    epochs = studies.spread_epochs(studies.saved_matrix_epochs(run), n)
    cps = [studies.checkpoint(run, e, f"epoch {e}") for e in epochs]
    return plots.matrix_row([(c.C, c.title()) for c in cps], size=2.6,
                            suptitle="Fig. 10: C during PGD-AT" + _tag(profile))


def instance_pair(measurements: Sequence[tuple], profile: str):
    """Fig. 8: instance-wise matrices; ``measurements``: (title, Measurement with C_instance)."""
    return plots.matrix_row([(m.C_instance, f"{t}\nRA {m.accuracy:.1%}, I-CAS {m.i_cas:.2f}")
                             for t, m in measurements],
                            suptitle="Fig. 8: instance-wise matrices" + _tag(profile))


def saliency_grid(images, maps_best, maps_last, labels: Sequence[str], profile: str):
    """Figs. 3c and 11: images, then Grad-CAM on the best and on the last checkpoint's
    adversarial examples."""
    from .saliency import overlay

    n = len(images)
    fig, axes = plt.subplots(3, max(n, 1), figsize=(1.8 * max(n, 1), 5.6), squeeze=False)
    for k in range(n):
        img = images[k]
        axes[0, k].imshow(np.squeeze(img.cpu().numpy().transpose(1, 2, 0)),
                          cmap="gray" if img.shape[0] == 1 else None, vmin=0, vmax=1)
        axes[0, k].set_title(labels[k], fontsize=7)
        axes[1, k].imshow(overlay(img, maps_best[k]))
        axes[2, k].imshow(overlay(img, maps_last[k]))
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0, 0].set_ylabel("image", fontsize=8)
    axes[1, 0].set_ylabel("best", fontsize=8)
    axes[2, 0].set_ylabel("last", fontsize=8)
    fig.suptitle("Figs. 3c / 11: Grad-CAM, best right and last wrong under attack" + _tag(profile), fontsize=9)
    return fig


def cas_intervals(runs_by_label: Mapping[str, object], profile: str):
    """Beyond the paper: CAS per epoch with its bootstrap 95% interval over test samples
    (shaded), CAS on held-out training images (dashed) and test robust accuracy (right
    axis); dotted: the test-RA-selected best epoch, dash-dotted: the epoch CAS on held-out
    training images selects."""
    n = len(runs_by_label)
    fig, axes = plt.subplots(1, n, figsize=(4.6 * n, 3.6), squeeze=False)
    for ax, (label, run) in zip(axes[0], runs_by_label.items()):
        rows = run.metrics()
        band = [tuple(r["cas_ci95"]) for r in rows] if all("cas_ci95" in r for r in rows) else None
        plots.cas_and_accuracy(rows, ax, title=label, best_epoch=run.best_epoch, band=band)
        if all("holdout_cas" in r for r in rows):
            ep = [r["epoch"] for r in rows]
            ax.plot(ep, [r["holdout_cas"] for r in rows], color="C0", ls="--", lw=0.8)
            pick = max(rows, key=lambda r: r["holdout_cas"])["epoch"]
            ax.axvline(pick, color="C2", ls="-.", lw=1)
    fig.suptitle("CAS with bootstrap 95% intervals; dashed: held-out training images" + _tag(profile),
                 fontsize=9)
    fig.tight_layout()
    return fig


def planted_drop(run, sharing, profile: str):
    """Beyond the paper: on planted data, C at the best and last epochs and their
    difference, beside the ground-truth sharing pairs."""
    b, l = studies.checkpoint(run, "best", "best"), studies.checkpoint(run, "last", "last")
    fig, axes = plt.subplots(1, 4, figsize=(14, 3.6))
    plots.correlation_heatmap(b.C, axes[0], title=b.title())
    plots.correlation_heatmap(l.C, axes[1], title=l.title())
    plots.correlation_heatmap(b.C - l.C, axes[2], vmin=-0.5, vmax=0.5, cmap="RdBu_r",
                              title="C_best − C_last")
    plots.sharing_heatmap(sharing, axes[3])
    fig.suptitle("Planted data: where CAS drops" + _tag(profile), fontsize=9)
    fig.tight_layout()
    return fig
