"""Beyond the paper: a causal test of its hypothesis, with the rules and predictions
written before the runs (issue 28).

The paper's evidence is correlational: the best checkpoint has a higher CAS than the
overfitted last one, and KD-AT keeps both CAS and robustness.  Its hypothesis is causal:
cross-class features *help* robust generalisation, robust overfitting *is* their loss,
and soft labels help *because* they carry the classes' similarity.  Two interventions
test that, each decided here by a rule fixed before any of its runs:

**H1, planted features erased.**  On planted images each sharing pair of classes owns a
shared glyph and each class an exclusive one (:mod:`xcf.data.planted`).  For each
checkpoint (under-fitted, best, last) robust accuracy is measured on the test set as it
is, with the shared glyphs erased, and with the exclusive glyphs erased.  The *cost* of
an erasure is RA(as is) - RA(erased).

- Prediction H1a: erasing the shared glyphs costs the best checkpoint more than the last
  one (paired over seeds: cost_shared(best) - cost_shared(last) > 0).
- Prediction H1b: erasing the exclusive glyphs costs the last checkpoint more than the
  best one (cost_exclusive(last) - cost_exclusive(best) > 0).
- Premise: the run robust-overfits (:func:`xcf.companion.diagnostics.overfitting`).
- Meaning: H1a holding says the best checkpoint relies on cross-class features more
  than the overfitted one, as the hypothesis has it; H1a failing (an interval below 0 or
  around 0) says robust overfitting here is not a loss of reliance on shared features.

**H2, soft labels with their structure destroyed.**  KD-AT with the real teacher
(Hinton form, where KD-AT keeps CAS at cpu scale) against two controls that keep
everything else: ``kd_shuffled`` (per sample, the teacher's true-class probability kept
and its other probabilities permuted: same confidence and entropy, no class similarity)
and ``label_smoothing`` matched to the teacher's mean true-class probability.

- Prediction H2: over seeds, KD-AT with the teacher has a smaller CAS gap (best - last)
  and a smaller RA gap than each control, and a higher CAS at its best checkpoint
  (six paired comparisons: :data:`H2_PARTS`).
- Premise: PGD-AT's CAS gap is positive in the seed (there is a loss to prevent).
- Meaning: all six holding supports "soft labels help because of their cross-class
  structure"; the shuffled teacher doing as well (its comparisons inconclusive or
  reversed) says the structure is not what helps at this scale, whatever smoothing does.

Each verdict comes from the paired 95% t interval of :mod:`xcf.companion.paired` (holds,
does not hold, inconclusive, not tested).  Best checkpoints are chosen on held-out
images (:func:`xcf.companion.evidence.reading`).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Mapping, Optional, Sequence

from xcf.companion import evidence, paired
from xcf.atomic import write_json

__all__ = ["CHECKPOINTS", "TEST_SETS", "H1_PARTS", "H2_ARMS", "H2_PARTS", "PREDICTIONS",
           "ERASURE_FILE",
           "Outcome", "erasure_cost", "erasure_epochs", "erasure_record", "record_erasure",
           "read_erasure", "h1", "h2", "verdict_line", "h2_robustness", "h1_line", "h1_rows",
           "h2_rows", "verdict_rows"]

ERASURE_FILE = "erasure.json"  # H1's numbers, kept in the run folder (the weights are not)

CHECKPOINTS = ("under", "best", "last")
TEST_SETS = ("as_is", "shared_erased", "exclusive_erased")
H2_ARMS = ("kd", "kd_shuffled", "label_smoothing")
# (prediction, erased test set, checkpoint predicted to pay more, the other checkpoint)
H1_PARTS = (("H1a", "shared_erased", "best", "last"),
            ("H1b", "exclusive_erased", "last", "best"))
# (label, control arm, quantity, sign): sign +1 means "the control's value minus KD's
# is predicted positive" (KD's gap smaller), -1 "KD's minus the control's" (KD higher).
H2_PARTS = (
    ("CAS gap below the shuffled teacher's", "kd_shuffled", "cas_gap", +1),
    ("CAS gap below matched smoothing's", "label_smoothing", "cas_gap", +1),
    ("RA gap below the shuffled teacher's", "kd_shuffled", "ra_gap", +1),
    ("RA gap below matched smoothing's", "label_smoothing", "ra_gap", +1),
    ("best CAS above the shuffled teacher's", "kd_shuffled", "cas_best", -1),
    ("best CAS above matched smoothing's", "label_smoothing", "cas_best", -1),
)
PREDICTIONS = {
    "H1a": "erasing the shared glyphs costs the best checkpoint more robust accuracy than "
           "the last one",
    "H1b": "erasing the exclusive glyphs costs the last checkpoint more robust accuracy "
           "than the best one",
    "H2": "KD-AT with the real teacher keeps CAS and robustness better than with the "
          "shuffled teacher and than with matched label smoothing",
}


@dataclass(frozen=True)
class Outcome:
    """One prediction decided: its verdict, the paired summary, the premise as it fared."""

    name: str
    prediction: str
    verdict: str
    ours: str
    premise: str

    def say(self) -> str:
        return (f"{self.name}, {self.prediction}: {self.verdict}\n  ours: {self.ours}\n"
                f"  premise: {self.premise}")


def erasure_cost(record: Mapping[str, Mapping[str, Mapping[str, float]]], checkpoint: str,
                 erased: str) -> float:
    """RA(as is) - RA(``erased``) at ``checkpoint`` of one seed's erasure record
    ``{checkpoint: {test set: {"robust_acc": ...}}}`` (:data:`CHECKPOINTS`,
    :data:`TEST_SETS`)."""
    for name, allowed in ((checkpoint, CHECKPOINTS), (erased, TEST_SETS[1:])):
        if name not in allowed:
            raise ValueError(f"{name!r} is not one of {', '.join(allowed)}")
    at = record[checkpoint]
    return float(at["as_is"]["robust_acc"] - at[erased]["robust_acc"])


def erasure_record(run, epochs: Mapping[str, int], *, device: Optional[str] = None) -> dict:
    """H1's measurements of one planted run: for each checkpoint of ``epochs``
    (``{"under": e, "best": e, "last": e}``, each saved by the run) and each test set of
    :data:`TEST_SETS`, clean accuracy, robust accuracy and CAS
    (:func:`xcf.train.posthoc.measure_run`, the run's own evaluation otherwise)."""
    from xcf.train.posthoc import measure_run  # the one module here that loads checkpoints

    unknown = set(epochs) - set(CHECKPOINTS)
    if unknown:
        raise ValueError(f"unknown checkpoints {sorted(unknown)}; use {', '.join(CHECKPOINTS)}")
    out: dict = {}
    for name, epoch in epochs.items():
        out[name] = {"epoch": int(epoch)}
        for test_set in TEST_SETS:
            erase = None if test_set == "as_is" else test_set.split("_")[0]
            _, numbers, _, _ = measure_run(run.path, epoch, device=device, erase=erase)
            out[name][test_set] = {k: float(numbers[k]) for k in
                                   ("test_clean_acc", "test_robust_acc", "cas")}
            out[name][test_set]["robust_acc"] = out[name][test_set].pop("test_robust_acc")
    return out


def erasure_epochs(run) -> dict:
    """The epochs H1 measures in ``run``: the under-fitted one (Table 1's position,
    scaled), the best by held-out robust accuracy, and the last
    (:func:`xcf.companion.evidence.reading`: the epochs every rule of the Claims page reads)."""
    r = evidence.reading(run)
    return {"under": int(r.early["epoch"]), "best": int(r.best["epoch"]),
            "last": int(r.last["epoch"])}


def record_erasure(run, *, device: Optional[str] = None) -> dict:
    """H1's measurements of the finished planted run ``run``, written once to its
    :data:`ERASURE_FILE` (read back, not recomputed, when already there) with the epochs
    they were taken at; the run must have kept the checkpoints of
    :func:`erasure_epochs` (``save_checkpoints_at``)."""
    done = read_erasure(run)
    if done is not None:
        return done
    if not run.finished:
        raise ValueError(f"{run.path} has not finished training; H1 reads its last epoch")
    record = erasure_record(run, erasure_epochs(run), device=device)
    write_json(run.path / ERASURE_FILE, record)
    return record


def read_erasure(run) -> Optional[dict]:
    """The erasure record kept in ``run``'s folder, or ``None`` if it has none."""
    path = run.path / ERASURE_FILE
    if not path.exists():
        return None
    return json.loads(path.read_text())


def h1(seeds: Sequence[tuple[Any, Mapping]]) -> list[Outcome]:
    """H1a and H1b on ``(planted PGD-AT run, its erasure record)`` per seed."""
    tested = [(run, rec) for run, rec in seeds if evidence.reading(run).overfits]
    premise = f"robust overfitting in {len(tested)}/{len(seeds)} seeds"
    out = []
    for name, erased, high, low in H1_PARTS:
        p = paired.paired([erasure_cost(rec, high, erased) - erasure_cost(rec, low, erased)
                           for _, rec in tested])
        out.append(Outcome(name, PREDICTIONS[name], paired.verdict_of(p),
                           f"cost at {high} − cost at {low}: {p.text(1, 100, ' pts')}", premise))
    return out


def _value(r: evidence.Reading, quantity: str) -> float:
    return {"cas_gap": r.cas_gap, "ra_gap": r.ra_gap, "cas_best": float(r.best["cas"])}[quantity]


def _h2_tested(seeds: Sequence[Mapping[str, Any]]) -> list[dict]:
    """Each seed's arms read for the rules, kept where H2's premise holds (PGD-AT's CAS
    gap > 0); a seed missing an arm is refused."""
    missing = [a for s in seeds for a in ("pgd_at", *H2_ARMS) if s.get(a) is None]
    if missing:
        raise ValueError(f"H2 needs every arm in every seed; missing: {sorted(set(missing))}")
    reads = [{arm: evidence.reading(s[arm]) for arm in ("pgd_at", *H2_ARMS)} for s in seeds]
    return [r for r in reads if r["pgd_at"].cas_gap > 0]


def h2(seeds: Sequence[Mapping[str, Any]]) -> list[Outcome]:
    """H2 on one mapping per seed: ``{"pgd_at": run, "kd": run, "kd_shuffled": run,
    "label_smoothing": run}``; one :class:`Outcome` per part of :data:`H2_PARTS`, then
    the whole prediction (holds only when every part holds)."""
    tested = _h2_tested(seeds)
    premise = f"PGD-AT's CAS gap > 0 in {len(tested)}/{len(seeds)} seeds"
    out = []
    for label, control, quantity, sign in H2_PARTS:
        p = paired.paired([sign * (_value(r[control], quantity) - _value(r["kd"], quantity))
                           for r in tested])
        scale, unit = (100, " pts") if quantity == "ra_gap" else (1, "")
        out.append(Outcome(f"H2: {label}", PREDICTIONS["H2"], paired.verdict_of(p),
                           f"{p.text(2, scale, unit)} in the predicted direction", premise))
    verdicts = {o.verdict for o in out}
    whole = ("holds" if verdicts == {"holds"} else "not tested" if verdicts == {"not tested"}
             else "does not hold" if "holds" not in verdicts else "mixed")
    out.append(Outcome("H2", PREDICTIONS["H2"], whole,
                       f"{sum(o.verdict == 'holds' for o in out)} of {len(out)} parts hold",
                       premise))
    return out


def verdict_line(outcomes: Sequence[Outcome]) -> Optional[str]:
    """The plain sentence a page prints for H2's whole outcome, or ``None``.

    The rules fixed a meaning for two outcomes (every part holding; the shuffled teacher
    doing as well).  A mixed outcome is read part by part, CAS against robustness, and
    the sentence says that this reading came after the runs."""
    whole = next((o for o in outcomes if o.name == "H2"), None)
    if whole is None:
        return None
    parts = [o for o in outcomes if o.name.startswith("H2: ")]
    shuffled = [o for o in parts if "shuffled" in o.name]
    if whole.verdict == "holds":
        return ("KD-AT with the real teacher beats both controls: the cross-class structure "
                "of the soft labels is what helps, at this scale.")
    if shuffled and all(o.verdict in ("inconclusive", "does not hold") for o in shuffled):
        return ("The shuffled teacher helps as much as the real one: the cross-class "
                "structure of soft labels is not what helps at this scale.")
    if whole.verdict != "mixed":
        return f"H2 {whole.verdict} ({whole.ours}; {whole.premise})."
    cas = [o for o in parts if "CAS" in o.name]
    ra = [o for o in parts if "RA" in o.name]
    short = "; ".join(f"{o.name[4:]}: {o.verdict}, {o.ours}" for o in parts
                      if o.verdict != "holds")
    after = (" (The rules gave no meaning to a mixed outcome; this reading of its parts was "
             "written after the runs.)")
    if all(o.verdict == "holds" for o in cas):
        return ("H2 is mixed. The teacher's cross-class structure is what keeps CAS: every "
                "CAS comparison holds against both controls. That it is what keeps "
                f"robustness is not shown: {short}." + after)
    if all(o.verdict == "holds" for o in ra):
        return ("H2 is mixed. KD-AT with the real teacher keeps robustness better than both "
                "controls (every RA comparison holds), but that the teacher's cross-class "
                f"structure keeps CAS is not shown: {short}." + after)
    return f"H2 is mixed ({whole.ours}); not holding: {short}." + after


def h2_robustness(seeds: Sequence[Mapping[str, Any]]) -> list[dict]:
    """Robust accuracy itself, not one of the committed predictions: per control, KD-AT's
    test RA minus the control's at the held-out-selected best epoch and at the last, as
    paired intervals over the seeds whose PGD-AT run has a positive CAS gap (H2's
    premise).  For reading H2's RA gaps: a gap closes by a higher last epoch or a lower
    best one."""
    tested = _h2_tested(seeds)
    rows = []
    for control in H2_ARMS[1:]:
        row = {"KD-AT minus": control}
        for at in ("best", "last"):
            p = paired.paired([getattr(r["kd"], at)["test_robust_acc"]
                               - getattr(r[control], at)["test_robust_acc"] for r in tested])
            row[f"RA at {at}"] = p.text(1, 100, " pts")
        rows.append(row)
    return rows


def h1_line(outcomes: Sequence[Outcome]) -> Optional[str]:
    """The plain sentence a page prints for H1 (H1a and H1b of :func:`h1`), or ``None``."""
    by = {o.name: o for o in outcomes}
    if "H1a" not in by or "H1b" not in by:
        return None
    a, b = by["H1a"].verdict, by["H1b"].verdict
    if a == "not tested":
        return (f"H1 is not tested: its premise did not occur ({by['H1a'].premise}), so "
                "there is no robust overfitting whose features the erasure could probe.")
    if a == b == "holds":
        return ("The best checkpoint relies on the shared glyphs more than the last one, and "
                "the last on the exclusive glyphs more than the best: here robust "
                "overfitting trades cross-class features for class-specific ones, as the "
                "paper's hypothesis has it.")
    if a == "does not hold":
        return ("Erasing the shared glyphs costs the last checkpoint more than the best: "
                "robust overfitting here is not a loss of reliance on cross-class features.")
    return (f"H1a is {a} and H1b {b}: the erasure does not separate the best checkpoint "
            "from the last one at this scale.")


def h1_rows(seeds: Sequence[tuple[Any, Mapping]]) -> list[dict]:
    """The page's table of H1, one row per seed: robust overfitting (the premise), and
    at each checkpoint its epoch and robust accuracy as is / shared erased / exclusive
    erased, then the two paired quantities of H1a and H1b."""
    rows = []
    for run, rec in seeds:
        r = evidence.reading(run)
        row = {"run": run.path.name[-12:],
               "robust overfitting": f"{'yes' if r.overfits else 'no'} ({100 * r.ra_drop:.1f} pts)"}
        for c in CHECKPOINTS:
            ra = [rec[c][t]["robust_acc"] for t in TEST_SETS]
            row[c] = f"epoch {rec[c]['epoch']}: " + " / ".join(f"{100 * v:.1f}" for v in ra)
        for name, erased, high, low in H1_PARTS:
            d = erasure_cost(rec, high, erased) - erasure_cost(rec, low, erased)
            row[name] = f"{100 * d:+.1f} pts"
        rows.append(row)
    return rows


def h2_rows(seeds: Sequence[Mapping[str, Any]]) -> list[dict]:
    """The page's table of H2, one row per seed and arm (PGD-AT, the premise's run,
    first): the held-out-selected best epoch, test RA and CAS there, and the CAS and RA
    gaps from it to the last epoch."""
    rows = []
    for i, s in enumerate(seeds):
        for arm in ("pgd_at", *H2_ARMS):
            r = evidence.reading(s[arm])
            rows.append({"seed": str(s[arm].config.get("seed", i)), "arm": arm,
                         "best epoch": str(r.best["epoch"]),
                         "best RA": f"{r.best['test_robust_acc']:.1%}",
                         "best CAS": f"{r.best['cas']:.2f}", "CAS gap": f"{r.cas_gap:+.2f}",
                         "RA gap": f"{100 * r.ra_gap:+.1f} pts"})
    return rows


def verdict_rows(outcomes: Sequence[Outcome], found: int, named: int) -> list[dict]:
    """The page's verdict table: one row per outcome, or *not run* while fewer than the
    ``named`` seeds have every run (``found``); a rule is decided only on all its seeds."""
    if named == 0 or found < named:
        names = sorted({o.name.split(":")[0] for o in outcomes}) or ["-"]
        ours = f"{found} of {named} seeds committed" if named else "no seeds named yet"
        return [{"prediction": n, "verdict": "not run", "ours": ours, "premise": "-"}
                for n in names]
    return [{"prediction": o.name, "verdict": o.verdict, "ours": o.ours,
             "premise": o.premise} for o in outcomes]
