"""Read run folders into the comparisons the paper draws: best vs last checkpoint, chosen
epochs, Table 1.  Pure bookkeeping over :class:`xcf.runs.folder.Run`; nothing here trains.

The paper selects the best checkpoint by test robust accuracy (Section 3.2, as the
official code does), and compares it with the last epoch (robust overfitting) and with
an early, under-fitted epoch (Fig. 2: epochs 70, 108 and 200 of 200).
"""
from __future__ import annotations

import html

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from xcf.companion import paper
from xcf.attribution import cas

__all__ = ["Checkpoint", "row_at", "checkpoint", "saved_matrix_epochs", "nearest_epochs",
           "even_epochs",
           "underfitted_epoch", "best_last_gap", "table1_rows", "format_table1", "pair_mean",
           "cas_of", "eps_label", "markdown_table", "html_table"]


@dataclass
class Checkpoint:
    """One evaluated epoch of a run: its matrix C (Eq. 6), CAS (Eq. 7) and accuracies."""

    label: str
    epoch: int
    C: np.ndarray
    cas: float
    robust_acc: float
    clean_acc: float

    def title(self, profile: str | None = None) -> str:
        tag = f" [{profile}]" if profile else ""
        return f"{self.label} (epoch {self.epoch}){tag}\nRA {self.robust_acc:.1%}, CAS {self.cas:.2f}"


def row_at(rows: Sequence[Mapping], epoch: int) -> Mapping:
    for r in rows:
        if r["epoch"] == epoch:
            return r
    raise KeyError(f"no metrics for epoch {epoch}; epochs run: {[r['epoch'] for r in rows]}")


def checkpoint(run, which, label: str | None = None, clean: bool = False) -> Checkpoint:
    """The saved matrix and the metrics of ``which`` ('best', 'last' or an epoch number).

    ``clean``: the clean-example matrix (Fig. 9, standard training) instead of the
    adversarial one.
    """
    epoch = run.resolve_epoch(which)
    r = row_at(run.metrics(), epoch)
    C = np.asarray(run.matrix(epoch, clean=clean))
    return Checkpoint(label=label or str(which), epoch=epoch, C=C,
                      cas=float(r["cas_clean" if clean else "cas"]),
                      robust_acc=float(r["test_robust_acc"]), clean_acc=float(r["test_clean_acc"]))


def saved_matrix_epochs(run, clean: bool = False) -> list[int]:
    """Epochs whose correlation matrix the run saved."""
    prefix = "clean_epoch_" if clean else "epoch_"
    return sorted(int(p.stem[len(prefix):]) for p in (run.path / "matrices").glob(f"{prefix}*.npy"))


def nearest_epochs(available: Sequence[int], targets: Sequence[float]) -> list[int]:
    """For each target epoch the nearest one in ``available`` (the earlier on a tie), in
    order and without repeats."""
    available = sorted(available)
    out: list[int] = []
    for t in targets:
        e = min(available, key=lambda a: (abs(a - t), a))
        if e not in out:
            out.append(e)
    return out


