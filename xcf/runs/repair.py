"""A run folder checking itself (:meth:`xcf.runs.folder.Run.repair`): the files derived
from ``checkpoints/last.pt`` verified against it, and repaired where they can be.

:func:`xcf.train.runner.train` calls it before a run is reused or resumed: metrics.jsonl
is rewritten from the committed history when a line is torn, missing, or of an epoch
after last.pt's; a final.json that disagrees with last.pt, or a best.pt that is not the
one final.json records, is a :class:`~xcf.runs.files.RunFileError` naming the file; the
sessions of processes that died are marked "interrupted".  Separate from
:mod:`xcf.runs.folder`, which reads and writes a folder, because this is the one place
that decides what a consistent folder is.
"""
from __future__ import annotations

from typing import Any, Mapping, Optional

from xcf import atomic
from xcf.runs.checkpoints import STATE_FORMAT, CheckpointError, file_digest, load_torch
from xcf.runs.files import RunFileError, parse_metrics, read_json, read_object, row_text
from xcf.runs.provenance import RUNNING, mark_interrupted

__all__ = ["repair_folder"]


def repair_folder(run: Any) -> list[str]:
    """Verify the derived files of ``run`` (a :class:`~xcf.runs.folder.Run`) against
    ``checkpoints/last.pt`` (the commit point) and repair them; returns one line per
    repair (``[]``: all was in order, nothing written).

    - metrics.jsonl must hold last.pt's history, row for row: a half-written line, a
      row of an epoch after last.pt's (training restarts from last.pt) or a missing
      row gets the file rewritten from that history;
    - final.json must agree with last.pt (the run finished all its epochs, best and
      last epoch as last.pt has them) and a recorded ``best_sha256`` must be the
      digest of checkpoints/best.pt; else :class:`RunFileError` naming the file and
      the fix (not rewritten: it may hold results a rewrite could not vouch for);
    - sessions of dead processes still marked "running" become "interrupted".

    Every write is atomic (:mod:`xcf.atomic`) and done under the run's lock, taken
    only when something needs writing; nothing is deleted.
    """
    if not run.path.is_dir() or run.locked:
        return []  # nothing yet, or its live holder keeps it in order
    if not _problems(run):
        return []
    with run.lock():
        return _repair_locked(run)


def _problems(run: Any) -> list[str]:
    """What :func:`repair_folder` would fix (read only)."""
    problems = []
    sessions = read_object(run.path / "provenance.json").get("sessions") or []
    if any(s.get("status") == RUNNING for s in sessions if isinstance(s, dict)):
        problems.append("provenance")
    state = _committed(run)
    if state is None:
        return problems
    _check_final(run, state)
    if _metrics_problem(run, state):
        problems.append("metrics")
    return problems


def _committed(run: Any) -> Optional[dict]:
    """The small entries of last.pt (tensors memory-mapped, not read), or ``None``."""
    if not run.state_path.is_file():
        return None
    state = load_torch(run.state_path, mmap=True)
    if state.get("format") != STATE_FORMAT:
        raise CheckpointError(f"{run.state_path} is not an xcf training state")
    return state


def _metrics_problem(run: Any, state: Mapping[str, Any]) -> Optional[str]:
    path = run.path / "metrics.jsonl"
    want = [row_text(r) for r in state["history"]]
    if not path.is_file():
        return "is missing" if want else None
    rows, bad = parse_metrics(path)
    if [row_text(r) for r in rows] == want and not bad:
        return None
    epoch = int(state["epoch"])
    parts = []
    if bad:
        parts.append(f"dropped {len(bad)} line(s) that are not JSON (line {bad[0]}: "
                     "half-written)")
    later = [r.get("epoch") for r in rows if isinstance(r.get("epoch"), int)
             and r["epoch"] > epoch]
    if later:
        parts.append(f"dropped rows of epochs {later}, after last.pt's epoch {epoch}")
    have = {row_text(r) for r in rows}
    missing = [r["epoch"] for r in state["history"] if row_text(r) not in have]
    if missing:
        parts.append(f"restored the rows of epochs {missing} from last.pt")
    return "; ".join(parts) or "rewritten from last.pt's history"


def _check_final(run: Any, state: Mapping[str, Any]) -> None:
    """final.json, if any, must agree with last.pt; else :class:`RunFileError`.  It is
    not rewritten: it may hold results (AutoAttack) that a rewrite could not vouch for,
    so the user decides (moved away, it is rewritten from last.pt by the next train)."""
    path = run.path / "final.json"
    if not path.is_file():
        return
    fix = ("restore it, or move it away and train again to rewrite it from "
           "checkpoints/last.pt")
    try:
        final = read_json(path)
    except RunFileError as err:
        raise RunFileError(f"{err}; {fix}") from err
    if not isinstance(final, dict):
        raise RunFileError(f"{path} must hold a JSON object, got {final!r:.60}; {fix}")
    epoch, epochs = int(state["epoch"]), int(run.config["epochs"])
    if epoch < epochs:
        raise RunFileError(f"{path} marks the run finished, but checkpoints/last.pt holds "
                           f"epoch {epoch} of {epochs}; move final.json away and train "
                           "again to resume the run")
    best = state.get("best", {}).get("epoch")
    last = final.get("last") if isinstance(final.get("last"), dict) else {}
    if final.get("best_epoch") != best or last.get("epoch") != epoch:
        raise RunFileError(f"{path} gives best epoch {final.get('best_epoch')!r} and last "
                           f"epoch {last.get('epoch')!r}, but checkpoints/last.pt has "
                           f"{best} and {epoch}: it was edited; {fix}")
    digest = final.get("best_sha256")
    best_pt = run.checkpoint_path("best")
    if digest and best_pt.is_file() and file_digest(best_pt) != digest:
        raise RunFileError(f"{best_pt} is not the best checkpoint recorded in {path} "
                           f"(sha256 {digest[:12]}...): it was replaced after training; "
                           "restore it, or train the run afresh (overwrite=True)")


def _repair_locked(run: Any) -> list[str]:
    done = []
    prov = read_object(run.path / "provenance.json")
    if mark_interrupted(prov):
        atomic.write_json(run.path / "provenance.json", prov)
        done.append(f"{run.path / 'provenance.json'}: sessions of killed processes "
                    "marked interrupted")
    state = _committed(run)
    if state is None:
        return done
    what = _metrics_problem(run, state)
    if what:
        atomic.write_text(run.path / "metrics.jsonl",
                          "".join(row_text(r) + "\n" for r in state["history"]))
        done.append(f"{run.path / 'metrics.jsonl'}: {what}")
    return done
