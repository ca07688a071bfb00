"""``xcf status DIR``: each planned run's state, read from its run folder, one line each."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping, Sequence

from xcf.cli.launch import current_config, read_plan, run_folder, run_state
from xcf.runs.files import RunFileError

__all__ = ["plan_status", "format_status"]


def plan_status(directory: str | Path, runs_dir: str | Path | None = None) -> list[dict]:
    """Each planned run's state (:func:`run_state`), its folder and its last job id."""
    directory = Path(directory)
    plan = read_plan(directory)
    root = Path(runs_dir if runs_dir is not None else plan["runs_dir"])
    path = directory / "jobs.json"
    jobs = json.loads(path.read_text()) if path.is_file() else {}
    rows = []
    for r in plan["runs"]:
        run = run_folder(current_config(directory, r, root), root)
        try:
            state, done, best = run_state(run)
        except (RunFileError, OSError, ValueError) as err:  # one damaged folder, not all
            state, done, best = f"damaged ({' '.join(str(err).split())})", 0, None
        rows.append({"name": r["name"], "state": state, "epochs_done": done,
                     "epochs": r["epochs"], "best_epoch": best, "folder": str(run.path),
                     "job": (jobs.get(r["name"]) or {}).get("job_id")})
    return rows


def format_status(rows: Sequence[Mapping[str, Any]]) -> str:
    """One line per run (state, epochs done / total, best epoch, job) and a count."""
    width = max((len(r["name"]) for r in rows), default=0)
    lines = [f"{r['name']:<{width}}  {r['state']:<11}  {r['epochs_done']:>4}/{r['epochs']:<4}"
             f"  best {r['best_epoch'] if r['best_epoch'] is not None else '-':>4}"
             + (f"  job {r['job']}" if r.get("job") else "") for r in rows]
    finished = sum(r["state"] == "finished" for r in rows)
    return "\n".join([*lines, f"{finished} of {len(rows)} run(s) finished"])
