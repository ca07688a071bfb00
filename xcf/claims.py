"""The paper's five empirical claims, decided from run folders.

One job: *does a profile's evidence support each claim?*  The claims (Wei, Guo & Wang,
ICML 2025) and the rule that decides each one here:

- **C1** (Section 3.2, Fig. 2, Table 1): CAS at the best checkpoint exceeds CAS at the
  last one for PGD-AT.  Decided on every seed: *holds* if the gap is positive in all.
- **C2** (Section 3.3, Fig. 3): KD-AT's best-last CAS gap is smaller than PGD-AT's (the
  teacher's run, same seed).
- **C3** (Section 3.3, Fig. 4): the gap grows with ε: *holds* if it rises strictly over
  the sorted ε values (at least three).
- **C4** (Section 5.2, Fig. 7): fast AT loses CAS when robust accuracy collapses
  (catastrophic overfitting, :func:`collapse_epoch`); *not tested* without a collapse.
- **C5** (Section 5.4, Fig. 9): standard training (clean inputs, last epoch) has lower
  CAS than PGD-AT (best checkpoint).

Beyond the paper: :func:`label_free_selection` (choose the epoch by CAS on held-out
*training* samples), :func:`planted_concentration` (where, on planted data with a known
sharing graph, the CAS drop happens), and the settings search (:func:`overfitting`).

:func:`studies_of` names the runs each rule reads and :func:`located_studies` finds them
with any :mod:`xcf.locate` locator; training and exporting them is ``tools/run_claims.py``'s
job, so nothing here trains or knows where a checkout keeps its results.
"""
from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Optional, Sequence

import numpy as np

from . import paper, studies
from .locate import Committed, kd_overrides

__all__ = ["PAPER", "STATEMENT", "OVERFIT_DROP", "OVERFIT_WINDOW", "COLLAPSE_FRACTION",
           "studies_of", "fast_settings", "located_studies", "find_studies", "overfitting",
           "collapse_epoch", "label_free_selection", "planted_concentration", "decide",
           "sharing_matrix", "markdown_table"]

_T1 = paper.TABLE1["8/255"]
_GAPS = paper.table1_cas_gaps()
PAPER = {  # what the paper reports for each claim (CIFAR-10, PreActResNet-18, 200 epochs)
    "C1": f"CAS {_T1[2]} best (epoch {paper.BEST_EPOCH_PGD_AT}) vs {_T1[4]} last; "
          f"RA {_T1[3]}% vs {_T1[5]}% (Table 1, ε = 8/255)",
    "C2": "no significant gap between KD-AT's best and last matrices "
          "(Fig. 3; values only in the figure)",
    "C3": "gap grows from ε = 2/255 to 8/255 (Fig. 4; values only in the figure); "
          "Table 1's larger ε: " + ", ".join(f"{g}" for g in _GAPS.values())
          + " at " + ", ".join(e.split("/")[0] for e in _GAPS) + "/255",
    "C4": f"CAS plummets to {paper.FAST_AT_CAS_AFTER_CO} after catastrophic overfitting, "
          "RA near zero (Fig. 7)",
    "C5": "standard training's CAS well below AT's, which is "
          f"'generally > {paper.AT_CAS_TYPICAL_LOWER_BOUND}' (Fig. 9)",
}
STATEMENT = {
    "C1": "PGD-AT: CAS(best) > CAS(last)",
    "C2": "KD-AT's CAS gap < PGD-AT's",
    "C3": "CAS gap grows with ε",
    "C4": "fast AT loses CAS at catastrophic overfitting",
    "C5": "standard training has lower CAS than AT",
}
OVERFIT_DROP = 0.03      # a run robust-overfits if test RA falls >= 3 points after its peak
OVERFIT_WINDOW = 5       # ... judged on 5-epoch trailing means of test and train RA
COLLAPSE_FRACTION = 0.25  # catastrophic overfitting: test RA at most 1/4 of its peak


# =========================================================================== the studies

