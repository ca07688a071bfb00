"""The Performance page's live part: run a benchmark script of ``benchmarks/`` and read
the speed-up ratios it prints.

Each benchmark prints ``ratio xcf <kind> / baseline: <r>x`` per precision it measures,
or ``ratio xcf bf16 / baseline: not native on this CPU``
(:data:`xcf.train.precision.NOT_NATIVE`) where this CPU emulates bf16 and the benchmark
leaves the ratio out.  The recorded full-size results and their targets are
``benchmarks/report.py``'s.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any, Mapping

from xcf.train.precision import NOT_NATIVE

__all__ = ["run_benchmark", "live_ratios"]

_RATIO = re.compile(rf"ratio xcf (\w+) / baseline: ([\d.]+x|{NOT_NATIVE})")


def run_benchmark(root: str | Path, script: str, **flags: Any) -> str:
    """Run ``script`` (a path under ``root``, the checkout) with this interpreter, each
    of ``flags`` as ``--name value`` (``per_class`` -> ``--per-class``, in the order
    given), from ``root`` and with idle OpenMP threads sleeping (``OMP_WAIT_POLICY``
    ``PASSIVE``: a benchmark's threads must not spin against each other).  Prints what
    it printed and returns it; a ``RuntimeError`` with the end of its stderr if it
    failed."""
    args = [script]
    for name, value in flags.items():
        args += [f"--{name.replace('_', '-')}", str(value)]
    out = subprocess.run([sys.executable, *args], cwd=Path(root), capture_output=True,
                         text=True, env={**os.environ, "OMP_WAIT_POLICY": "PASSIVE"})
    if out.returncode:
        raise RuntimeError(f"{args} failed:\n{out.stderr[-2000:]}")
    print(out.stdout)
    return out.stdout


def live_ratios(printed: Mapping[str, str]) -> dict:
    """``"<benchmark> <kind>"`` -> ratio (a float; :data:`~xcf.train.precision.NOT_NATIVE`
    where this CPU emulates bf16) of every ratio line in ``printed`` (benchmark name ->
    what it printed)."""
    return {f"{name} {kind}": value if value == NOT_NATIVE else float(value[:-1])
            for name, text in printed.items() for kind, value in _RATIO.findall(text)}
