"""The Claims page's tables, and the lines it prints under them, read from run folders.

The Claims page (``notebooks/11_claims.ipynb``) shows, beside the verdicts
(:func:`verdict_table` of :func:`xcf.companion.claim_verdicts.decide`'s rows):

- the settings tried in the search for robust overfitting (:func:`search_table`,
  :func:`search_lines`);
- every fast-AT run tried for C4 (:func:`fast_at_table`);
- C1's CAS at the best and last epochs with their bootstrap intervals
  (:func:`interval_lines`);
- CAS as a label-free checkpoint selector (:func:`selection_table`, :func:`regret_line`);
- where the drop sits on planted data (:func:`planted_lines`);
- where each run comes from (:func:`provenance_table`, :func:`devices`);

the book's first page pastes :func:`headline_html`, and :func:`record` is what the page
records for the tests.  A table is a :class:`Table`: its rows (dicts of strings) and the
columns it shows.  Pure bookkeeping over finished runs; nothing here trains.
"""
from __future__ import annotations

import re
from typing import Any, Iterable, Mapping, Optional, Sequence

import numpy as np

from xcf.companion import claims, diagnostics, readings
from xcf.companion.claim_runs import studies_of
from xcf.train.precision import precision_label

__all__ = ["Table", "VERDICT_COLUMNS", "verdict_table", "tests_used", "headline",
           "headline_html", "fast_at_table", "search_table", "search_lines", "interval_lines",
           "selection_table", "regret_line", "planted_sharing", "planted_lines",
           "provenance_table", "devices", "record"]

VERDICT_COLUMNS = ("claim", "statement", "ours", "premise", "verdict", "paper")
HEADLINE_COLUMNS = ("claim", "verdict", "ours", "the paper's")
SEARCH = "search: "  # the study names of the search's settings begin so
SHOWN_SETTING = ("dataset", "n_train", "augment", "model", "model_kwargs", "eps", "attack_steps",
                 "attack_mode", "epochs", "lr", "amp")  # the chosen setting, as the page names it


class Table(list):
    """A table of the page: a list of rows (dicts) that knows the columns it shows,
    ``columns`` or, without them, its first row's keys in order."""

    def __init__(self, rows: Iterable[Mapping] = (), columns: Sequence[str] = ()) -> None:
        super().__init__(rows)
        self.columns = list(columns) if columns else list(self[0]) if self else []

    def markdown(self) -> str:
        """The table in Markdown (:func:`xcf.companion.readings.markdown_table`)."""
        return readings.markdown_table(self, self.columns)


# =========================================================================== the verdicts

def verdict_table(rows: Sequence[Mapping]) -> Table:
    """The verdicts of one profile as the page tables them (:data:`VERDICT_COLUMNS`)."""
    return Table(rows, VERDICT_COLUMNS)


def tests_used(rows: Sequence[Mapping]) -> list[str]:
    """The statistical tests the verdicts ``rows`` come from, each once, sorted."""
    return sorted({r["test"] for r in rows if r["test"]})


def headline(rows: Sequence[Mapping[str, str]]) -> list[dict]:
    """The book's first page: one short line per claim part of
    :func:`xcf.companion.claim_verdicts.decide`'s ``rows``, its verdict, our number and
    the paper's, each cut at its first clause (the Claims page gives the rest)."""
    def first(text: str) -> str:
        cut = text.split("; ")[0].strip()
        return cut + ")" * (cut.count("(") - cut.count(")"))  # a cut inside brackets

    return [{"claim": r["claim"], "verdict": r["verdict"], "ours": first(r["ours"]),
             "the paper's": first(r["paper"])} for r in rows]


def headline_html(rows: Sequence[Mapping[str, str]], caption: str = "") -> str:
    """:func:`headline` as the HTML the first page pastes (myst-nb pastes a glued output's
    HTML across pages, not its Markdown), under ``caption`` without its Markdown marks."""
    return readings.html_table(headline(rows), HEADLINE_COLUMNS, re.sub(r"[*`]", "", caption))


def fast_at_table(fast_runs: Sequence[tuple[str, Any]]) -> Table:
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
    return Table(rows)


# =========================================================================== the search

def _searched(found: Mapping[str, Any], P: Mapping[str, Any]) -> list[tuple[str, Any]]:
    """``(setting, run)`` of each search setting of ``P`` with a run in ``found``."""
    return [(name[len(SEARCH):], found[name]) for name, _, _ in studies_of(P)
            if name.startswith(SEARCH) and name in found]


