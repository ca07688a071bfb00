"""The paper's figures and Table 1, each drawn by one function from the runs a locator finds.

Every function takes a locator (:mod:`xcf.companion.locate`: train-or-reuse, or find committed
results) and the knobs of the notebook that shows it, so that a section notebook's live
run, its committed-results part and the all-figures notebook call the same function.
Labels (ε, dataset, epochs) come from the runs' own configs and metrics, and every title
names the locator's profile, so a figure from a reduced run says so.  When the locator
finds no finished run, a function prints one line saying which figure is missing and
returns ``None``.

Colour scales follow the paper: [0, 1] for matrices (Figs. 2, 3, 6, 7, 10),
[-0.75, 0.75] for Fig. 5, [0, 0.5] for Fig. 9 and for the differences of Fig. 4.

Figs. 3c, 8 and 11 need model checkpoints (committed results leave them out); they
return ``(figure, numbers)``, the numbers they measured on the way.  The others return
the figure.  :func:`cas_intervals` and :func:`planted_drop` (beyond the paper, the
Claims page) take run folders, as :func:`xcf.companion.claim_runs.find_studies` gives them.
:data:`xcf.companion.gallery.FIGURES` names each figure with the page whose knobs it reads and how it reads them.
:class:`xcf.companion.gallery.Gallery` is the figures page: every figure once per profile, from that profile's
runs (this build's, or the committed ``notebooks/results/<profile>``, the full profile's
included), and "not run" for a profile that has none.
"""
from __future__ import annotations

from typing import Any, Mapping, Optional, Sequence

import matplotlib.pyplot as plt
import numpy as np

from xcf.companion import page_runs, paper, readings
from xcf import plots
from xcf.companion.locate import Locator, kd_pair

__all__ = ["fig1_accuracy_curves", "fig2_three_stages", "fig3ab_kd", "fig3c_saliency",
           "fig4_differences", "table1", "fig5_datasets", "fig6_norm_and_vit",
           "fig7_fast_at", "fig8_instance_wise", "fig9_standard", "fig10_epochs",
           "fig11_saliency", "cas_curve", "cas_intervals", "planted_drop"]

Config = Mapping[str, Any]


def _tag(profile: str) -> str:
    return f" [{profile} profile]"


def _missing(what: str, locate: Locator) -> None:
    print(f"{what}: no finished {locate.profile}-profile run found")
    return None


def _all(runs: Mapping[Any, Any]) -> bool:
    return all(r is not None for r in runs.values())


def _panels(cps: Sequence[readings.Checkpoint]) -> list[tuple]:
    return [(c.C, c.title()) for c in cps]


def _best_last(run) -> list[readings.Checkpoint]:
    return [readings.checkpoint(run, "best", "best"), readings.checkpoint(run, "last", "last")]


def _dataset(run) -> str:
    return str(run.config["dataset"])


def fig1_accuracy_curves(locate: Locator, train: Config, curve_eps: Sequence[float]):
    """Fig. 1: train (dashed) and test (solid) robust accuracy per epoch of PGD-AT, one
    colour per ε of ``curve_eps``."""
    runs = {e: locate(train, **page_runs.at_eps(e)) for e in curve_eps}
    if not _all(runs):
        return _missing("Fig. 1", locate)
    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    first = next(iter(runs.values()))
    plots.accuracy_curves({f"ε={readings.eps_label(r)}": r.metrics() for r in runs.values()},
                          ax, title=f"Fig. 1: robust accuracy of PGD-AT on {_dataset(first)}"
                          + _tag(locate.profile))
    fig.tight_layout()
    return fig


def fig2_three_stages(locate: Locator, train: Config):
    """Fig. 2: C at an under-fitted epoch, at the best and at the last checkpoint."""
    run = locate(train)
    if run is None:
        return _missing("Fig. 2", locate)
    cps = [readings.checkpoint(run, readings.underfitted_epoch(run), "under-fitted"),
           *_best_last(run)]
    return plots.matrix_grid(_panels(cps), suptitle=f"Fig. 2: PGD-AT on {_dataset(run)}, "
                             f"ε={readings.eps_label(run)}" + _tag(locate.profile))


