"""What each section page's runs show, in sentences computed from their numbers.

A page's "What we observed" is not written by hand: each function here reads the runs a
page shows (through the same locator its figures use) and says, in plain sentences, what
they show and where that differs from the paper, the negatives included.  Change a run's
numbers and the sentences change (``tests/companion/test_observed.py``).  A function returns
``[]`` where the page's runs are not there.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

from scipy import stats

from xcf.companion import diagnostics, evidence, page_runs, paper, readings
from xcf.companion.locate import Locator, kd_pair

__all__ = ["dynamics", "soft_labels", "perturbation_bound", "across", "fast_at", "standard"]

Config = Mapping[str, Any]


def _cmp(a: float, b: float) -> str:
    return "above" if a > b else "below" if a < b else "equal to"


def _fall(run) -> str:
    o = diagnostics.overfitting(run)
    return (f"test RA (5-epoch means) peaks at {o['ra_peak']:.1%} around epoch "
            f"{o['peak_epoch']} and ends at {o['ra_last']:.1%}, a fall of "
            f"{100 * o['ra_drop']:.1f} points: "
            + ("robust overfitting by this book's rule (≥ 3 points)" if o["overfits"] else
               "less than this book's 3 points, so not robust overfitting by its rule"))


def dynamics(locate: Locator, train: Config) -> list[str]:
    """Training dynamics (Figs. 1, 2, 10; Table 1): when CAS peaks against when RA does,
    and the order of CAS at the under-fitted, best and last checkpoints of Fig. 2."""
    run = locate(train)
    if run is None:
        return []
    r = evidence.reading(run, "test")
    under = readings.checkpoint(run, readings.underfitted_epoch(run))
    best, last = r.best, r.last
    falls = best["cas"] > last["cas"]
    order = ("rises to the best checkpoint and falls after it, as in the paper's Fig. 2"
             if under.cas < best["cas"] and falls else
             "is already as high or higher at the under-fitted checkpoint than at the best "
             "one, the opposite of the paper's Fig. 2 (epoch 70 below epoch 108)"
             + (", and falls after the best" if falls else ", and does not fall after it")
             if under.cas >= best["cas"] else
             "rises to the best checkpoint but does not fall after it")
    return [
        f"CAS peaks at epoch {r.cas_peak_epoch} ({max(x['cas'] for x in r.rows):.2f}), test RA at "
        f"epoch {best['epoch']} ({best['test_robust_acc']:.1%}); in the paper the best epoch is "
        f"{paper.BEST_EPOCH_PGD_AT} of {paper.EPOCHS}, and CAS is higher there than at epochs "
        f"{paper.TABLE1_EARLY_EPOCH}, {paper.UNDERFITTED_EPOCH} and {paper.EPOCHS}.",
        f"CAS at the under-fitted checkpoint (epoch {under.epoch}, {under.cas:.2f}), the best "
        f"(epoch {best['epoch']}, {best['cas']:.2f}) and the last (epoch {last['epoch']}, "
        f"{last['cas']:.2f}): CAS {order}.",
        f"Over the run, {_fall(run)}.",
    ]


def soft_labels(locate: Locator, teacher: Config, kd_lambda: float, kd_temperature: float,
                kd_form: str = "eq3") -> list[str]:
    """KD-AT (Fig. 3): its CAS gap and best RA against its teacher's PGD-AT run."""
    at, kd = kd_pair(locate, teacher, kd_lambda, kd_temperature, kd_form)
    if kd is None:
        return []
    a, k = evidence.reading(at, "test"), evidence.reading(kd, "test")
    return [
        f"KD-AT ({kd_form}) loses {k.cas_gap:.2f} CAS from its best checkpoint (epoch "
        f"{k.best['epoch']}) to its last, PGD-AT {a.cas_gap:.2f}: KD-AT's gap is "
        f"{_cmp(k.cas_gap, a.cas_gap)} PGD-AT's"
        + (", and beyond both bootstrap intervals, where the paper sees no significant gap."
           if evidence.beyond_intervals(k.best, k.last) else
           ", and within the bootstrap intervals, as the paper's no significant gap."),
        f"Best test RA: KD-AT {k.best['test_robust_acc']:.1%}, PGD-AT "
        f"{a.best['test_robust_acc']:.1%} (the paper: soft labels improve robustness); RA "
        f"falls {100 * k.ra_gap:.1f} points after KD-AT's best and {100 * a.ra_gap:.1f} after "
        "PGD-AT's.",
    ]