def search_table(found: Mapping[str, Any], P: Mapping[str, Any]) -> Table:
    """One row per setting tried in the search for robust overfitting (the ``search``
    studies of the ``11_claims`` section ``P`` found in ``found``): test RA at its peak
    and at the end, on 5-epoch means, train RA there, the raw best and last epochs,
    whether it robust-overfits (:func:`xcf.companion.diagnostics.overfitting`), its drop
    after the first decay and whether it has the paper's shape
    (:func:`xcf.companion.diagnostics.decay_drop`), its attack mode, precision and minutes."""
    rows = []
    for setting, run in _searched(found, P):
        o, d = diagnostics.overfitting(run), diagnostics.decay_drop(run)
        rows.append({
            "setting": setting,
            "peak test RA (epoch)": f"{o['ra_peak']:.1%} ({o['peak_epoch']})",
            "last test RA": f"{o['ra_last']:.1%}",
            "drop": f"{100 * o['ra_drop']:.1f} pts",
            "train RA at peak → last": (f"{o['train_ra_at_peak']:.1%} →"
                                        f" {o['train_ra_last']:.1%}"),
            "raw best → last (epoch)": (f"{o['raw_ra_best']:.1%} ({o['raw_best_epoch']}) →"
                                        f" {o['raw_ra_last']:.1%}"),
            "robust overfitting": "yes" if o["overfits"] else "no",
            "drop after 1st decay": "-" if d["drop"] is None else f"{100 * d['drop']:.1f} pts",
            "paper's shape": "yes" if d["shape"] else "no",
            "attack mode": run.config.get("attack_mode", "?"),
            "precision": precision_label(run.config.get("amp", "none")),
            "minutes": f"{diagnostics.wall_minutes(run):.0f}",
        })
    return Table(rows, [] if rows else ["setting"])


def search_lines(found: Mapping[str, Any], P: Mapping[str, Any]) -> list[str]:
    """What the page says under :func:`search_table`: how many settings show the paper's
    shape and which falls most; where the shape occurred, the rows that repeat C1 on it
    (``across`` rows with ``whole``), else the chosen setting's peak and fall; and last,
    the chosen setting itself (``P["train"]``)."""
    lines = []
    searched = _searched(found, P)
    if searched:
        falls = {setting: diagnostics.overfitting(run)["ra_drop"] for setting, run in searched}
        top = max(falls, key=falls.get)
        shaped = [setting for setting, run in searched if diagnostics.decay_drop(run)["shape"]]
        lines.append(f"{len(shaped)} of {len(searched)} settings show the paper's shape;"
                     f" the largest fall: {top} ({100 * falls[top]:.1f} pts)")
        whole = [row["label"] for row in P.get("across", []) if row.get("whole")]
        if shaped:
            lines.append(f"The paper's shape occurred in: {'; '.join(shaped)}. C1's three parts"
                         " are repeated on a second setting in the rows "
                         + (", ".join(f"'C1 … , {w}'" for w in whole) if whole else
                            "that follow once its seeds are trained (not yet committed)") + ".")
        else:
            chosen = next(run for name, run in found.items() if name.endswith("(chosen)"))
            o, d = diagnostics.overfitting(chosen), diagnostics.decay_drop(chosen)
            lines.append("The paper's shape (a fall of at least 5 points after the first decay)"
                         f" did not occur at this scale in any of the {len(searched)} settings"
                         " tried, so C1 is tested on the chosen setting: its test RA peaks at"
                         f" epoch {o['peak_epoch']} and falls {100 * o['ra_drop']:.1f} points,"
                         f" with the first decay at epoch {d['decay_epoch']}.")
    lines.append(f"chosen setting: {({k: P['train'].get(k) for k in SHOWN_SETTING})}")
    return lines


# =========================================================================== beyond the paper

def interval_lines(runs: Mapping[str, Any], profile: str) -> list[str]:
    """One line per run of ``runs`` (name -> run): CAS at its test-selected best and last
    epochs with their bootstrap 95% intervals (``cas_ci95``), and whether they overlap."""
    lines = []
    for name, run in runs.items():
        g = readings.best_last_gap(run)
        b, last = (readings.row_at(run.metrics(), g[k])["cas_ci95"]
                   for k in ("best_epoch", "last_epoch"))
        lines.append(f"{name} [{profile}]: CAS at the test-selected best {g['cas_best']:.2f}"
                     f" [{b[0]:.2f}, {b[1]:.2f}] vs last {g['cas_last']:.2f}"
                     f" [{last[0]:.2f}, {last[1]:.2f}]: intervals"
                     f" {'overlap' if b[0] <= last[1] else 'do not overlap'}")
    return lines


def _selections(runs: Mapping[str, Any]) -> dict[str, dict]:
    """:func:`xcf.companion.diagnostics.label_free_selection` of each run that measured
    held-out images (``holdout_cas``)."""
    return {name: diagnostics.label_free_selection(run) for name, run in runs.items()
            if "holdout_cas" in run.metrics()[0]}


def selection_table(runs: Mapping[str, Any]) -> Table:
    """CAS as a label-free checkpoint selector: per run of ``runs`` (name -> run) that
    measured held-out images, the test RA of the epoch chosen by test RA (the paper's
    rule), by held-out CAS and by held-out RA, and what each choice loses against the
    test-selected one (its regret), the last epoch's too."""
    return Table([{
        "run": name,
        "test-selected": f"{s['test_best_ra']:.1%} (epoch {s['test_best_epoch']})",
        "CAS-selected": f"{s['cas_ra']:.1%} (epoch {s['cas_epoch']})",
        "CAS regret": f"{100 * s['cas_regret']:.1f} pts",
        "held-out-RA-selected": f"{s['holdout_ra_ra']:.1%} (epoch {s['holdout_ra_epoch']})",
        "held-out-RA regret": f"{100 * s['holdout_ra_regret']:.1f} pts",
        "last-epoch regret": f"{100 * s['last_regret']:.1f} pts",
    } for name, s in _selections(runs).items()])