def fig3ab_kd(locate: Locator, teacher: Config, kd_lambda: float, kd_temperature: float,
              kd_form: str = "eq3"):
    """Fig. 3a/b: best and last checkpoint of KD-AT (Eq. 3, in ``kd_form``), taught by the
    best checkpoint of the PGD-AT run of ``teacher``; that run's best and last follow."""
    at, kd = kd_pair(locate, teacher, kd_lambda, kd_temperature, kd_form)
    if kd is None:
        return _missing("Fig. 3a/b", locate)
    cps = _best_last(kd) + _best_last(at)
    for c, who in zip(cps, ("KD-AT", "KD-AT", "PGD-AT", "PGD-AT")):
        c.label = f"{who} {c.label}"
    return plots.matrix_grid(_panels(cps), ncols=2,
                             suptitle="Fig. 3a/b: KD-AT (top) and its PGD-AT teacher's run "
                             f"(bottom), {_dataset(kd)}" + _tag(locate.profile))


def fig4_differences(locate: Locator, train: Config, eps_list: Sequence[float]):
    """Fig. 4: C_best - C_last per ε, with the CAS of both checkpoints."""
    runs = {e: locate(train, **page_runs.at_eps(e)) for e in eps_list}
    if not _all(runs):
        return _missing("Fig. 4", locate)
    panels = []
    for run in runs.values():
        b, last = readings.checkpoint(run, "best"), readings.checkpoint(run, "last")
        panels.append((b.C - last.C, f"ε={readings.eps_label(run)}: CAS {b.cas:.2f} → "
                       f"{last.cas:.2f}\n(epochs {b.epoch} → {last.epoch})"))
    return plots.matrix_grid(panels, vmin=0.0, vmax=0.5, ncols=2 if len(panels) == 4 else 3,
                             suptitle="Fig. 4: C_best − C_last" + _tag(locate.profile))


def table1(locate: Locator, train: Config, table_eps: Sequence[float],
           early_epoch: int) -> Optional[list[dict]]:
    """Table 1: CAS / RA at ``early_epoch``, at the best and at the last checkpoint per ε,
    printed beside the paper's (:data:`xcf.companion.paper.TABLE1`); returns our rows."""
    runs = {e: locate(train, **page_runs.at_eps(e)) for e in table_eps}
    if not _all(runs):
        return _missing("Table 1", locate)
    rows = readings.table1_rows({readings.eps_label(r): r for r in runs.values()}, early_epoch)
    print(f"Table 1 [{locate.profile} profile], CAS / RA")
    print(readings.format_table1(rows, paper.TABLE1))
    # Table 1's ε (8, 12, 16/255) lie from CIFAR-10's largest RA gap up; say which of ours do
    peak = max(range(len(rows)), key=lambda i: rows[i]["ra_gap"])
    above = [r["eps"] for r in rows[peak:]]
    print(f"largest RA gap at ε {rows[peak]['eps']}: ε {', '.join(above)} are the large-ε "
          "side at this scale, as Table 1's" if len(above) > 1 else
          f"largest RA gap at the largest ε ({rows[peak]['eps']}): no ε here is on Table 1's "
          "large-ε side")
    return rows


def fig5_datasets(locate: Locator, train: Config, datasets: Mapping[str, Config]):
    """Fig. 5: best and last checkpoint on other datasets (one row each; ``datasets``:
    name -> overrides of ``train``), colour bar [-0.75, 0.75] as in the paper."""
    runs = {name: locate(train, **over) for name, over in datasets.items()}
    if not _all(runs):
        return _missing("Fig. 5", locate)
    cps = []
    for name, run in runs.items():
        for c in _best_last(run):
            c.label = f"{name} {c.label}"
            cps.append(c)
    return plots.matrix_grid(_panels(cps), vmin=-0.75, vmax=0.75, ncols=2,
                             suptitle="Fig. 5: other datasets" + _tag(locate.profile))


