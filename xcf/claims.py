"""The rule book: the paper's five empirical claims, decided from run folders.

One job: *does the evidence support each claim?*  Every page that states a verdict calls
these rules (the section pages on their own runs, the Claims page on the whole study), so
a claim is decided one way everywhere.  Each rule has a **premise**, the situation the
claim speaks about; where the premise did not occur the verdict is *not tested*, never
*does not hold*.  Rules over seeds decide each seed and say how many agree:

- *holds*: every tested seed agrees; *does not hold*: none does; *mixed*: some do;
- *inconclusive* (C3 only): a positive but not significant rank correlation;
- *not tested*: no run met the premise; *not run*: not every run the claim names is
  there yet (:func:`decide` says how many are).

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
  most :data:`xcf.diagnostics.COLLAPSE_FRACTION` of its best at a later epoch).
  Premise: a collapse of a run that had learned robustness (best RA at least
  :data:`C4_CHANCE_MULTIPLE` times chance, 1/K): a model no better than guessing under
  attack has nothing to forget.  Every setting tried is listed (:func:`fast_at_table`).
- **C5** (Sec. 5.4, Fig. 9): standard training's clean CAS (last epoch) is below
  PGD-AT's (best checkpoint) and flat over the second half of training (its linear trend
  changes it by at most :data:`C5_FLAT` of its mean).

:func:`decide` applies them to the runs that :mod:`xcf.study_plan` names.
"""
from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass
from typing import Any, Mapping, Optional, Sequence

import numpy as np
from scipy import stats

from . import diagnostics, paper, studies
from .study_plan import fast_studies, kd_forms, seeds_of

__all__ = ["PAPER", "STATEMENT", "VERDICTS", "C3_MIN_EPS", "C3_ALPHA", "C4_CHANCE_MULTIPLE",
           "C5_FLAT", "Verdict", "tally", "c1", "c2", "c3", "c3_large_eps", "c4",
           "fast_at_outcome", "fast_at_table", "c5", "decide"]

_T1 = paper.TABLE1["8/255"]
_GAPS = paper.table1_cas_gaps()
PAPER = {  # what the paper reports for each claim (CIFAR-10, PreActResNet-18, 200 epochs)
    "C1": f"CAS {_T1[2]} best (epoch {paper.BEST_EPOCH_PGD_AT}) vs {_T1[4]} last; "
          f"RA {_T1[3]}% vs {_T1[5]}% (Table 1, ε = 8/255)",
    "C1 across": "best > last for ℓ2, CIFAR-100, Tiny-ImageNet and DeiT-Ti "
                 "(Figs. 5-6; values only in the figures)",
    "C2": "no significant gap between KD-AT's best and last matrices "
          "(Fig. 3; values only in the figure)",
    "C3": "gap grows from ε = 2/255 to 8/255 (Fig. 4; values only in the figure) and "
          "shrinks at larger ε with the RA gap (Table 1)",
    "C3 large ε": "Table 1, ε " + ", ".join(e.split("/")[0] for e in _GAPS) + "/255: gaps "
                  + ", ".join(f"{g}" for g in _GAPS.values())
                  + "; early and best CAS fall with ε",
    "C4": f"CAS plummets to {paper.FAST_AT_CAS_AFTER_CO} after catastrophic overfitting, "
          "RA near zero (Fig. 7)",
    "C5": "standard training's CAS well below AT's, which is "
          f"'generally > {paper.AT_CAS_TYPICAL_LOWER_BOUND}', and stable (Fig. 9)",
}
STATEMENT = {
    "C1": "PGD-AT: CAS(best) > CAS(last)",
    "C2": "KD-AT's CAS gap < PGD-AT's",
    "C3": "the CAS gap moves with the RA gap over ε",
    "C3 large ε": "at large ε, early CAS, best CAS and the gap fall with ε",
    "C4": "fast AT loses CAS at catastrophic overfitting",
    "C5": "standard training: clean CAS below AT's, flat in the second half",
}
VERDICTS = ("holds", "mixed", "inconclusive", "does not hold", "not tested", "not run")
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