def _regrets(runs: Mapping[str, Any]) -> list[dict]:
    return [{"_cas": s["cas_regret"], "_val": s["holdout_ra_regret"], "_last": s["last_regret"]}
            for s in _selections(runs).values()]


def regret_line(runs: Mapping[str, Any]) -> str:
    """The mean regret of each choice of :func:`selection_table` over its runs."""
    regrets = _regrets(runs)
    mean = lambda k: 100 * np.mean([r[k] for r in regrets])  # noqa: E731
    return (f"mean regret over {len(regrets)} seeds: CAS {mean('_cas'):.1f} pts, held-out RA"
            f" {mean('_val'):.1f} pts, last epoch {mean('_last'):.1f} pts")


def planted_sharing(P: Mapping[str, Any]) -> np.ndarray:
    """The class pairs that share a part in the planted run of ``P`` (its ``data_kwargs``,
    :func:`xcf.companion.diagnostics.sharing_matrix`)."""
    kw = {**P["train"], **P["planted"]}["data_kwargs"]
    return diagnostics.sharing_matrix(kw["num_classes"], kw["sharing"])


def _planted(run, P: Mapping[str, Any]) -> Optional[dict]:
    return None if run is None else diagnostics.planted_concentration(run, planted_sharing(P))


def planted_lines(run, P: Mapping[str, Any], profile: str) -> list[str]:
    """Where the drop happens on planted data (``run``: the planted run of ``P``, or
    ``None``): RA and CAS from the best to the last epoch, mean C on the sharing pairs
    and on the others, and the share of the drop in CAS that the sharing pairs carry
    (:func:`xcf.companion.diagnostics.planted_concentration`)."""
    if run is None:
        return [f"no planted run in the {profile} profile's results"]
    pc, o = _planted(run, P), diagnostics.overfitting(run)
    return [f"planted: RA {o['ra_peak']:.1%} (epoch {o['peak_epoch']}) -> {o['ra_last']:.1%};"
            f" CAS {pc['cas_best']:.2f} -> {pc['cas_last']:.2f}",
            f"mean C on sharing pairs {pc['C_share_best']:.2f} -> {pc['C_share_last']:.2f};"
            f" on other pairs {pc['C_other_best']:.2f} -> {pc['C_other_last']:.2f}",
            f"sharing pairs are {pc['share_fraction_of_pairs']:.0%} of the pairs and carry "
            f"{pc['drop_share_of_cas_drop']:.0%} of the drop in CAS's positive parts"]


# =========================================================================== where from

def provenance_table(results: Sequence[Any]) -> Table:
    """Where each run comes from: per profile of ``results``
    (:class:`xcf.companion.claim_runs.StudyResults`) and study, its run folder, the commit
    it was trained at and the day its last session finished."""
    rows = []
    for r in results:
        for name, run in r.found.items():
            prov = run.provenance()
            rows.append({"profile": r.profile, "study": name, "run": f"`{run.path.name}`",
                         "commit": str(prov.get("git", {}).get("commit", "?"))[:10],
                         "finished": str(prov["sessions"][-1].get("end", "?"))[:10]})
    return Table(rows, ["profile", "study", "run", "commit", "finished"])


def devices(results: Sequence[Any]) -> list[str]:
    """The devices the runs of ``results`` last trained on, each once, sorted."""
    return sorted({str(run.provenance()["sessions"][-1].get("device", "?"))
                   for r in results for run in r.found.values()})


def record(profile: str, results: Sequence[Any], verdicts: Mapping[str, Sequence[Mapping]]
           ) -> dict:
    """What the page records (:func:`xcf.companion.profiles.record_metrics`) at
    ``profile``: the profile whose results lead (``results[0]``), its runs found and
    verdicts (``verdicts``: profile -> :func:`xcf.companion.claim_verdicts.decide`'s rows),
    every profile's counts and verdicts, the regrets of :func:`regret_line` and the
    planted run's concentration (:func:`planted_lines`; ``None`` without one)."""
    lead = results[0]
    said = lambda p: {v["claim"]: v["verdict"] for v in verdicts[p]}  # noqa: E731
    c1_seeds = {n: run for n, run in lead.found.items() if n.startswith("C1 seed")}
    return dict(profile=profile, results=lead.profile, n_found=len(lead.found),
                verdicts=said(lead.profile),
                profiles={r.profile: dict(n_found=len(r.found), n_studies=r.n_studies,
                                          verdicts=said(r.profile)) for r in results},
                regrets=_regrets(c1_seeds),
                planted=_planted(lead.found.get("planted"), lead.studies))