def fig6_norm_and_vit(locate: Locator, train: Config, l2_eps: float, vit: Config):
    """Fig. 6: best and last checkpoint of ℓ2-AT (ε ``l2_eps``, top) and of a vision
    transformer (``vit``: overrides of ``train``, bottom)."""
    l2, tr = locate(train, **page_runs.l2_at(l2_eps)), locate(train, **vit)
    if l2 is None or tr is None:
        return _missing("Fig. 6", locate)
    cps = []
    for run, name in ((l2, f"ℓ2 ε={readings.eps_label(l2)}"), (tr, str(tr.config["model"]))):
        for c in _best_last(run):
            c.label = f"{name} {c.label}"
            cps.append(c)
    return plots.matrix_grid(_panels(cps), ncols=2,
                             suptitle=f"Fig. 6: ℓ2-AT and a vision transformer, {_dataset(l2)}"
                             + _tag(locate.profile))


def _early_epoch(run, epochs: int) -> int:
    """The paper's epoch 10 of 200, scaled to ``epochs``, moved to the nearest saved
    matrix at or before the best epoch (runs keep every 10th after 50 epochs)."""
    wanted = max(1, round(epochs * paper.TABLE1_EARLY_EPOCH / paper.EPOCHS))
    saved = [e for e in readings.saved_matrix_epochs(run) if e <= run.best_epoch]
    saved = saved or [run.best_epoch]
    return min(saved, key=lambda e: abs(e - min(wanted, run.best_epoch)))


def fig7_fast_at(locate: Locator, train: Config, fast_eps: float, fast_alpha: float,
                 epochs: int):
    """Fig. 7: fast AT (FGSM step ``fast_alpha``) at an early epoch, at its best, and at
    the end (after catastrophic overfitting, where it happened)."""
    knobs = dict(fast_eps=fast_eps, fast_alpha=fast_alpha, epochs=epochs)
    run = locate(train, **page_runs.fast_at(knobs))
    if run is None:
        return _missing("Fig. 7", locate)
    cps = [readings.checkpoint(run, _early_epoch(run, epochs), "early"), *_best_last(run)]
    return plots.matrix_grid(_panels(cps), suptitle=f"Fig. 7: fast AT, ε={readings.eps_label(run)}"
                             f", step {fast_alpha:g}" + _tag(locate.profile))


def fig8_instance_wise(locate: Locator, train: Config, l2_eps: float):
    """Fig. 8: instance-wise matrices (Section 5.3) of the best and the last checkpoint
    of ℓ∞- and ℓ2-AT, measured again from the checkpoints.  Returns ``(figure, I-CAS by
    panel title)``, or ``None`` without the runs or their checkpoints."""
    runs = {"ℓ∞": locate(train), "ℓ2": locate(train, **page_runs.l2_at(l2_eps))}
    if not _all(runs):
        return _missing("Fig. 8", locate)
    if not all((r.path / "checkpoints").is_dir() for r in runs.values()):
        print("Fig. 8: needs model checkpoints, which committed results leave out")
        return None
    from xcf.train.posthoc import measure_run  # the post-hoc measurement, only when drawn
    panels, icas = [], {}
    for name, run in runs.items():
        for which in ("best", "last"):
            epoch, _, adv, _ = measure_run(run.path, which, instance=True)
            title = f"{name} {which} (epoch {epoch})"
            icas[title] = float(adv.i_cas)
            panels.append((adv.C_instance, f"{title}\nRA {adv.accuracy:.1%}, "
                           f"I-CAS {adv.i_cas:.2f}"))
    fig = plots.matrix_grid(panels, ncols=2, suptitle="Fig. 8: instance-wise matrices"
                            + _tag(locate.profile))
    return fig, icas


