"""One small figure per claim of the Claims page: the pair each claim compares, per seed.

Most claims of :mod:`xcf.companion.claims` compare two readings of each seed: CAS at the
best checkpoint against CAS at the last one (C1), PGD-AT's best-last gap against its
KD-AT student's (C2), CAS at the best epoch against CAS at the collapse (C4), PGD-AT's
CAS against standard training's (C5).  :func:`claim_pairs` reads those pairs from the
runs the page found, as the rule book reads them (:func:`xcf.companion.evidence.reading`,
the best epoch chosen on held-out images), with the bootstrap 95% intervals the runs
record (``cas_ci95``) where a reading has one; :func:`seed_pairs` draws one claim's pairs,
one line per seed from the first reading to the second, each end with its interval.  A
seed that does not meet the claim's premise is drawn hollow.  The figures illustrate the
verdicts; they decide nothing (the verdict is :func:`xcf.companion.claims.decide`'s).

C3 (a rank correlation over ε, seeds pooled) and the specificity control compare no pair
per seed and have no figure here.
"""
from __future__ import annotations

import textwrap
from dataclasses import dataclass
from typing import Any, Mapping, Optional

import matplotlib.pyplot as plt

from xcf.companion import claims, evidence
from xcf.companion.claim_runs import across_row_seeds, fast_studies, kd_forms, seeds_of

__all__ = ["SeedPairs", "claim_pairs", "seed_pairs", "draw_claims"]

Interval = Optional[tuple[float, float]]


@dataclass(frozen=True)
class SeedPairs:
    """One claim's pairs: per seed (``labels``), the two ``values`` compared, the 95%
    interval of each (``None`` where the run records none) and whether the seed met the
    claim's premise (``tested``).  ``claim`` names the row of the verdict table it
    illustrates, ``ends`` the two readings, ``quantity`` what the values measure."""

    claim: str
    ends: tuple[str, str]
    quantity: str
    labels: tuple[str, ...]
    values: tuple[tuple[float, float], ...]
    intervals: tuple[tuple[Interval, Interval], ...]
    tested: tuple[bool, ...]

    def __post_init__(self) -> None:
        n = len(self.labels)
        if not (len(self.values) == len(self.intervals) == len(self.tested) == n):
            raise ValueError(f"{self.claim}: {n} labels, {len(self.values)} value pairs, "
                             f"{len(self.intervals)} interval pairs, {len(self.tested)} "
                             "premise flags; give one of each per seed")


def _ci(row: Mapping) -> Interval:
    ci = row.get("cas_ci95")
    return (float(ci[0]), float(ci[1])) if ci else None


def _fall(claim: str, runs: Mapping[int, Any]) -> SeedPairs:
    """C1's fall: CAS at the held-out-selected best epoch and at the last, per seed."""
    rs = {s: evidence.reading(run) for s, run in runs.items()}
    return SeedPairs(claim, ("best", "last"), "CAS", tuple(f"seed {s}" for s in rs),
                     tuple((float(r.best["cas"]), float(r.last["cas"])) for r in rs.values()),
                     tuple((_ci(r.best), _ci(r.last)) for r in rs.values()),
                     tuple(bool(r.overfits) for r in rs.values()))


def _complete(found: Mapping[str, Any], names: Mapping[Any, str]) -> Optional[dict]:
    """``{key: run}`` when every named run is there (else ``None``: the claim is *not
    run*, as :func:`xcf.companion.claims.decide` reads it)."""
    if not names or any(n not in found for n in names.values()):
        return None
    return {k: found[n] for k, n in names.items()}


