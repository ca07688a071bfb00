"""The one atomic writer: a reader sees either the old or the new version of a file, never
a torn one, even if the writer is killed half-way.

Every function writes a temp file in the target's folder, flushes and fsyncs it, renames
it over the target (``os.replace`` is atomic on POSIX) and fsyncs the folder, so the
rename itself survives a crash.  Temp files are named ``.<name>.<pid>.tmp``;
:func:`remove_stale_temps` deletes those a killed writer left behind.
"""
from __future__ import annotations

import contextlib
import io
import json
import os
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

__all__ = ["write", "write_bytes", "write_text", "write_json", "torch_save", "save_npy",
           "remove_stale_temps"]


def write(path: str | Path, fill: Callable[[io.BufferedWriter], None]) -> Path:
    """Write ``path`` atomically: ``fill(f)`` fills a temp file in the same folder, which is
    flushed, fsynced and then renamed over ``path``.

    If ``fill`` raises, or the process dies, the temp file never replaces ``path``: the
    previous version stays intact (and the temp file is removed when ``fill`` raises).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{os.getpid()}.tmp"
    try:
        with open(tmp, "wb") as f:
            fill(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    _fsync_dir(path.parent)  # make the rename itself durable
    return path


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):  # not every file system lets a folder be fsynced
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_bytes(path: str | Path, data: bytes) -> Path:
    """``data`` to ``path``, atomically."""
    return write(path, lambda f: f.write(data))


def write_text(path: str | Path, text: str) -> Path:
    """``text`` (UTF-8) to ``path``, atomically."""
    return write_bytes(path, text.encode("utf-8"))


def write_json(path: str | Path, obj: Any) -> Path:
    """``obj`` as indented JSON with sorted keys and a final newline, atomically."""
    return write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def torch_save(obj: Any, path: str | Path) -> Path:
    """``torch.save(obj)`` to ``path``, atomically."""
    return write(path, lambda f: torch.save(obj, f))


def save_npy(array: np.ndarray, path: str | Path) -> Path:
    """``np.save(array)`` to ``path`` (give it the ``.npy`` suffix), atomically."""
    return write(path, lambda f: np.save(f, np.asarray(array)))


def remove_stale_temps(folder: str | Path) -> list[Path]:
    """Delete temp files left by killed writers (``.*.tmp``) under ``folder``."""
    removed = []
    for tmp in Path(folder).rglob(".*.tmp"):
        with contextlib.suppress(OSError):
            tmp.unlink()
            removed.append(tmp)
    return removed