def c1(runs: Sequence[Any], claim: str = "C1", label: Optional[str] = None) -> Verdict:
    """C1 on PGD-AT runs (one per seed): CAS(best) > CAS(last) beyond both bootstrap
    intervals, in each run that robust-overfits."""
    statement = STATEMENT["C1"] + (f", {label}" if label else "")
    paper_key = "C1" if label is None else "C1 across"
    if not runs:
        return _verdict(claim, "not run", "-", "-", statement=statement, paper_key=paper_key)
    outcomes, gaps = [], []
    for run in runs:
        g = studies.best_last_gap(run)
        gaps.append(g)
        rows = run.metrics()
        b, last = studies.row_at(rows, g["best_epoch"]), rows[-1]
        ci_b, ci_l = _ci(b), _ci(last)
        clear = ci_b[0] > ci_l[1] if ci_b and ci_l else g["cas_gap"] > 0
        outcomes.append(clear if g["ra_gap"] > 0 else None)
    verdict, agree, tested = tally(outcomes)
    n = len(runs)
    ours = (f"{n} seed{'s' * (n > 1)}: CAS best {_ms([g['cas_best'] for g in gaps])} vs last "
            f"{_ms([g['cas_last'] for g in gaps])}, gap {_ms([g['cas_gap'] for g in gaps])}; "
            f"RA best {_ms([g['ra_best'] for g in gaps], 100, 1)}% vs last "
            f"{_ms([g['ra_last'] for g in gaps], 100, 1)}%; beyond the 95% intervals in "
            f"{agree}/{tested} tested seeds")
    premise = (f"robust overfitting (RA best > last) in {tested}/{n} seeds")
    return _verdict(claim, verdict, ours, premise, agree, tested, statement, paper_key)


def c2(pairs: Sequence[tuple[Any, Any]], form: Optional[str] = None) -> Verdict:
    """C2 on ``(PGD-AT run, its KD-AT student)`` pairs, one per seed."""
    claim = "C2" + (f" ({form})" if form else "")
    statement = STATEMENT["C2"] + (f", KD in the {form} form" if form else "")
    if not pairs:
        return _verdict(claim, "not run", "-", "-", statement=statement, paper_key="C2")
    g_at = [studies.best_last_gap(at) for at, _ in pairs]
    g_kd = [studies.best_last_gap(kd) for _, kd in pairs]
    outcomes = [(k["cas_gap"] < a["cas_gap"]) if a["cas_gap"] > 0 else None
                for a, k in zip(g_at, g_kd)]
    verdict, agree, tested = tally(outcomes)
    n = len(pairs)
    ours = (f"{n} seed{'s' * (n > 1)}: gap KD-AT {_ms([k['cas_gap'] for k in g_kd])} "
            f"({_ms([k['cas_best'] for k in g_kd])} → {_ms([k['cas_last'] for k in g_kd])}) vs "
            f"PGD-AT {_ms([a['cas_gap'] for a in g_at])}; RA drop KD-AT "
            f"{_ms([k['ra_gap'] for k in g_kd], 100, 1)} vs PGD-AT "
            f"{_ms([a['ra_gap'] for a in g_at], 100, 1)} points; smaller in {agree}/{tested}")
    premise = f"PGD-AT's CAS gap > 0 in {tested}/{n} seeds"
    return _verdict(claim, verdict, ours, premise, agree, tested, statement, "C2")


def _eps_points(eps_runs: Sequence[tuple[float, int, Any]]) -> list[dict]:
    pts = []
    for eps, seed, run in eps_runs:
        g = studies.best_last_gap(run)
        pts.append({"eps": float(eps), "seed": seed, "cas_gap": g["cas_gap"],
                    "ra_gap": g["ra_gap"], "run": run})
    return pts


def c3(eps_runs: Sequence[tuple[float, int, Any]]) -> Verdict:
    """C3 on ``(ε, seed, run)`` triples: Spearman's ρ between CAS gap and RA gap over all
    points (seeds pooled); per seed, the sign of ρ over that seed's ε values."""
    if not eps_runs:
        return _verdict("C3", "not run", "-", "-")
    pts = _eps_points(eps_runs)
    eps_values = sorted({p["eps"] for p in pts})
    ra = [p["ra_gap"] for p in pts]
    by_eps = ", ".join(
        f"ε {e:g}: CAS gap {_ms([p['cas_gap'] for p in pts if p['eps'] == e])}, RA gap "
        f"{_ms([p['ra_gap'] for p in pts if p['eps'] == e], 100, 1)} pts" for e in eps_values)
    premise = (f"{len(eps_values)} ε values (needs ≥ {C3_MIN_EPS}); RA gap "
               f"{'varies' if np.ptp(ra) > 0 else 'constant'}")
    if len(eps_values) < C3_MIN_EPS or np.ptp(ra) == 0:
        return _verdict("C3", "not tested", by_eps, premise)
    rho, p = stats.spearmanr([q["cas_gap"] for q in pts], ra)
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
    ours = (f"Spearman ρ = {rho:.2f} (p = {p:.3f}, {len(pts)} points); positive in "
            f"{agree}/{len(per_seed)} seeds. {by_eps}")
    return _verdict("C3", verdict, ours, premise, agree, len(per_seed))