def fig9_standard(locate: Locator, train: Config, n: int):
    """Fig. 9: standard training, C on clean examples at ``n`` evenly spaced epochs (n = 4:
    25, 50, 75 and 100% of training, as the paper's :data:`xcf.companion.paper.STANDARD_EPOCHS`),
    each the nearest saved matrix; colour bar [0, 0.5]."""
    run = locate(train, **page_runs.standard())
    if run is None:
        return _missing("Fig. 9", locate)
    epochs = readings.even_epochs(readings.saved_matrix_epochs(run, clean=True),
                                 run.metrics()[-1]["epoch"], n)
    cps = [readings.checkpoint(run, e, f"epoch {e}", clean=True) for e in epochs]
    panels = [(c.C, f"epoch {c.epoch}: clean acc {c.clean_acc:.1%}\nCAS (clean) {c.cas:.2f}")
              for c in cps]
    return plots.matrix_grid(panels, vmin=0.0, vmax=0.5, ncols=2 if len(panels) == 4 else 3,
                             suptitle=f"Fig. 9: standard training on {_dataset(run)}, clean "
                             "examples" + _tag(locate.profile))


def fig10_epochs(locate: Locator, train: Config, n: int):
    """Fig. 10: C of PGD-AT at ``n`` evenly spaced epochs (the nearest saved matrices)."""
    run = locate(train)
    if run is None:
        return _missing("Fig. 10", locate)
    epochs = readings.even_epochs(readings.saved_matrix_epochs(run), run.metrics()[-1]["epoch"], n)
    cps = [readings.checkpoint(run, e, "PGD-AT") for e in epochs]
    return plots.matrix_grid(_panels(cps), suptitle=f"Fig. 10: C during PGD-AT on "
                             f"{_dataset(run)}" + _tag(locate.profile))


def _saliency(locate: Locator, train: Config, n: int, name: str):
    """Grad-CAM on ``n`` test samples the best checkpoint classifies right under attack
    and the last one wrong; ``(figure, numbers)``."""
    run = locate(train)
    if run is None:
        return _missing(name, locate)
    if not (run.path / "checkpoints").is_dir():
        print(f"{name}: needs model checkpoints, which committed results leave out")
        return None
    import torch

    from xcf import data
    from xcf.runs.config import make_config
    from xcf.train.evaluation import eval_attack
    from xcf.train.setup import resolve_device
    from xcf.companion.saliency import best_right_last_wrong, gradcam, overlay
    cfg = make_config(dict(train)).resolved()
    ds = data.load(cfg.dataset, n_train=cfg.n_train, n_test=cfg.n_test, seed=cfg.data_seed,
                   **cfg.data_kwargs)
    dev = resolve_device("auto")  # attack on the GPU where there is one
    best, last = run.load_model("best", device=dev), run.load_model("last", device=dev)
    torch.manual_seed(0)
    idx, xb, xl = best_right_last_wrong(best, last, ds.x_test, ds.y_test, eval_attack(cfg), n)
    y = ds.y_test[idx]
    maps_b, maps_l = gradcam(best, xb, y), gradcam(last, xl, y)
    images = ds.x_test[idx]
    k = max(len(idx), 1)
    fig, axes = plt.subplots(3, k, figsize=(1.9 * k + 0.6, 6.0), squeeze=False)
    for j in range(len(idx)):
        img = images[j]
        axes[0, j].imshow(np.squeeze(img.cpu().numpy().transpose(1, 2, 0)),
                          cmap="gray" if img.shape[0] == 1 else None, vmin=0, vmax=1)
        axes[0, j].set_title(f"#{int(idx[j])}: {ds.classes[int(y[j])]}", fontsize=8)
        axes[1, j].imshow(overlay(img, maps_b[j]))
        axes[2, j].imshow(overlay(img, maps_l[j]))
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    for row, text in enumerate(("image", "best", "last")):
        axes[row, 0].set_ylabel(text, fontsize=9)
    fig.suptitle(f"{name}: Grad-CAM, best right and last wrong under attack, "
                 f"{_dataset(run)}" + _tag(locate.profile), fontsize=9)

    # How spread out each map is: the share of the image above half the map's peak.
    def spread(m):
        return float((m > 0.5 * m.max(axis=(1, 2), keepdims=True)).mean()) if len(m) else 0.0

    return fig, {"n": int(len(idx)), "searched": int(len(ds.y_test)),
                 "spread_best": spread(maps_b), "spread_last": spread(maps_l)}


