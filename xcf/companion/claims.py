"""The rule book: the paper's five empirical claims, decided from run folders.

One job: *does the evidence support each claim?*  Every page that states a verdict calls
these rules (the section pages on their own runs, the Claims page on the whole study), so
a claim is decided one way everywhere.  Each rule has a **premise**, the situation the
claim speaks about; where the premise did not occur the verdict is *not tested*, never
*does not hold*.  Rules over seeds decide each seed and say how many agree:

- *holds*: every tested seed agrees; *does not hold*: none does; *mixed*: some do;
- *inconclusive* (C3 only): a positive but not significant rank correlation;
- *not tested*: no run met the premise; *not run*: not every run the claim names is
  there yet (:func:`xcf.companion.claim_verdicts.decide` says how many are).

The claims (Wei, Guo & Wang, ICML 2025):

- **C1** (Sec. 3.2, Fig. 2, Table 1): in PGD-AT, CAS at the best checkpoint exceeds CAS
  at the last one, beyond the bootstrap 95% intervals of both (``cas_ci95``; a point
  comparison where a run has none).  Premise: the run robust-overfits (RA best > RA last).
  :func:`c1` also decides the rows across norms and architectures (Figs. 5-6).
- **C2** (Sec. 3.3, Fig. 3): KD-AT's best-last CAS gap is smaller than PGD-AT's, seed by
  seed (the teacher's run).  Premise: PGD-AT's gap is positive.
- **C3** (Secs. 3.3, 5.1, Fig. 4, Table 1): over ε, the CAS gap moves with the RA gap:
  Spearman's rank correlation over (ε, seed) points, seeds pooled; premise: at least
  :data:`C3_MIN_EPS` values of ε and an RA gap that varies.  :func:`c3_large_eps` checks
  Table 1's pattern above the ε of the largest RA gap: early CAS, best CAS and the gap
  all fall with ε.
- **C4** (Sec. 5.2, Fig. 7): fast AT loses CAS at catastrophic overfitting (test RA at
  most :data:`xcf.companion.diagnostics.COLLAPSE_FRACTION` of its best at a later epoch).
  Premise: a collapse of a run that had learned robustness (best RA at least
  :data:`C4_CHANCE_MULTIPLE` times chance, 1/K): a model no better than guessing under
  attack has nothing to forget.  Every setting tried is listed
  (:func:`xcf.companion.claims_page.fast_at_table`).
- **C5** (Sec. 5.4, Fig. 9): standard training's clean CAS (last epoch) is below
  PGD-AT's (best checkpoint) and flat over the second half of training (its linear trend
  changes it by at most :data:`C5_FLAT` of its mean).

Each part's statement and the paper's numbers are :mod:`xcf.companion.claim_statements`;
:mod:`xcf.companion.claim_verdicts` applies the rules to the study's runs (the Claims page)
and to a section page's own runs.
"""
from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass
from typing import Any, Mapping, Optional, Sequence

import numpy as np
from scipy import stats

from xcf.companion import diagnostics, evidence, paired, paper, readings
from xcf.companion.claim_statements import PAPER, STATEMENT

__all__ = ["VERDICTS", "C3_MIN_EPS", "C3_ALPHA", "C4_CHANCE_MULTIPLE", "C5_FLAT", "Verdict",
           "tally", "c1", "c1_rise", "c1_specificity", "c2", "c3", "c3_large_eps", "c4",
           "fast_at_outcome", "c5"]

TEST = ("paired t interval (95%) of per-seed differences over the seeds that meet the "
        "premise, exact sign test beside it; needs ≥ 3 seeds")
C2_PARTS = (("", "C2"), (" own gap", "C2 own gap"), (" robustness", "C2 robustness"))
VERDICTS = ("holds", "mixed", "inconclusive", "does not hold", "not specific", "not tested",
            "not run")
C3_MIN_EPS = 6     # ε values C3 needs, from small to large
C3_ALPHA = 0.05    # significance of the rank correlation
C4_CHANCE_MULTIPLE = 2.0  # C4's premise: best RA >= twice chance (2/K), robustness learned
C5_FLAT = 0.10     # "flat": the second half's linear trend moves clean CAS <= 10% of its mean