def c3_large_eps(eps_runs: Sequence[tuple[float, int, Any]], early_epoch: int) -> Verdict:
    """Table 1's large-ε pattern: for the ε values from the one with the largest mean RA
    gap upwards, the mean early CAS (at ``early_epoch``), the mean best CAS and the mean
    CAS gap each fall with ε (strictly, from one ε to the next)."""
    if not eps_runs:
        return _verdict("C3 large ε", "not run", "-", "-")
    pts = _eps_points(eps_runs)
    eps_values = sorted({p["eps"] for p in pts})
    mean = lambda key, e: statistics.mean(q[key] for q in pts if q["eps"] == e)  # noqa: E731
    peak = max(eps_values, key=lambda e: mean("ra_gap", e))
    large = [e for e in eps_values if e >= peak]
    premise = (f"{len(large)} ε values from the largest RA gap (ε {peak:g}) up "
               "(needs ≥ 2)")
    if len(large) < 2:
        return _verdict("C3 large ε", "not tested", "-", premise)
    for q in pts:
        rows = q["run"].metrics()
        q["cas_early"] = studies.row_at(rows, min(early_epoch, rows[-1]["epoch"]))["cas"]
        q["cas_best"] = studies.best_last_gap(q["run"])["cas_best"]
    parts = {}
    for key, what in (("cas_early", f"early CAS (epoch {early_epoch})"),
                      ("cas_best", "best CAS"), ("cas_gap", "CAS gap")):
        m = [mean(key, e) for e in large]
        parts[what] = (all(b < a for a, b in zip(m, m[1:])), m)
    agree = sum(ok for ok, _ in parts.values())
    verdict = "holds" if agree == 3 else "does not hold" if agree == 0 else "mixed"
    ours = "; ".join(f"{what} {'falls' if ok else 'does not fall'}: "
                     + ", ".join(f"{v:.2f}" for v in m) for what, (ok, m) in parts.items())
    ours += " (at ε " + ", ".join(f"{e:g}" for e in large) + ")"
    return _verdict("C3 large ε", verdict, ours, premise, agree, 3)


def fast_at_outcome(run) -> dict:
    """One fast-AT run as C4's rule reads it: its best epoch (test RA, CAS), whether it
    learned robustness (best RA >= :data:`C4_CHANCE_MULTIPLE` / K), its lowest later RA,
    and, where it collapsed (:func:`xcf.diagnostics.collapse_epoch`) after learning,
    CAS at the collapse and whether it is below CAS at the best (``cas_falls``; ``None``
    where the premise failed)."""
    best = studies.checkpoint(run, "best")
    k = best.C.shape[0]
    rows = run.metrics()
    later = [r for r in rows if r["epoch"] > best.epoch]
    low = min(later, key=lambda r: r["test_robust_acc"]) if later else None
    learned = best.robust_acc >= C4_CHANCE_MULTIPLE / k
    co = diagnostics.collapse_epoch(run) if learned else None
    at = studies.row_at(rows, co) if co is not None else None
    return {"best_epoch": best.epoch, "best_ra": best.robust_acc, "best_cas": best.cas,
            "classes": k, "learned": learned,
            "low_epoch": None if low is None else int(low["epoch"]),
            "low_ra": None if low is None else float(low["test_robust_acc"]),
            "last_ra": float(rows[-1]["test_robust_acc"]), "collapse_epoch": co,
            "collapse_ra": None if at is None else float(at["test_robust_acc"]),
            "collapse_cas": None if at is None else float(at["cas"]),
            "cas_falls": None if at is None else bool(at["cas"] < best.cas)}


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


def fast_at_table(fast_runs: Sequence[tuple[str, Any]]) -> list[dict]:
    """One row per fast-AT run tried (``(label, run)``, as :func:`c4`): the numbers its
    rule reads, for the Claims page's table of settings."""
    pct = lambda v: "-" if v is None else f"{v:.1%}"  # noqa: E731
    rows = []
    for label, run in fast_runs:
        o = fast_at_outcome(run)
        co = o["collapse_epoch"]
        rows.append({
            "setting": label,
            "best RA (epoch)": f"{o['best_ra']:.1%} ({o['best_epoch']})",
            "learned robustness": "yes" if o["learned"] else
                                  f"no (< {C4_CHANCE_MULTIPLE:g}/{o['classes']})",
            "lowest later RA (epoch)": "-" if o["low_ra"] is None
                                       else f"{o['low_ra']:.1%} ({o['low_epoch']})",
            "collapse (epoch)": "-" if co is None else str(co),
            "CAS best → collapse": "-" if co is None
                                   else f"{o['best_cas']:.2f} → {o['collapse_cas']:.2f}",
            "last RA": pct(o["last_ra"]),
        })
    return rows