def fig3c_saliency(locate: Locator, train: Config, n: int = 3):
    """Fig. 3c: images (top), Grad-CAM on the best (middle) and on the last checkpoint's
    adversarial examples (bottom), for the first ``n`` samples the best checkpoint gets
    right and the last one wrong.  Returns ``(figure, numbers)`` or ``None``."""
    return _saliency(locate, train, n, "Fig. 3c")


def fig11_saliency(locate: Locator, train: Config, n: int):
    """Fig. 11: more samples as in Fig. 3c, in the order of their test index, with the
    share of pixels above half each map's peak in ``numbers``."""
    return _saliency(locate, train, n, "Fig. 11")


def cas_curve(locate: Locator, train: Config, **overrides: Any):
    """Beyond the paper's figures: CAS (left) and test robust accuracy (right) per epoch
    of one run; dotted: the best epoch."""
    run = locate(train, **overrides)
    if run is None:
        return _missing("CAS curve", locate)
    cfg = run.config
    fig, ax = plt.subplots(figsize=(7.5, 3.8))
    plots.cas_and_accuracy(run.metrics(), ax, best_epoch=run.best_epoch,
                           title=f"CAS and test RA, {cfg['objective']} on {cfg['dataset']}, "
                           f"ε={readings.eps_label(run)}" + _tag(locate.profile))
    fig.tight_layout()
    return fig


def cas_intervals(runs_by_label: Mapping[str, Any], profile: str):
    """Beyond the paper: CAS per epoch with its bootstrap 95% interval over test samples
    (shaded), CAS on held-out training images (dashed) and test robust accuracy (right
    axis); dotted: the test-RA-selected best epoch, dash-dotted: the epoch CAS on held-out
    training images selects."""
    n = len(runs_by_label)
    cols = min(n, 2)
    nrows = -(-n // cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(5.2 * cols, 3.8 * nrows), squeeze=False)
    for ax, (label, run) in zip(axes.flat, runs_by_label.items()):
        rows = run.metrics()
        band = ([tuple(r["cas_ci95"]) for r in rows]
                if all("cas_ci95" in r for r in rows) else None)
        plots.cas_and_accuracy(rows, ax, title=label, best_epoch=run.best_epoch, band=band)
        if all("holdout_cas" in r for r in rows):
            ep = [r["epoch"] for r in rows]
            ax.plot(ep, [r["holdout_cas"] for r in rows], color="C0", ls="--", lw=0.8)
            pick = max(rows, key=lambda r: r["holdout_cas"])["epoch"]
            ax.axvline(pick, color="C2", ls="-.", lw=1)
    for ax in list(axes.flat)[n:]:
        ax.set_visible(False)
    fig.suptitle("CAS with bootstrap 95% intervals; dashed: held-out training images"
                 + _tag(profile), fontsize=9)
    fig.tight_layout()
    return fig


def planted_drop(run, sharing, profile: str):
    """Beyond the paper: on planted data, C at the best and last epochs and their
    difference, beside the ground-truth sharing pairs."""
    b, last = _best_last(run)
    fig, axes = plt.subplots(2, 2, figsize=(8.4, 8.0))
    plots.correlation_heatmap(b.C, axes[0, 0], title=b.title())
    plots.correlation_heatmap(last.C, axes[0, 1], title=last.title())
    plots.correlation_heatmap(b.C - last.C, axes[1, 0], vmin=-0.5, vmax=0.5, cmap="RdBu_r",
                              title="C_best − C_last")
    plots.sharing_heatmap(sharing, axes[1, 1])
    fig.suptitle("Planted data: where CAS drops" + _tag(profile), fontsize=9)
    fig.tight_layout()
    return fig