@dataclass
class Verdict:
    """One claim decided: the verdict, our numbers, the premise and how it fared, how
    many seeds (or runs) agree of those tested, and what the paper reports."""

    claim: str
    statement: str
    verdict: str
    ours: str
    premise: str
    paper: str
    agree: Optional[int] = None
    tested: Optional[int] = None
    test: str = ""  # the statistical test the verdict comes from

    def row(self) -> dict:
        return asdict(self)

    def say(self, profile: Optional[str] = None) -> str:
        """The verdict as a page prints it: claim, statement, verdict, our numbers,
        the premise, and the paper's numbers."""
        at = f" at the {profile} profile" if profile else ""
        return (f"{self.claim}, {self.statement}: {self.verdict}{at}\n  ours: {self.ours}\n"
                f"  premise: {self.premise}\n  paper: {self.paper}")


def tally(outcomes: Sequence[Optional[bool]]) -> tuple[str, int, int]:
    """``(verdict, agree, tested)`` of per-seed outcomes (``None``: premise not met)."""
    if not outcomes:
        return "not run", 0, 0
    tested = [o for o in outcomes if o is not None]
    agree = sum(bool(o) for o in tested)
    if not tested:
        return "not tested", 0, 0
    verdict = "holds" if agree == len(tested) else "does not hold" if agree == 0 else "mixed"
    return verdict, agree, len(tested)


def _verdict(claim: str, verdict: str, ours: str, premise: str, agree=None, tested=None,
             statement: Optional[str] = None, paper_key: Optional[str] = None) -> Verdict:
    return Verdict(claim, statement or STATEMENT[claim], verdict, ours, premise,
                   PAPER[paper_key or claim], agree, tested)


def _ms(values: Sequence[float], scale: float = 1.0, digits: int = 2) -> str:
    v = [scale * x for x in values]
    if len(v) == 1:
        return f"{v[0]:.{digits}f}"
    return f"{statistics.mean(v):.{digits}f} ± {statistics.stdev(v):.{digits}f}"


def _ci(row: Mapping) -> Optional[tuple[float, float]]:
    ci = row.get("cas_ci95")
    return (float(ci[0]), float(ci[1])) if ci else None


# =========================================================================== the rules

def _over_seeds(claim: str, statement: str, p: paired.Paired, ours: str, premise: str,
                paper_key: str, test: str, agree: Optional[int] = None) -> Verdict:
    """A verdict read off the paired interval (:func:`xcf.companion.paired.verdict_of`)."""
    return Verdict(claim, statement, paired.verdict_of(p), ours, premise, PAPER[paper_key],
                   p.positive if agree is None else agree, p.n, test)


def _readings(runs: Sequence[Any], select: str) -> list[evidence.Reading]:
    return [evidence.reading(run, select) for run in runs]


def c1(runs: Sequence[Any], claim: str = "C1 fall", label: Optional[str] = None,
       select: str = "holdout") -> Verdict:
    """C1's fall on PGD-AT runs (one per seed): CAS(best) - CAS(last), paired over the
    seeds whose run robust-overfits (:func:`xcf.companion.diagnostics.overfitting`: >= 3 points on
    5-epoch means while train RA rises; a best epoch before the last is not enough, since
    the best is the argmax of test RA).  The best epoch is chosen on held-out images
    (``select``; ``"test"`` for the paper's rule).  Per seed, whether the gap is beyond
    both bootstrap intervals is counted beside the interval."""
    statement = STATEMENT["C1 fall"] + (f", {label}" if label else "")
    paper_key = "C1" if label is None else "C1 across"
    if select == "test":
        statement += " (best chosen on test RA, as the paper)"
    if not runs:
        return _verdict(claim, "not run", "-", "-", statement=statement, paper_key=paper_key)
    rs = _readings(runs, select)
    tested = [r for r in rs if r.overfits]
    p = paired.paired([r.cas_gap for r in tested])
    clear = sum(evidence.beyond_intervals(r.best, r.last) for r in tested)
    n = len(rs)
    ours = (f"CAS best − last {p.text()}; beyond both bootstrap intervals in {clear}/{p.n}; "
            f"CAS best {_ms([r.best['cas'] for r in rs])} (epoch "
            f"{_ms([r.best['epoch'] for r in rs], digits=0)}) vs last "
            f"{_ms([r.last['cas'] for r in rs])}; test RA best "
            f"{_ms([r.best['test_robust_acc'] for r in rs], 100, 1)}% vs last "
            f"{_ms([r.last['test_robust_acc'] for r in rs], 100, 1)}%")
    premise = (f"robust overfitting (smoothed test RA falls ≥ "
               f"{100 * diagnostics.OVERFIT_DROP:.0f} pts) in {p.n}/{n} seeds (falls "
               + ", ".join(f"{100 * r.ra_drop:.1f}" for r in rs) + " pts)")
    return _over_seeds(claim, statement, p, ours, premise, paper_key, TEST, clear)


