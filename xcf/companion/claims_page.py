"""The Claims page's tables, read from run folders.

The Claims page (``notebooks/11_claims.ipynb``) shows, beside the verdicts of
:func:`xcf.companion.claim_verdicts.decide`, every fast-AT run tried for C4
(:func:`fast_at_table`); the book's first page pastes :func:`headline`.  Pure
bookkeeping over finished runs; nothing here trains.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

from xcf.companion import claims

__all__ = ["headline", "fast_at_table"]


def headline(rows: Sequence[Mapping[str, str]]) -> list[dict]:
    """The book's first page: one short line per claim part of
    :func:`xcf.companion.claim_verdicts.decide`'s ``rows``, its verdict, our number and
    the paper's, each cut at its first clause (the Claims page gives the rest)."""
    def first(text: str) -> str:
        cut = text.split("; ")[0].strip()
        return cut + ")" * (cut.count("(") - cut.count(")"))  # a cut inside brackets

    return [{"claim": r["claim"], "verdict": r["verdict"], "ours": first(r["ours"]),
             "the paper's": first(r["paper"])} for r in rows]


def fast_at_table(fast_runs: Sequence[tuple[str, Any]]) -> list[dict]:
    """One row per fast-AT run tried (``(label, run)``, as :func:`xcf.companion.claims.c4`):
    the numbers its rule reads (:func:`xcf.companion.claims.fast_at_outcome`), for the
    Claims page's table of the settings tried."""
    pct = lambda v: "-" if v is None else f"{v:.1%}"  # noqa: E731
    rows = []
    for label, run in fast_runs:
        o = claims.fast_at_outcome(run)
        co = o["collapse_epoch"]
        rows.append({
            "setting": label,
            "best RA (epoch)": f"{o['best_ra']:.1%} ({o['best_epoch']})",
            "learned robustness": "yes" if o["learned"] else
                                  f"no (< {claims.C4_CHANCE_MULTIPLE:g}/{o['classes']})",
            "lowest later RA (epoch)": "-" if o["low_ra"] is None
                                       else f"{o['low_ra']:.1%} ({o['low_epoch']})",
            "collapse (epoch)": "-" if co is None else str(co),
            "CAS best → collapse": "-" if co is None
                                   else f"{o['best_cas']:.2f} → {o['collapse_cas']:.2f}",
            "last RA": pct(o["last_ra"]),
        })
    return rows