def even_epochs(available: Sequence[int], last_epoch: int, n: int) -> list[int]:
    """``n`` epochs evenly spaced over training, at k/n of ``last_epoch`` for k = 1..n
    (n = 4: 25, 50, 75 and 100%, as Fig. 9's epochs 50, 100, 150, 200 of 200), each the
    nearest saved one in ``available``.  Spacing by epoch, not over the saved list,
    which early "new best" epochs dominate."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    return nearest_epochs(available, [last_epoch * k / n for k in range(1, n + 1)])


def underfitted_epoch(run, fraction: float = 0.65) -> int:
    """A saved epoch before the best one, at about ``fraction`` of it (Fig. 2 shows
    epoch 70 against the best epoch 108)."""
    best = run.best_epoch
    candidates = [e for e in saved_matrix_epochs(run) if e < best] or [best]
    target = max(1, round(best * fraction))
    return min(candidates, key=lambda e: abs(e - target))


def best_last_gap(run) -> dict:
    """CAS and robust accuracy at the best and last epochs, and their differences."""
    best, last = checkpoint(run, "best"), checkpoint(run, "last")
    return {"best_epoch": best.epoch, "last_epoch": last.epoch,
            "cas_best": best.cas, "cas_last": last.cas, "cas_gap": best.cas - last.cas,
            "ra_best": best.robust_acc, "ra_last": last.robust_acc,
            "ra_gap": best.robust_acc - last.robust_acc}


def table1_rows(runs_by_eps: Mapping[str, object], early_epoch: int) -> list[dict]:
    """Table 1: CAS / RA at an early epoch, at the best and at the last checkpoint, per ε."""
    out = []
    for label, run in runs_by_eps.items():
        rows = run.metrics()
        early = row_at(rows, min(early_epoch, rows[-1]["epoch"]))
        gap = best_last_gap(run)
        out.append({"eps": label, "early_epoch": early["epoch"], "cas_early": early["cas"],
                    "ra_early": early["test_robust_acc"], **gap})
    return out


def format_table1(rows: Sequence[Mapping],
                  paper_rows: Mapping[str, Sequence[float]] | None = None) -> str:
    """Table 1 as text; ``paper_rows``: ε label -> (CAS, RA%) x (early, best, last), as in
    :data:`xcf.companion.paper.TABLE1`."""
    head = f"{'eps':>8} | {'early CAS/RA':>16} | {'best CAS/RA':>16} | {'last CAS/RA':>16}"
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(f"{r['eps']:>8} | {r['cas_early']:7.2f}/{r['ra_early']:6.1%}  | "
                     f"{r['cas_best']:7.2f}/{r['ra_best']:6.1%}  | {r['cas_last']:7.2f}/{r['ra_last']:6.1%}")
    if paper_rows:
        lines.append(f"paper (CIFAR-10, PreActResNet-18, epoch {paper.TABLE1_EARLY_EPOCH}"
                     " / best / last):")
        for eps, v in paper_rows.items():
            lines.append(f"{eps:>8} | {v[0]:7.1f}/{v[1]:5.1f}%  | {v[2]:7.1f}/{v[3]:5.1f}%  | {v[4]:7.1f}/{v[5]:5.1f}%")
    return "\n".join(lines)


def pair_mean(C: np.ndarray, mask: np.ndarray) -> float:
    """Mean of C over the entries where ``mask`` is True (e.g. planted sharing pairs)."""
    return float(np.asarray(C)[np.asarray(mask, dtype=bool)].mean())


def cas_of(C) -> float:
    """CAS (Eq. 7) of a matrix given as numpy or torch."""
    import torch

    return cas(torch.as_tensor(np.asarray(C)))


def eps_label(run) -> str:
    """The ε of a run as the paper writes it, from the run's own config: k/255 for CIFAR
    and Tiny-ImageNet, plain otherwise (so no notebook names a dataset to get a label)."""
    cfg = run.config
    eps, dataset = float(cfg["eps"]), cfg["dataset"]
    if dataset in ("cifar10", "cifar100", "tiny-imagenet"):
        return f"{eps * 255:.0f}/255"
    return f"{eps:g}"


def markdown_table(rows: Sequence[Mapping], columns: Sequence[str]) -> str:
    """A Markdown table of ``rows`` (for ``IPython.display.Markdown``)."""
    out = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for r in rows:
        out.append("| " + " | ".join(str(r.get(c, "")).replace("|", "/") for c in columns) + " |")
    return "\n".join(out)


def html_table(rows: Sequence[Mapping], columns: Sequence[str], caption: str = "") -> str:
    """The same table as HTML, every cell escaped, with an optional plain-text caption
    above it: for a page that pastes it from another one (myst-nb pastes a glued
    output's HTML across pages, not its Markdown)."""
    cell = lambda tag, v: f"<{tag}>{html.escape(str(v))}</{tag}>"  # noqa: E731
    head = "<tr>" + "".join(cell("th", c) for c in columns) + "</tr>"
    body = "".join("<tr>" + "".join(cell("td", r.get(c, "")) for c in columns) + "</tr>"
                   for r in rows)
    top = f"<p>{html.escape(caption)}</p>\n" if caption else ""
    return f"{top}<table>\n<thead>{head}</thead>\n<tbody>{body}</tbody>\n</table>"