def c1_rise(runs: Sequence[Any], position: str = "table1", select: str = "holdout",
            setting: Optional[str] = None) -> Verdict:
    """C1's rising half: CAS at the under-fitted checkpoint is below CAS at the best one,
    paired over seeds.  ``position``: Table 1's epoch 10 of 200 (``table1``) or Fig. 2's
    epoch 70 of 200 (``fig2``), scaled to the run (:func:`xcf.companion.evidence.paper_epoch`).
    Premise per seed: that epoch comes before the best one.  ``setting``: the label of a
    setting other than the study's, appended to the claim's name."""
    which, of200 = (("early", paper.TABLE1_EARLY_EPOCH) if position == "table1"
                    else ("fig2", paper.UNDERFITTED_EPOCH))
    claim = "C1 rise" + ("" if position == "table1" else " (Fig. 2's epoch)") + (
        f", {setting}" if setting else "")
    statement = f"PGD-AT: CAS(epoch {of200}/200, scaled) < CAS(best)"
    if not runs:
        return _verdict(claim, "not run", "-", "-", statement=statement, paper_key="C1 rise")
    rs = _readings(runs, select)
    tested = [r for r in rs if getattr(r, which)["epoch"] < r.best["epoch"]]
    p = paired.paired([r.best["cas"] - getattr(r, which)["cas"] for r in tested])
    e = getattr(rs[0], which)["epoch"]
    ours = (f"CAS best − epoch {e} {p.text()}; CAS epoch {e} "
            f"{_ms([getattr(r, which)['cas'] for r in rs])} vs best "
            f"{_ms([r.best['cas'] for r in rs])}; CAS peaks at epoch "
            + ", ".join(str(r.cas_peak_epoch) for r in rs) + ", test RA at "
            + ", ".join(str(r.best["epoch"]) for r in rs))
    premise = f"epoch {e} before the best epoch in {p.n}/{len(rs)} seeds"
    return _over_seeds(claim, statement, p, ours, premise, "C1 rise", TEST)


def c1_specificity(runs: Sequence[Any], select: str = "holdout",
                   setting: Optional[str] = None) -> Verdict:
    """C1's control: does the fall of CAS belong to robust overfitting, or only to time?
    Per seed that robust-overfits, the partial rank correlation of CAS and test RA after
    the best epoch with the epoch held fixed (:func:`xcf.companion.evidence.tracking_after_best`);
    over seeds, the t interval of those correlations.  Within-run, because the matched
    alternative (runs that do not robust-overfit, same model and schedule) would change
    the data or augmentation and with them CAS's level.  *not specific*: CAS does not
    follow RA beyond the common trend in time (mean correlation <= 0).  ``setting``: as
    for :func:`c1_rise`."""
    claim = "C1 specificity" + (f", {setting}" if setting else "")
    statement = STATEMENT["C1 specificity"]
    if not runs:
        return _verdict(claim, "not run", "-", "-", paper_key="C1")
    rs = _readings(runs, select)
    rhos = [evidence.tracking_after_best(r) for r in rs if r.overfits]
    p = paired.paired([v for v in rhos if v is not None])
    verdict = paired.verdict_of(p)
    if verdict in ("does not hold", "inconclusive") and p.n >= paired.MIN_SEEDS and p.mean <= 0:
        verdict = "not specific"
    ours = (f"partial rank correlation of CAS and test RA after the best epoch, epoch held "
            f"fixed: {p.text()}")
    premise = (f"robust overfitting and ≥ {evidence.MIN_AFTER_BEST} epochs after the best "
               f"in {p.n}/{len(rs)} seeds")
    return Verdict(claim, statement, verdict, ours, premise, PAPER["C1"], p.positive, p.n,
                   TEST.replace("differences", "correlations"))