def studies_of(P: Mapping[str, Any]) -> Iterator[tuple[str, dict, dict]]:
    """``(name, config, overrides)`` of every run the ``11_claims`` section ``P`` names,
    in the order they must train (a KD student after its teacher)."""
    base = P["train"]
    for probe in P.get("search", []):
        yield f"search: {probe['label']}", base, dict(probe["overrides"])
    for seed in P["seeds"]:
        yield f"C1 seed {seed}", base, {"seed": seed}
    yield "C2 KD-AT", base, {"objective": "kd_at", "kd": None}  # teacher filled in at run time
    for eps in P["eps_list"]:
        yield f"C3 eps {eps:g}", base, {"eps": eps}
    for setting in fast_settings(P):
        yield f"C4 fast AT {setting['label']}", base, dict(setting["overrides"])
    yield "C5 standard", base, {"objective": "standard"}
    if P.get("planted"):
        yield "planted", base, dict(P["planted"])


def fast_settings(P: Mapping[str, Any]) -> list[dict]:
    """The fast-AT settings to try for C4, in order: ``{label, overrides}`` each (a single
    mapping of overrides is one setting labelled by its ε and step)."""
    fast = P["fast"]
    if isinstance(fast, Mapping):
        fast = [{"label": f"ε {fast.get('eps')}, step {fast.get('fast_at', {}).get('alpha')}", "overrides": fast}]
    return list(fast)


def located_studies(P: Mapping[str, Any], locate: Callable[..., Any],
                    only: Optional[Callable[[str], bool]] = None,
                    announce: Optional[Callable[[str], None]] = None) -> Iterator[tuple[str, Any]]:
    """``(name, run)`` for every study of ``P`` (those ``only(name)`` keeps), where ``run``
    is ``locate(config, **overrides)`` and may be ``None`` if ``locate`` finds nothing.

    The KD student's teacher is the run of C1's first seed: the one already located,
    or located first (``locate(config, seed=...)``) when ``only`` skipped it.  Without a
    teacher the student is yielded as ``None``.  ``announce(name)`` is called before each
    study is located (a training locator prints it)."""
    teacher = None
    first_seed = f"C1 seed {P['seeds'][0]}"
    for name, config, overrides in studies_of(P):
        if only is not None and not only(name):
            continue
        if overrides.get("objective") == "kd_at":
            teacher = teacher or locate(config, seed=P["seeds"][0])
            if teacher is None:
                yield name, None
                continue
            overrides = kd_overrides(teacher.path, P["kd_lambda"], P["kd_temperature"],
                                     P.get("kd_form", "eq3"))
        if announce is not None:
            announce(name)
        run = locate(config, **overrides)
        if name == first_seed:
            teacher = run
        yield name, run


def find_studies(root: str | Path, P: Mapping[str, Any]) -> dict:
    """The finished runs of ``P``'s studies under ``root`` (missing ones left out)."""
    locate = Committed(root, profile=Path(root).name)
    return {name: run for name, run in located_studies(P, locate) if run is not None}


# =========================================================================== measures

def overfitting(run, window: int = OVERFIT_WINDOW) -> dict:
    """Robust overfitting of one run, judged on ``window``-epoch trailing means so that a
    single lucky evaluation (500 test images: about 2 points of standard error) neither
    makes nor hides it: the peak of the smoothed test RA, its value over the last
    ``window`` epochs, the drop, and whether the smoothed train robust accuracy kept
    rising.  The raw peak (the test-RA-selected best epoch) is reported beside it."""
    rows = run.metrics()
    w = max(1, min(window, len(rows)))
    train_key = "train_robust_acc" if rows[-1].get("train_robust_acc") is not None else "train_clean_acc"
    test = np.array([r["test_robust_acc"] for r in rows], dtype=float)
    train = np.array([r[train_key] for r in rows], dtype=float)
    smooth = lambda a: np.convolve(a, np.ones(w) / w, mode="valid")  # noqa: E731  trailing means
    s_test, s_train = smooth(test), smooth(train)
    peak = int(np.argmax(s_test))  # first maximum
    best = int(np.argmax(test))
    drop = float(s_test[peak] - s_test[-1])
    rising = bool(s_train[-1] > s_train[peak])
    return {"window": w, "peak_epoch": rows[peak + w - 1]["epoch"], "epochs": rows[-1]["epoch"],
            "ra_peak": float(s_test[peak]), "ra_last": float(s_test[-1]), "ra_drop": drop,
            "train_ra_at_peak": float(s_train[peak]), "train_ra_last": float(s_train[-1]),
            "raw_best_epoch": rows[best]["epoch"], "raw_ra_best": float(test[best]),
            "raw_ra_last": float(test[-1]), "overfits": bool(drop >= OVERFIT_DROP and rising)}