def claim_pairs(found: Mapping[str, Any], P: Mapping[str, Any]) -> list[SeedPairs]:
    """The pairs of every claim whose runs are all in ``found`` (the run folders of the
    study ``P``, the ``11_claims`` section of a profile), in the verdict table's order:

    - C1's fall, and each row across norms, models and settings: CAS at the best epoch
      (chosen on held-out images) and at the last, with their bootstrap intervals;
      premise: the run robust-overfits;
    - C2, per KD form: the best-last CAS gap of PGD-AT and of its KD-AT student (a gap
      has no recorded interval); premise: PGD-AT's gap is positive;
    - C4: CAS at the best epoch and at the collapse of each fast-AT run that learned
      robustness, with their intervals; a run that did not collapse is drawn hollow, to
      its last epoch;
    - C5: PGD-AT's CAS at its best epoch (with its interval) and standard training's clean
      CAS at its last (none recorded)."""
    out: list[SeedPairs] = []
    c1 = _complete(found, {s: f"C1 seed {s}" for s in P["seeds"]})
    if c1:
        out.append(_fall("C1 fall", c1))
    for row in P.get("across", []):
        runs = _complete(found, {s: f"C1 {row['label']} seed {s}"
                                 for s in across_row_seeds(P, row)})
        if runs:
            name = f"C1 fall, {row['label']}" if row.get("whole") else f"C1 {row['label']}"
            out.append(_fall(name, runs))
    forms = kd_forms(P)
    for form in forms:
        seeds = seeds_of(P, "kd", form)
        kd = _complete(found, {s: f"C2 KD-AT {form} seed {s}" for s in seeds})
        at = _complete(found, {s: f"C1 seed {s}" for s in seeds})
        if kd and at:
            gaps = {s: (evidence.reading(at[s]).cas_gap, evidence.reading(kd[s]).cas_gap)
                    for s in seeds}
            out.append(SeedPairs(f"C2 ({form})" if len(forms) > 1 else "C2",
                                 ("PGD-AT", "KD-AT"), "CAS best − last",
                                 tuple(f"seed {s}" for s in seeds),
                                 tuple(gaps.values()), tuple((None, None) for _ in seeds),
                                 tuple(a > 0 for a, _ in gaps.values())))
    fast = _complete(found, dict(fast_studies(P)))
    if fast:
        labels, values, intervals, tested = [], [], [], []
        for label, run in fast.items():
            o = claims.fast_at_outcome(run)
            if not o["learned"]:
                continue  # nothing to forget: not one of C4's runs
            rows = run.metrics()
            end = o["collapse_epoch"] or rows[-1]["epoch"]
            at = next(r for r in rows if r["epoch"] == o["best_epoch"])
            to = next(r for r in rows if r["epoch"] == end)
            labels.append(label)
            values.append((float(at["cas"]), float(to["cas"])))
            intervals.append((_ci(at), _ci(to)))
            tested.append(o["collapse_epoch"] is not None)
        if labels:
            out.append(SeedPairs("C4", ("best", "collapse\n(hollow: last)"), "CAS",
                                 tuple(labels), tuple(values), tuple(intervals),
                                 tuple(tested)))
    seeds = seeds_of(P, "standard")
    std = _complete(found, {s: f"C5 standard seed {s}" for s in seeds})
    at = _complete(found, {s: f"C1 seed {s}" for s in seeds})
    if std and at:
        best = {s: evidence.reading(at[s]).best for s in seeds}
        out.append(SeedPairs("C5", ("PGD-AT, best", "standard, last"), "CAS",
                             tuple(f"seed {s}" for s in seeds),
                             tuple((float(best[s]["cas"]),
                                    float(std[s].metrics()[-1]["cas_clean"])) for s in seeds),
                             tuple((_ci(best[s]), None) for s in seeds),
                             tuple(True for _ in seeds)))
    return out


def seed_pairs(pairs: SeedPairs, verdict: Optional[str] = None,
               profile: Optional[str] = None, ax=None):
    """One claim's figure: per seed a line from its first value to its second, each end
    with its 95% interval where one is given; hollow markers for seeds that did not meet
    the premise.  Titled with the claim, its ``verdict`` and the ``profile`` whose runs
    it shows.  Small (3.4 × 2.7 in), for a row of figures under the verdict table.
    Returns the figure."""
    if ax is None:
        fig, ax = plt.subplots(figsize=(3.4, 2.7))
    else:
        fig = ax.figure
    n = len(pairs.labels)
    width = min(0.3, 0.06 * max(n - 1, 0))  # seeds side by side, so intervals stay apart
    for i, (label, (a, b), cis, ok) in enumerate(zip(pairs.labels, pairs.values,
                                                     pairs.intervals, pairs.tested)):
        color = f"C{i % 10}"
        dx = (i / (n - 1) - 0.5) * width if n > 1 else 0.0
        xs = (0 + dx, 1 + dx)
        ax.plot(xs, (a, b), color=color, lw=1.2, marker="o", ms=4.5,
                mfc=color if ok else "white", label=label)
        for x, y, ci in zip(xs, (a, b), cis):
            if ci is not None:
                ax.errorbar([x], [y], yerr=[[y - ci[0]], [ci[1] - y]], color=color,
                            lw=1, capsize=2, fmt="none")
    ax.set_xticks([0, 1], list(pairs.ends), fontsize=9)
    ax.set_xlim(-0.45, 1.45)
    ax.set_ylabel(pairs.quantity, fontsize=9)
    ax.tick_params(axis="y", labelsize=8)
    head = pairs.claim + (f": {verdict}" if verdict else "")
    head += f" [{profile}]" if profile else ""
    ax.set_title("\n".join(textwrap.wrap(head, 40)), fontsize=9)
    if n <= 6:
        ax.legend(fontsize=7, frameon=False, loc="best")
    fig.tight_layout()
    return fig


def draw_claims(found: Mapping[str, Any], P: Mapping[str, Any], verdicts, profile: str) -> int:
    """The Claims page's figures: :func:`seed_pairs` of every claim of :func:`claim_pairs`,
    each titled with its verdict (``verdicts``: the rule book's rows, each with ``claim``
    and ``verdict``), shown one after another.  Returns how many were drawn."""
    verdict = {v["claim"]: v["verdict"] for v in verdicts}
    n = 0
    for pairs in claim_pairs(found, P):
        seed_pairs(pairs, verdict.get(pairs.claim), profile)
        plt.show()
        n += 1
    return n
