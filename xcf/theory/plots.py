"""Figures for the theory notebook (matplotlib; each helper draws on a given Axes)."""
from __future__ import annotations

import numpy as np

__all__ = ["COLORS", "plot_w_vs_eps", "plot_theorem2", "plot_beta_limit", "plot_copies"]

COLORS = {"w1": "tab:blue", "w2": "tab:orange"}


def plot_w_vs_eps(ax, eps_fine, closed, eps_train, trained, *, marks=None, title=""):
    """Trained w1, w2 against eps, with the closed forms drawn over them.

    closed: (w1, w2) arrays on ``eps_fine``; trained: {label: (w1, w2) arrays on eps_train}
    (e.g. "delta*" and "PGD"); marks: {name: eps value} drawn as vertical lines.
    """
    for k, name in enumerate(("w1", "w2")):
        ax.plot(eps_fine, closed[k], color=COLORS[name], lw=2, alpha=0.6,
                label=f"${name[0]}_{name[1]}$ closed form")
        for (label, w), marker in zip(trained.items(), ("o", "x", "s", "^")):
            ax.plot(eps_train, w[k], marker, color=COLORS[name], ms=6, mfc="none",
                    label=f"${name[0]}_{name[1]}$ trained, {label}")
    for (name, value), ls in zip((marks or {}).items(), ("--", ":", "-.")):
        ax.axvline(value, color="gray", ls=ls, lw=1, label=f"{name} = {value:.3f}")
    ax.set_xlabel(r"$\epsilon$")
    ax.set_ylabel("weight")
    ax.set_title(title)
    ax.legend(fontsize=7)
    return ax


def plot_theorem2(ax, w2_grid, mc, pair_closed, all_quad, *, w1=1.0, title=""):
    """Theorem 2: robust-classification probability against w2 in [0, w1], with MC bands.

    mc: output of :func:`xcf.theory.montecarlo.theorem2_mc`; pair_closed, all_quad: arrays.
    """
    w2_grid = np.asarray(w2_grid)
    for key, ref, color, label in (("pair", pair_closed, "tab:green", "vs one class $y'$ (Eq. 11)"),
                                   ("all", all_quad, "tab:purple", "vs all classes (robust acc.)")):
        ax.fill_between(w2_grid, mc[key] - mc[key + "_half"], mc[key] + mc[key + "_half"],
                        color=color, alpha=0.25, label=f"MC band, {label}")
        ax.plot(w2_grid, mc[key], ".", color=color)
        ax.plot(w2_grid, ref, "-", color=color, label=f"exact, {label}")
    ax.set_xlabel(f"$w_2$ (with $w_1$ = {w1:g})")
    ax.set_ylabel("probability under the worst $\\delta$")
    ax.set_title(title)
    ax.legend(fontsize=7)
    return ax


def plot_beta_limit(ax, ratio, limits, *, beta_max=1 / 3, beta_used=None):
    """beta above which eps1 >= mu/2, against sigma / mu; {label: array} in ``limits``."""
    for label, lim in limits.items():
        ax.plot(ratio, lim, label=label)
    ax.axhline(beta_max, color="gray", ls="--", lw=1, label=r"$\beta = 1/3$")
    if beta_used is not None:
        ax.axhline(beta_used, color="k", ls=":", lw=1, label=rf"$\beta$ = {beta_used:g} (used)")
    ax.set_xlabel(r"$\sigma / \mu$  (the model needs $< \sqrt{\pi}$)")
    ax.set_ylabel(r"$\beta$ limit")
    ax.set_title(r"Theorem 3's $\epsilon_1 < \mu/2$ holds only below the curve")
    ax.legend(fontsize=7)
    return ax


def plot_copies(ax, eps_fine, closed, eps_train, trained, thresholds, *, title=""):
    """Appendix E.5: per-copy w2 against eps for several K; {label: array} dicts."""
    styles = zip(("tab:blue", "tab:red", "tab:green", "tab:olive", "tab:purple", "tab:brown",
                  "tab:pink", "tab:gray", "tab:cyan"), ("-", "--", "-.", ":") * 3, "oxs^v<>+d")
    for (label, w), (color, ls, marker) in zip(closed.items(), styles):
        ax.plot(eps_fine, w, color=color, ls=ls, alpha=0.7, label=f"{label} closed form")
        ax.plot(eps_train, trained[label], marker, color=color, mfc="none", label=f"{label} trained")
        ax.axvline(thresholds[label], color=color, ls=":", lw=1)
    ax.set_xlabel(r"$\epsilon$")
    ax.set_ylabel(r"$w_2$ per copy")
    ax.set_title(title)
    ax.legend(fontsize=7)
    return ax