def collapse_epoch(run, fraction: float = COLLAPSE_FRACTION) -> Optional[int]:
    """First epoch after the best whose test robust accuracy is at most ``fraction`` of
    the best (catastrophic overfitting, Section 5.2); ``None`` if it never collapses."""
    rows = run.metrics()
    best = max(rows, key=lambda r: r["test_robust_acc"])
    for r in rows:
        if r["epoch"] > best["epoch"] and r["test_robust_acc"] <= fraction * best["test_robust_acc"]:
            return int(r["epoch"])
    return None


def label_free_selection(run) -> dict:
    """Beyond the paper: pick the epoch with the highest CAS on held-out *training*
    samples (no test labels) and compare its test RA with the test-RA-selected best; the
    held-out robust accuracy (a plain validation split) is shown as the usual alternative."""
    rows = run.metrics()
    if "holdout_cas" not in rows[0]:
        raise ValueError(f"{run.path.name} has no held-out measurements; train it with holdout_n")
    pick = lambda key: max(rows, key=lambda r: r[key])  # noqa: E731  first maximum
    test, by_cas, by_val = pick("test_robust_acc"), pick("holdout_cas"), pick("holdout_robust_acc")
    return {"test_best_epoch": test["epoch"], "test_best_ra": test["test_robust_acc"],
            "cas_epoch": by_cas["epoch"], "cas_ra": by_cas["test_robust_acc"],
            "cas_regret": test["test_robust_acc"] - by_cas["test_robust_acc"],
            "holdout_ra_epoch": by_val["epoch"], "holdout_ra_ra": by_val["test_robust_acc"],
            "holdout_ra_regret": test["test_robust_acc"] - by_val["test_robust_acc"],
            "last_ra": rows[-1]["test_robust_acc"],
            "last_regret": test["test_robust_acc"] - rows[-1]["test_robust_acc"]}


def planted_concentration(run, sharing: np.ndarray) -> dict:
    """Beyond the paper: on planted data, the change of C from the best to the last epoch
    on the planted sharing pairs and on all other pairs, and the share of the CAS drop
    (positive parts, Eq. 7) that the sharing pairs carry."""
    best, last = studies.checkpoint(run, "best"), studies.checkpoint(run, "last")
    share = np.asarray(sharing, dtype=bool)
    other = ~share & ~np.eye(len(share), dtype=bool)
    pos_drop = np.clip(best.C, 0, None) - np.clip(last.C, 0, None)
    total = float(pos_drop[share | other].sum())
    return {"best_epoch": best.epoch, "last_epoch": last.epoch, "cas_best": best.cas,
            "cas_last": last.cas, "C_share_best": studies.pair_mean(best.C, share),
            "C_share_last": studies.pair_mean(last.C, share),
            "C_other_best": studies.pair_mean(best.C, other),
            "C_other_last": studies.pair_mean(last.C, other),
            "drop_share_of_cas_drop": float(pos_drop[share].sum()) / total if total else float("nan"),
            "share_fraction_of_pairs": float(share.sum() / (share | other).sum())}


# =========================================================================== verdicts

def _mean_sd(values: Sequence[float]) -> str:
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.2f} ± {sd:.2f}"


