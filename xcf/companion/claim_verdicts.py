"""The rule book applied: the verdicts of the Claims page and of each section page.

:mod:`xcf.companion.claims` holds one rule per claim part; this module gives them their
runs, in the two places the book states a verdict:

- :func:`decide`: the Claims page, on the whole study, its runs found by the names of
  :mod:`xcf.companion.claim_runs` (many seeds, ε values and settings);
- :func:`page_verdict`: a section page (notebooks 03-08), on the page's own runs of one
  seed, printed under its figures as the page shows it.

Either way a claim is decided by the same rules, so it reads one way everywhere, and a
claim whose runs are not all there gets no verdict from part of them.
"""
from __future__ import annotations

from typing import Any, Mapping, Optional, Sequence

from xcf.companion.claims import (Verdict, c1, c1_rise, c1_specificity, c2, c3, c3_large_eps,
                                  c4, c5)
from xcf.companion.claim_runs import across_row_seeds, fast_studies, kd_forms, seeds_of

__all__ = ["PAGE_RUNS", "decide", "page_verdict"]

# The runs a section page names for each claim: fixed roles, or (C3, C4) free keys
PAGE_RUNS = {
    "C1": ("PGD-AT",),
    "C2": ("PGD-AT", "KD-AT"),
    "C3": None,  # {ε: run}
    "C4": None,  # {label: run}, each fast-AT run shown
    "C5": ("standard", "PGD-AT"),
}


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


def page_verdict(claim: str, runs: Mapping[Any, Any], profile: Optional[str] = None, *,
                 form: Optional[str] = None, early_epoch: Optional[int] = None
                 ) -> list[Verdict]:
    """A section page's verdict on ``claim`` from its own runs (one seed each), by the
    rules of the Claims page: each verdict is printed as the page shows it
    (:meth:`xcf.companion.claims.Verdict.say`, naming ``profile``) and returned.  ``runs``
    (:data:`PAGE_RUNS`), by claim:

    - ``C1``: ``{"PGD-AT": run}``: :func:`xcf.companion.claims.c1`, C1's fall;
    - ``C2``: ``{"PGD-AT": teacher, "KD-AT": student}``: the three parts of
      :func:`xcf.companion.claims.c2`, KD in the form ``form``;
    - ``C3``: ``{ε: run}``: :func:`xcf.companion.claims.c3` and
      :func:`xcf.companion.claims.c3_large_eps` (``early_epoch``: the page's under-fitted
      epoch, checked against the rule's);
    - ``C4``: ``{label: run}`` of the fast-AT runs: :func:`xcf.companion.claims.c4`;
    - ``C5``: ``{"standard": run, "PGD-AT": run}``: :func:`xcf.companion.claims.c5`.

    A page whose runs are not all there (a ``None`` among them, or no run) states no
    verdict: nothing is printed and the list is empty."""
    if claim not in PAGE_RUNS:
        raise ValueError(f"claim={claim!r}: a page states one of {', '.join(PAGE_RUNS)}")
    roles = PAGE_RUNS[claim]
    if roles is not None and set(runs) != set(roles):
        raise ValueError(f"{claim} on a page reads the runs {', '.join(roles)}; "
                         f"got {', '.join(map(str, runs)) or 'none'}")
    if not runs or any(run is None for run in runs.values()):
        return []
    if claim == "C1":
        verdicts = [c1([runs["PGD-AT"]])]
    elif claim == "C2":
        verdicts = c2([(runs["PGD-AT"], runs["KD-AT"])], form=form)
    elif claim == "C3":
        points = [(float(eps), 0, run) for eps, run in runs.items()]  # one seed
        verdicts = [c3(points), c3_large_eps(points, early_epoch)]
    elif claim == "C4":
        verdicts = [c4(list(runs.items()))]
    else:
        verdicts = [c5([(runs["standard"], runs["PGD-AT"])])]
    for verdict in verdicts:
        print(verdict.say(profile))
    return verdicts