def c2(pairs: Sequence[tuple[Any, Any]], form: Optional[str] = None,
       select: str = "holdout") -> list[Verdict]:
    """C2 on ``(PGD-AT run, its KD-AT student)`` pairs, one per seed, three parts:

    - *relative*: PGD-AT's CAS gap − KD-AT's, paired over seeds (premise: PGD-AT's gap is
      positive in the seed);
    - *own gap*: KD-AT's own best − last CAS gap (the paper: no significant gap): holds
      when its interval contains 0 and the gap is beyond both bootstrap intervals in at
      most half of the seeds; an interval above 0, or such a gap in every seed, refutes;
    - *robustness*: KD-AT's best test RA − PGD-AT's (the paper: soft labels help)."""
    tag = f" ({form})" if form else ""
    statement = (lambda what: f"{STATEMENT[what]}" + (f", KD in the {form} form" if form else ""))
    if not pairs:
        return [_verdict(f"C2{tag}{part}", "not run", "-", "-", statement=statement(key),
                         paper_key=key) for part, key in C2_PARTS]
    at = _readings([a for a, _ in pairs], select)
    kd = _readings([k for _, k in pairs], select)
    n = len(pairs)
    tested = [(a, k) for a, k in zip(at, kd) if a.cas_gap > 0]
    rel = paired.paired([a.cas_gap - k.cas_gap for a, k in tested])
    out = [_over_seeds(
        f"C2{tag}", statement("C2"), rel,
        f"gap PGD-AT − KD-AT {rel.text()}; KD-AT's gap {_ms([k.cas_gap for k in kd])} vs "
        f"PGD-AT's {_ms([a.cas_gap for a in at])}; test RA drop KD-AT "
        f"{_ms([k.ra_gap for k in kd], 100, 1)} vs PGD-AT "
        f"{_ms([a.ra_gap for a in at], 100, 1)} pts",
        f"PGD-AT's CAS gap > 0 in {rel.n}/{n} seeds", "C2", TEST)]
    own = paired.paired([k.cas_gap for k in kd])
    clear = sum(evidence.beyond_intervals(k.best, k.last) for k in kd)
    # "No significant gap": a gap beyond the intervals in every seed, or an interval
    # above 0, refutes it; an interval around 0 with such gaps in at most half of the
    # seeds supports it (absence of a gap is never read from too few seeds).
    if own.n < paired.MIN_SEEDS:
        v = "inconclusive"
    elif own.ci[0] > 0 or clear == n:
        v = "does not hold"
    else:
        v = "holds" if clear <= n / 2 else "inconclusive"
    out.append(Verdict(f"C2{tag} own gap", statement("C2 own gap"), v,
                       f"KD-AT's CAS best − last {own.text()}; beyond both bootstrap intervals "
                       f"in {clear}/{n} seeds", "none (KD-AT runs exist)", PAPER["C2 own gap"],
                       n - clear, n, TEST + "; holds when it contains 0 and the gap is "
                       "beyond the bootstrap intervals in at most half of the seeds"))
    rob = paired.paired([k.best["test_robust_acc"] - a.best["test_robust_acc"]
                         for a, k in zip(at, kd)])
    out.append(_over_seeds(
        f"C2{tag} robustness", statement("C2 robustness"), rob,
        f"best test RA KD-AT − PGD-AT {rob.text(1, 100, ' pts')}; KD-AT "
        f"{_ms([k.best['test_robust_acc'] for k in kd], 100, 1)}% vs PGD-AT "
        f"{_ms([a.best['test_robust_acc'] for a in at], 100, 1)}%",
        "none (both runs exist)", "C2 robustness", TEST))
    return out


def c3(eps_runs: Sequence[tuple[float, int, Any]]) -> Verdict:
    """C3 on ``(ε, seed, run)`` triples: Spearman's ρ between CAS gap and RA gap over all
    points (seeds pooled); per seed, the sign of ρ over that seed's ε values."""
    if not eps_runs:
        return _verdict("C3", "not run", "-", "-")
    pts = evidence.eps_points(eps_runs)
    eps_values = sorted({p["eps"] for p in pts})
    ra = [p["ra_gap"] for p in pts]
    by_eps = ", ".join(
        f"ε {e:g}: CAS gap {_ms([p['cas_gap'] for p in pts if p['eps'] == e])}, RA gap "
        f"{_ms([p['ra_gap'] for p in pts if p['eps'] == e], 100, 1)} pts" for e in eps_values)
    premise = (f"{len(eps_values)} ε values (needs ≥ {C3_MIN_EPS}); RA gap "
               f"{'varies' if np.ptp(ra) > 0 else 'constant'}")
    if len(eps_values) < C3_MIN_EPS or np.ptp(ra) == 0:
        return _verdict("C3", "not tested", by_eps, premise)
    raw_rho, raw_p = stats.spearmanr([q["cas_gap"] for q in pts], ra)
    # The best epoch's position drives both gaps (an early best leaves more epochs to
    # fall), so the verdict reads the relation with that position held fixed.
    rho, p = paired.partial_spearman([q["cas_gap"] for q in pts], ra,
                                     [q["best_epoch"] for q in pts])
    seeds = sorted({q["seed"] for q in pts})
    per_seed = []
    for s in seeds:
        mine = [q for q in pts if q["seed"] == s]
        if len(mine) >= 3 and np.ptp([q["ra_gap"] for q in mine]) > 0:
            r, _ = stats.spearmanr([q["cas_gap"] for q in mine], [q["ra_gap"] for q in mine])
            per_seed.append(bool(r > 0))
    agree = sum(per_seed)
    verdict = ("holds" if rho > 0 and p < C3_ALPHA else
               "does not hold" if not rho > 0 else "inconclusive")
    ours = (f"partial Spearman ρ = {rho:.2f} (p = {p:.3f}, {len(pts)} points) with the best "
            f"epoch held fixed; without it ρ = {raw_rho:.2f} (p = {raw_p:.3f}); positive in "
            f"{agree}/{len(per_seed)} seeds. {by_eps}")
    v = _verdict("C3", verdict, ours, premise, agree, len(per_seed))
    v.test = ("partial Spearman rank correlation over (ε, seed) points, the best epoch's "
              "rank held fixed; t test with n − 3 df at 5%")
    return v