def decide(found: Mapping[str, Any], P: Mapping[str, Any]) -> list[dict]:
    """One row per claim: ``claim``, ``statement``, ``ours`` (numbers), ``verdict``
    (holds / does not hold / not tested / not run), ``paper``."""
    rows = []

    def add(claim: str, verdict: str, ours: str) -> None:
        rows.append({"claim": claim, "statement": STATEMENT[claim], "ours": ours,
                     "verdict": verdict, "paper": PAPER[claim]})

    seeds = [found[f"C1 seed {s}"] for s in P["seeds"] if f"C1 seed {s}" in found]
    if seeds:
        gaps = [studies.best_last_gap(r) for r in seeds]
        cas_gaps = [g["cas_gap"] for g in gaps]
        add("C1", "holds" if all(g > 0 for g in cas_gaps) else "does not hold",
            f"{len(seeds)} seeds: CAS best {_mean_sd([g['cas_best'] for g in gaps])} vs last "
            f"{_mean_sd([g['cas_last'] for g in gaps])}, gap {_mean_sd(cas_gaps)} "
            f"(positive in {sum(g > 0 for g in cas_gaps)}/{len(gaps)}); RA best "
            f"{_mean_sd([100 * g['ra_best'] for g in gaps])}% vs last {_mean_sd([100 * g['ra_last'] for g in gaps])}%")
    else:
        add("C1", "not run", "-")

    at = found.get(f"C1 seed {P['seeds'][0]}")
    kd = found.get("C2 KD-AT")
    if at is not None and kd is not None:
        g_at, g_kd = studies.best_last_gap(at), studies.best_last_gap(kd)
        add("C2", "holds" if g_kd["cas_gap"] < g_at["cas_gap"] else "does not hold",
            f"gap KD-AT {g_kd['cas_gap']:.2f} ({g_kd['cas_best']:.2f} → {g_kd['cas_last']:.2f}) vs "
            f"PGD-AT {g_at['cas_gap']:.2f}; RA drop KD-AT {100 * g_kd['ra_gap']:.1f} vs PGD-AT "
            f"{100 * g_at['ra_gap']:.1f} points")
    else:
        add("C2", "not run", "-")

    eps_runs = [(e, found[f"C3 eps {e:g}"]) for e in sorted(P["eps_list"]) if f"C3 eps {e:g}" in found]
    if len(eps_runs) >= 3:
        g = [studies.best_last_gap(r)["cas_gap"] for _, r in eps_runs]
        grows = all(b > a for a, b in zip(g, g[1:]))
        add("C3", "holds" if grows else "does not hold",
            "gap " + ", ".join(f"{v:.2f} (ε {e:g})" for (e, _), v in zip(eps_runs, g)))
    else:
        add("C3", "not run", "-")

    fast_runs = [(f["label"], found[f"C4 fast AT {f['label']}"]) for f in fast_settings(P)
                 if f"C4 fast AT {f['label']}" in found]
    collapsed = [(label, run, collapse_epoch(run)) for label, run in fast_runs]
    hit = next(((label, run, co) for label, run, co in collapsed if co is not None), None)
    tried = "; ".join(
        f"{label}: no collapse (RA {studies.checkpoint(run, 'best').robust_acc:.1%} at best, "
        f"{run.metrics()[-1]['test_robust_acc']:.1%} at the end)"
        for label, run, co in collapsed if co is None)
    if hit is not None:
        label, run, co = hit
        best = studies.checkpoint(run, "best")
        r = studies.row_at(run.metrics(), co)
        add("C4", "holds" if r["cas"] < best.cas else "does not hold",
            f"{label}: CAS {best.cas:.2f} at best (epoch {best.epoch}, RA {best.robust_acc:.1%}) vs "
            f"{r['cas']:.2f} at collapse (epoch {co}, RA {r['test_robust_acc']:.1%})"
            + (f"; also tried {tried}" if tried else ""))
    elif fast_runs:
        add("C4", "not tested", tried)
    else:
        add("C4", "not run", "-")

    std = found.get("C5 standard")
    if std is not None and at is not None:
        std_cas = float(std.metrics()[-1]["cas_clean"])
        at_cas = studies.checkpoint(at, "best").cas
        add("C5", "holds" if std_cas < at_cas else "does not hold",
            f"standard {std_cas:.2f} (clean, last epoch) vs PGD-AT {at_cas:.2f} (best)")
    else:
        add("C5", "not run", "-")
    return rows


def sharing_matrix(num_classes: int, pairs: Sequence[Sequence[int]]) -> np.ndarray:
    """The (K, K) boolean ground truth of planted sharing ``pairs`` (symmetric, no diagonal)."""
    S = np.zeros((num_classes, num_classes), dtype=bool)
    for i, j in pairs:
        S[i, j] = S[j, i] = True
    return S


def markdown_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> str:
    """A Markdown table of ``rows`` (for ``IPython.display.Markdown``)."""
    out = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for r in rows:
        out.append("| " + " | ".join(str(r.get(c, "")).replace("|", "/") for c in columns) + " |")
    return "\n".join(out)