def perturbation_bound(locate: Locator, train: Config, eps_list: Sequence[float]) -> list[str]:
    """Fig. 4 and Table 1 over ε: where the gaps peak, and best CAS against ε."""
    runs = {e: locate(train, eps=e) for e in eps_list}
    if any(r is None for r in runs.values()):
        return []
    reads = {e: evidence.reading(r, "test") for e, r in runs.items()}
    peak_cas = max(reads, key=lambda e: reads[e].cas_gap)
    peak_ra = max(reads, key=lambda e: reads[e].ra_gap)
    best = [reads[e].best["cas"] for e in eps_list]
    rho = float(stats.spearmanr(list(eps_list), best)[0]) if len(best) > 2 else 0.0
    trend = ("rises" if all(b > a for a, b in zip(best, best[1:])) else
             "falls" if all(b < a for a, b in zip(best, best[1:])) else
             f"tends to rise (Spearman ρ {rho:.2f})" if rho >= 0.5 else
             f"tends to fall (Spearman ρ {rho:.2f})" if rho <= -0.5 else "shows no trend")
    t1 = [v[2] for v in paper.TABLE1.values()]
    return [
        f"The CAS gap is largest at ε {peak_cas:g} ({reads[peak_cas].cas_gap:.2f}) and the RA "
        f"gap at ε {peak_ra:g} ({100 * reads[peak_ra].ra_gap:.1f} points)"
        + (", the same ε." if peak_cas == peak_ra else ", not the same ε."),
        f"Best CAS {trend} with ε (" + ", ".join(f"{b:.2f}" for b in best) + " at ε "
        + ", ".join(f"{e:g}" for e in eps_list) + f"); in the paper's Table 1 it falls ("
        + ", ".join(f"{v:g}" for v in t1) + " at " + ", ".join(paper.TABLE1) + ").",
        "Best epochs per ε: " + ", ".join(f"{reads[e].best['epoch']}" for e in eps_list)
        + "; an earlier best leaves more epochs for both gaps to grow.",
    ]


def across(locate: Locator, rows: Mapping[str, Config]) -> list[str]:
    """Figs. 5-6: the best-to-last CAS gap under each named setting."""
    out = []
    for label, cfg in rows.items():
        run = locate(cfg)
        if run is None:
            continue
        r = evidence.reading(run, "test")
        out.append(f"{label}: CAS {r.best['cas']:.2f} at the best (epoch {r.best['epoch']}) vs "
                   f"{r.last['cas']:.2f} at the last, RA {r.best['test_robust_acc']:.1%} vs "
                   f"{r.last['test_robust_acc']:.1%}; {_fall(run)}.")
    return out


def fast_at(locate: Locator, train: Config, fast_eps: float, fast_alpha: float,
            epochs: int) -> list[str]:
    """Fig. 7: whether fast AT collapsed, and CAS at its best and at its end."""
    knobs = dict(fast_eps=fast_eps, fast_alpha=fast_alpha, epochs=epochs)
    run = locate(train, **page_runs.fast_at(knobs))
    if run is None:
        return []
    rows = run.metrics()
    best = max(rows, key=lambda x: x["test_robust_acc"])
    co = diagnostics.collapse_epoch(run)
    what = (f"collapses at epoch {co} (test RA at most a quarter of its best)" if co else
            f"never collapses: its lowest later test RA is "
            f"{min(x['test_robust_acc'] for x in rows if x['epoch'] >= best['epoch']):.1%}, "
            f"more than a quarter of its best")
    return [f"Fast AT at ε {fast_eps:g}, step {fast_alpha:g}: test RA peaks at "
            f"{best['test_robust_acc']:.1%} (epoch {best['epoch']}) and {what}; CAS "
            f"{best['cas']:.2f} at the best, {rows[-1]['cas']:.2f} at the end (the paper: "
            f"{paper.FAST_AT_CAS_AFTER_CO} after catastrophic overfitting)."]


def standard(locate: Locator, train: Config) -> list[str]:
    """Fig. 9: standard training's clean CAS against PGD-AT's at its best."""
    std, at = locate(train, objective="standard"), locate(train)
    if std is None or at is None:
        return []
    s = [x["cas_clean"] for x in std.metrics()]
    a = evidence.reading(at, "test").best["cas"]
    half = s[len(s) // 2:]
    return [f"Standard training's clean CAS ends at {s[-1]:.2f} and stays between "
            f"{min(half):.2f} and {max(half):.2f} over the second half; PGD-AT's at its best "
            f"checkpoint is {a:.2f}, so standard training's is {a / s[-1]:.1f}x lower "
            f"(the paper: AT's CAS generally above {paper.AT_CAS_TYPICAL_LOWER_BOUND}, "
            "standard training's well below)."]