def c3_large_eps(eps_runs: Sequence[tuple[float, int, Any]],
                 early_epoch: Optional[int] = None) -> Verdict:
    """Table 1's large-ε pattern: for the ε values from the one with the largest mean RA
    gap upwards, the mean early CAS (Table 1's epoch 10 of 200, scaled:
    :func:`xcf.companion.evidence.paper_epoch`, the one definition of every page; ``early_epoch``
    only names it and must agree), the mean best CAS and the mean CAS gap each fall with
    ε (strictly, from one ε to the next).  The verdict names the parts that fail."""
    if not eps_runs:
        return _verdict("C3 large ε", "not run", "-", "-")
    pts = evidence.eps_points(eps_runs)
    eps_values = sorted({p["eps"] for p in pts})
    mean = lambda key, e: statistics.mean(q[key] for q in pts if q["eps"] == e)  # noqa: E731
    peak = max(eps_values, key=lambda e: mean("ra_gap", e))
    large = [e for e in eps_values if e >= peak]
    premise = (f"{len(large)} ε values from the largest RA gap (ε {peak:g}) up "
               "(needs ≥ 2)")
    if len(large) < 2:
        return _verdict("C3 large ε", "not tested", "-", premise)
    early = pts[0]["early_epoch"]
    if early_epoch is not None and early_epoch != early:
        raise ValueError(f"early_epoch={early_epoch}: the under-fitted epoch is Table 1's "
                         f"10 of 200 scaled to the run, epoch {early}; set the page's "
                         f"early_epoch to {early}")
    parts = {}
    for key, what in (("cas_early", "early CAS (epoch {early_epoch})"),
                      ("cas_best", "best CAS"), ("cas_gap", "CAS gap")):
        what = what.replace("{early_epoch}", str(early))
        m = [mean(key, e) for e in large]
        parts[what] = (all(b < a for a, b in zip(m, m[1:])), m)
    agree = sum(ok for ok, _ in parts.values())
    verdict = "holds" if agree == 3 else "does not hold" if agree == 0 else "mixed"
    failed = [what for what, (ok, _) in parts.items() if not ok]
    ours = ("not falling: " + ", ".join(failed) + ". " if failed else "") + "; ".join(
        f"{what} {'falls' if ok else 'does not fall'}: "
                     + ", ".join(f"{v:.2f}" for v in m) for what, (ok, m) in parts.items())
    ours += " (at ε " + ", ".join(f"{e:g}" for e in large) + ")"
    return _verdict("C3 large ε", verdict, ours, premise, agree, 3)


