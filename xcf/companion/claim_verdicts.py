"""The rule book applied: the verdicts of the Claims page.

:mod:`xcf.companion.claims` holds one rule per claim part; :func:`decide` gives them
their runs on the whole study, found by the names of :mod:`xcf.companion.claim_runs`
(many seeds, ε values and settings).  A claim whose runs are not all there gets no
verdict from part of them.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

from xcf.companion.claims import (Verdict, c1, c1_rise, c1_specificity, c2, c3, c3_large_eps,
                                  c4, c5)
from xcf.companion.claim_runs import across_row_seeds, fast_studies, kd_forms, seeds_of

__all__ = ["decide"]

def decide(found: Mapping[str, Any], P: Mapping[str, Any]) -> list[dict]:
    """One row per claim part (:meth:`xcf.companion.claims.Verdict.row`) from the runs of
    :mod:`xcf.companion.claim_runs`'s names in ``found``.  A claim is decided only once every run
    it names is there; until then it reads *not run* with the count of its runs found (a
    study trained in pieces never shows a verdict from part of its seeds or ε values).
    C1 reads as its rise, its fall and its control, with held-out selection, and its
    fall once more with the paper's test-selected best; C2 as its three parts per form."""
    out: list[Verdict] = []

    def rule(verdicts, names: Sequence[str], also: Sequence[str] = ()) -> None:
        """``names``: the claim's own runs (counted); ``also``: C1 runs it compares with."""
        missing = [n for n in names if n not in found]
        for verdict in ([verdicts] if isinstance(verdicts, Verdict) else verdicts):
            if missing or any(n not in found for n in also):
                n = len(names)
                verdict = Verdict(verdict.claim, verdict.statement, "not run",
                                  f"{n - len(missing)} of {n} runs found", "-", verdict.paper)
            out.append(verdict)

    get = found.get
    c1_names = {s: f"C1 seed {s}" for s in P["seeds"]}
    c1_runs = {s: get(name) for s, name in c1_names.items()}
    runs = [r for r in c1_runs.values() if r is not None]
    names = list(c1_names.values())
    rule([c1_rise(runs), c1_rise(runs, "fig2"), c1(runs), c1_specificity(runs),
          c1(runs, claim="C1 fall, test-selected", select="test")], names)
    for row in P.get("across", []):
        names = [f"C1 {row['label']} seed {s}" for s in across_row_seeds(P, row)]
        runs = [r for r in (get(n) for n in names) if r is not None]
        if row.get("whole"):  # a second setting for the whole claim: rise, fall, control
            rule([c1_rise(runs, setting=row["label"]),
                  c1(runs, claim=f"C1 fall, {row['label']}", label=row["label"]),
                  c1_specificity(runs, setting=row["label"])], names)
        else:
            rule(c1(runs, claim=f"C1 {row['label']}", label=row["label"]), names)
    forms = kd_forms(P)
    for form in forms:
        seeds = seeds_of(P, "kd", form)
        names = [f"C2 KD-AT {form} seed {s}" for s in seeds]
        pairs = [(c1_runs.get(s), get(n)) for s, n in zip(seeds, names)]
        rule(c2([(a, k) for a, k in pairs if a is not None and k is not None],
                form=form if len(forms) > 1 else None),
             names, [c1_names[s] for s in seeds if s in c1_names])
    eps_names = [(e, s, f"C3 eps {e:g} seed {s}") for e in P.get("eps_list", [])
                 for s in seeds_of(P, "eps")]
    eps_runs = [(e, s, get(n)) for e, s, n in eps_names if get(n) is not None]
    rule(c3(eps_runs), [n for _, _, n in eps_names])
    rule(c3_large_eps(eps_runs), [n for _, _, n in eps_names])
    fast = fast_studies(P)
    rule(c4([(label, get(n)) for label, n in fast if get(n) is not None]), [n for _, n in fast])
    std_seeds = seeds_of(P, "standard")
    std_names = [f"C5 standard seed {s}" for s in std_seeds]
    std = [(get(n), c1_runs.get(s)) for s, n in zip(std_seeds, std_names)]
    rule(c5([(a, b) for a, b in std if a is not None and b is not None]),
         std_names, [c1_names[s] for s in std_seeds if s in c1_names])
    return [v.row() for v in out]

