"""What produced a result: code version, library versions, hardware, command, time.

The git commit is looked up from the working directory (where a user runs ``xcf
train``), not from where the library is installed: an installed library knows nothing of
a checkout.  Outside a git work tree, or without git, it is recorded as unknown.
"""
from __future__ import annotations

import contextlib
import os
import platform
import subprocess
import sys
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch

from xcf import __version__
from xcf.runs.machine import cpu_features

__all__ = ["RUNNING", "INTERRUPTED", "DIVERGED", "git_commit", "device_description", "environment",
           "command", "now", "mark_interrupted"]

# Session statuses: "running" while its process works on the run; "finished" or "failed"
# when the process ends it; "diverged" when it stopped at a non-finite loss, weight or
# evaluation number (xcf.train.loop.TrainingDiverged: no result of that epoch recorded);
# "interrupted" for a session whose process died without ending it (SIGKILL, power
# loss), told apart from a live one by the run's lock.
RUNNING = "running"
INTERRUPTED = "interrupted"
DIVERGED = "diverged"


def git_commit(folder: str | Path = ".") -> dict:
    """``{"commit": sha, "dirty": bool}`` of the git work tree holding ``folder`` (default:
    the working directory), or ``{"commit": None, "dirty": None}`` when there is none."""
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(folder), *args], capture_output=True,
                              text=True, timeout=10, check=True).stdout.strip()
    try:
        return {"commit": git("rev-parse", "HEAD"), "dirty": bool(git("status", "--porcelain"))}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}


def _version(package: str) -> Optional[str]:
    try:
        return version(package)
    except PackageNotFoundError:
        return None


def device_description(device: torch.device) -> str:
    """``"cuda: NVIDIA H100 ..."`` or ``"cpu: <processor>, N threads"``."""
    if device.type == "cuda":
        return f"cuda: {torch.cuda.get_device_name(device)}"
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return f"{device.type}: {cpu}, {torch.get_num_threads()} threads"


def environment(device: torch.device) -> dict:
    """What produced a result: code version, library versions, hardware."""
    return {
        "git": git_commit(),
        "versions": {"xcf": __version__, "python": platform.python_version(),
                     "torch": torch.__version__, "torchvision": _version("torchvision"),
                     "numpy": np.__version__, "timm": _version("timm"),
                     "torchattacks": _version("torchattacks")},
        "platform": platform.platform(),
        "device": device_description(device),
        "threads": torch.get_num_threads(),
        "cpu": cpu_features(),  # native bf16 or not: why a bf16 run was fast or slow
    }


def command(argv: Optional[Sequence[str]] = None, cwd: Optional[str] = None) -> str:
    """How this process was started, e.g. ``python -m xcf train cfg.yaml``, with no path of
    this machine: the interpreter is ``python`` (its version is in ``versions``), a path
    under the working directory is written relative to it, any other absolute path as
    ``.../<name>`` (committed provenance travels to other machines)."""
    argv = list(getattr(sys, "orig_argv", sys.argv) if argv is None else argv)
    here = Path(cwd or os.getcwd())
    executable = Path(sys.executable)

    def portable(arg: str) -> str:
        flag, eq, value = arg.partition("=") if arg.startswith("-") else ("", "", arg)
        if not value.startswith("/"):
            return arg
        path = Path(value)
        if path == executable:
            value = "python"
        elif path.is_relative_to(here):
            value = str(path.relative_to(here)) or "."
        else:
            value = f".../{path.name}"
        return f"{flag}{eq}{value}"

    return " ".join(portable(a) for a in argv)


def now() -> str:
    """Local time with offset, e.g. ``2026-01-31T12:00:00+0100``."""
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def mark_interrupted(provenance: dict) -> int:
    """Mark every session of ``provenance`` still ``"running"`` as ``"interrupted"``, in
    place; call it only when no live process holds the run's lock (so none of them can
    still be running).  Returns how many sessions were marked."""
    marked = 0
    for session in provenance.get("sessions") or []:
        if isinstance(session, dict) and session.get("status") == RUNNING:
            session["status"] = INTERRUPTED
            marked += 1
    return marked
