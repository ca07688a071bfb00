"""A run folder's JSON files read as data, and :class:`RunFileError`, the error naming a
file of a run folder that is missing, garbled, or disagrees with the rest of the run.

final.json and provenance.json hold one JSON object each (:func:`read_object`);
metrics.jsonl one JSON object per line (:func:`parse_metrics`), each written as
:func:`row_text` gives it.  Separate from :mod:`xcf.runs.folder` so that the folder and
its self-check (:mod:`xcf.runs.repair`) read these files one way.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

__all__ = ["RunFileError", "read_object", "read_json", "parse_metrics", "row_text"]


class RunFileError(ValueError):
    """A file of a run folder is missing, garbled, or disagrees with the rest of the run;
    the message names the file."""


def read_object(path: Path) -> dict:
    """The JSON object in ``path`` (``{}`` if there is no file); :class:`RunFileError`
    naming the file when it holds something else."""
    if not path.is_file():
        return {}
    data = read_json(path)
    if not isinstance(data, dict):
        raise RunFileError(f"{path} must hold a JSON object, got {data!r:.60}")
    return data


def read_json(path: Path) -> Any:
    """The JSON in ``path``; :class:`RunFileError` naming the file when it cannot be read
    or parsed."""
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise RunFileError(f"{path} is unreadable ({err})") from err


def parse_metrics(path: Path) -> tuple[list[dict], list[int]]:
    """The rows of metrics.jsonl that parse, and the (1-based) numbers of lines that do not."""
    rows, bad = [], []
    for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError:
            bad.append(number)
            continue
        if isinstance(row, dict):
            rows.append(row)
        else:
            bad.append(number)
    return rows, bad


def row_text(row: Mapping[str, Any]) -> str:
    """A metrics row as publish writes it (and so compares it: NaN equals NaN here)."""
    return json.dumps(row, sort_keys=True)