def fast_at_outcome(run) -> dict:
    """One fast-AT run as C4's rule reads it: its best epoch (test RA, CAS), whether it
    learned robustness (best RA >= :data:`C4_CHANCE_MULTIPLE` / K), its lowest later RA,
    and, where it collapsed (:func:`xcf.companion.diagnostics.collapse_epoch`) after learning,
    CAS at the collapse and whether it is below CAS at the best beyond both bootstrap
    intervals (``cas_falls``; ``None`` where the premise failed)."""
    best = readings.checkpoint(run, "best")
    k = best.C.shape[0]
    rows = run.metrics()
    later = [r for r in rows if r["epoch"] > best.epoch]
    low = min(later, key=lambda r: r["test_robust_acc"]) if later else None
    learned = best.robust_acc >= C4_CHANCE_MULTIPLE / k
    co = diagnostics.collapse_epoch(run) if learned else None
    at = readings.row_at(rows, co) if co is not None else None
    return {"best_epoch": best.epoch, "best_ra": best.robust_acc, "best_cas": best.cas,
            "classes": k, "learned": learned,
            "low_epoch": None if low is None else int(low["epoch"]),
            "low_ra": None if low is None else float(low["test_robust_acc"]),
            "last_ra": float(rows[-1]["test_robust_acc"]), "collapse_epoch": co,
            "collapse_ra": None if at is None else float(at["test_robust_acc"]),
            "collapse_cas": None if at is None else float(at["cas"]),
            "cas_falls": None if at is None else  # beyond both bootstrap intervals
            evidence.beyond_intervals(readings.row_at(rows, best.epoch), at)}


def c4(fast_runs: Sequence[tuple[str, Any]]) -> Verdict:
    """C4 on ``(label, run)`` of every fast-AT setting (and seed) tried: in each run
    that learned robustness and then collapsed, CAS at the collapse is below CAS at the
    best checkpoint (:func:`fast_at_outcome`)."""
    if not fast_runs:
        return _verdict("C4", "not run", "-", "-")
    outcomes, lines, unlearned = [], [], 0
    for label, run in fast_runs:
        o = fast_at_outcome(run)
        outcomes.append(o["cas_falls"])
        if not o["learned"]:
            unlearned += 1
            lines.append(f"{label}: no robustness learned (best RA {o['best_ra']:.1%} < "
                         f"{C4_CHANCE_MULTIPLE:g} × chance)")
        elif o["collapse_epoch"] is None:
            lines.append(f"{label}: no collapse (RA {o['best_ra']:.1%} at best, "
                         f"{o['last_ra']:.1%} at the end)")
        else:
            lines.append(f"{label}: CAS {o['best_cas']:.2f} at best (epoch {o['best_epoch']}, "
                         f"RA {o['best_ra']:.1%}) vs {o['collapse_cas']:.2f} at collapse "
                         f"(epoch {o['collapse_epoch']}, RA {o['collapse_ra']:.1%})")
    verdict, agree, tested = tally(outcomes)
    premise = (f"catastrophic overfitting (RA ≤ {diagnostics.COLLAPSE_FRACTION:g} × best "
               f"later) in {tested} of {len(fast_runs)} runs tried")
    if unlearned:
        premise += (f"; {unlearned} learned no robustness (best RA < "
                    f"{C4_CHANCE_MULTIPLE:g} × chance)")
    return _verdict("C4", verdict, "; ".join(lines), premise, agree, tested)


def c5(pairs: Sequence[tuple[Any, Any]]) -> Verdict:
    """C5 on ``(standard run, PGD-AT run)`` pairs, one per seed: PGD-AT's CAS at its best
    checkpoint (held-out selection) − standard training's clean CAS at its last epoch,
    paired over seeds; *holds* when that interval lies above 0 and standard training's
    clean CAS is flat over its second half (its linear trend moves it by at most
    :data:`C5_FLAT` of its mean) in every seed."""
    if not pairs:
        return _verdict("C5", "not run", "-", "-")
    std_cas, at_cas, changes, flat = [], [], [], []
    for std, at in pairs:
        std_cas.append(float(std.metrics()[-1]["cas_clean"]))
        at_cas.append(float(evidence.reading(at).best["cas"]))
        change, level = evidence.second_half_trend(std)
        changes.append(change)
        flat.append(abs(change) <= C5_FLAT * abs(level))
    p = paired.paired([a - s for a, s in zip(at_cas, std_cas)])
    verdict = paired.verdict_of(p)
    if verdict == "holds" and not all(flat):
        verdict = "mixed"
    ours = (f"PGD-AT − standard {p.text()} CAS; standard {_ms(std_cas)} (clean, last epoch) vs "
            f"PGD-AT {_ms(at_cas)} (best); second-half trend {_ms(changes)} CAS, flat (≤ "
            f"{C5_FLAT:.0%} of its mean) in {sum(flat)}/{len(flat)} seeds")
    return Verdict("C5", STATEMENT["C5"], verdict, ours, "none (both runs exist)", PAPER["C5"],
                   p.positive, p.n, TEST + "; and flat in every seed")