def _second_half_change(run) -> tuple[float, float]:
    """(change of clean CAS over the second half by its linear trend, its mean there)."""
    rows = run.metrics()
    half = rows[len(rows) // 2:]
    e = np.array([r["epoch"] for r in half], dtype=float)
    v = np.array([r["cas_clean"] for r in half], dtype=float)
    if len(half) < 2:
        return 0.0, float(v.mean())
    slope = np.polyfit(e, v, 1)[0]
    return float(slope * (e[-1] - e[0])), float(v.mean())


def c5(pairs: Sequence[tuple[Any, Any]]) -> Verdict:
    """C5 on ``(standard run, PGD-AT run)`` pairs, one per seed."""
    if not pairs:
        return _verdict("C5", "not run", "-", "-")
    outcomes, std_cas, at_cas, changes = [], [], [], []
    for std, at in pairs:
        s = float(std.metrics()[-1]["cas_clean"])
        a = studies.checkpoint(at, "best").cas
        change, level = _second_half_change(std)
        flat = abs(change) <= C5_FLAT * abs(level)
        outcomes.append(bool(s < a and flat))
        std_cas.append(s)
        at_cas.append(a)
        changes.append(change)
    verdict, agree, tested = tally(outcomes)
    n = len(pairs)
    ours = (f"{n} seed{'s' * (n > 1)}: standard {_ms(std_cas)} (clean, last epoch) vs PGD-AT "
            f"{_ms(at_cas)} (best); second-half trend {_ms(changes)} CAS "
            f"(flat: ≤ {C5_FLAT:.0%} of its mean); both in {agree}/{tested}")
    return _verdict("C5", verdict, ours, "none (both runs exist)", agree, tested)


# =========================================================================== the study

def decide(found: Mapping[str, Any], P: Mapping[str, Any]) -> list[dict]:
    """One row per claim (:meth:`Verdict.row`) from the runs of :mod:`xcf.study_plan`'s
    names in ``found``.  A claim is decided only once every run it names is there; until
    then it reads *not run* with the count of its runs found (a study trained in pieces
    never shows a verdict from part of its seeds or ε values)."""
    out: list[Verdict] = []

    def rule(verdict: Verdict, names: Sequence[str], also: Sequence[str] = ()) -> None:
        """``names``: the claim's own runs (counted); ``also``: C1 runs it compares with."""
        missing = [n for n in names if n not in found]
        if missing or any(n not in found for n in also):
            n = len(names)
            verdict = Verdict(verdict.claim, verdict.statement, "not run",
                              f"{n - len(missing)} of {n} runs found", "-", verdict.paper)
        out.append(verdict)

    get = found.get
    c1_names = {s: f"C1 seed {s}" for s in P["seeds"]}
    c1_runs = {s: get(name) for s, name in c1_names.items()}
    rule(c1([r for r in c1_runs.values() if r is not None]), list(c1_names.values()))
    for row in P.get("across", []):
        names = [f"C1 {row['label']} seed {s}" for s in seeds_of(P, "across")]
        runs = [get(n) for n in names]
        rule(c1([r for r in runs if r is not None], claim=f"C1 {row['label']}",
                label=row["label"]), names)
    forms = kd_forms(P)
    for form in forms:
        seeds = seeds_of(P, "kd")
        names = [f"C2 KD-AT {form} seed {s}" for s in seeds]
        pairs = [(c1_runs.get(s), get(n)) for s, n in zip(seeds, names)]
        rule(c2([(a, k) for a, k in pairs if a is not None and k is not None],
                form=form if len(forms) > 1 else None),
             names, [c1_names[s] for s in seeds if s in c1_names])
    eps_names = [(e, s, f"C3 eps {e:g} seed {s}") for e in P.get("eps_list", [])
                 for s in seeds_of(P, "eps")]
    eps_runs = [(e, s, get(n)) for e, s, n in eps_names if get(n) is not None]
    rule(c3(eps_runs), [n for _, _, n in eps_names])
    early = P.get("early_epoch") or max(1, round(paper.TABLE1_EARLY_EPOCH / paper.EPOCHS
                                                 * P["train"].get("epochs", paper.EPOCHS)))
    rule(c3_large_eps(eps_runs, early), [n for _, _, n in eps_names])
    fast = fast_studies(P)
    rule(c4([(label, get(n)) for label, n in fast if get(n) is not None]), [n for _, n in fast])
    std_seeds = seeds_of(P, "standard")
    std_names = [f"C5 standard seed {s}" for s in std_seeds]
    std = [(get(n), c1_runs.get(s)) for s, n in zip(std_seeds, std_names)]
    rule(c5([(a, b) for a, b in std if a is not None and b is not None]),
         std_names, [c1_names[s] for s in std_seeds if s in c1_names])
    return [v.row() for v in out]
