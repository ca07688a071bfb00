"""Read recorded benchmark logs (``benchmarks/results/*.txt``) and set their printed
ratios against issue 6's targets.

    python benchmarks/report.py            # table of recorded ratios vs targets
    bash benchmarks/record.sh              # re-run the benchmarks into benchmarks/results/

Each log starts with the command that wrote it, then the benchmark's own header (date,
load average, CPU, torch, threads), then its output, so a number can be traced to a run.
"""
from __future__ import annotations

import re
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
# (log file, pattern of the printed line, target, unit)
TARGETS = [
    ("train_step.txt", r"ratio xcf bf16 / baseline: ([\d.]+)x", 3.5, "x"),
    ("train_step.txt", r"ratio xcf fp32 / baseline: ([\d.]+)x", 1.8, "x"),
    ("train_step_compiled.txt", r"ratio xcf bf16 / baseline: ([\d.]+)x", 3.5, "x"),
    ("train_step_compiled.txt", r"ratio xcf fp32 / baseline: ([\d.]+)x", 1.8, "x"),
    ("attribution.txt", r"ratio xcf bf16 / baseline: ([\d.]+)x", 3.0, "x"),
    ("attribution.txt", r"ratio xcf fp32 / baseline: ([\d.]+)x", 3.0, "x"),
    ("utilisation.txt", r"xcf step bf16: .*utilisation (\d+)%", 75, "%"),
    ("utilisation.txt", r"xcf step fp32: .*utilisation (\d+)%", 75, "%"),
]


def rows(results: Path = RESULTS) -> list[dict]:
    """One row per target: the printed line, the value, the target and whether it is met;
    a log that was not recorded gives a row saying so."""
    out = []
    for name, pattern, target, unit in TARGETS:
        path = results / name
        text = path.read_text() if path.is_file() else ""
        match = re.search(pattern, text)
        line = next((ln for ln in text.splitlines() if match and match.group(0) in ln), "")
        value = float(match.group(1)) if match else None
        out.append({"log": name, "line": line.strip() or "(not recorded)", "value": value,
                    "target": f">= {target:g}{unit}", "met": None if value is None else value >= target,
                    "command": text.splitlines()[0] if text else ""})
    return out


def main() -> None:
    for r in rows():
        met = {True: "met", False: "NOT met", None: "-"}[r["met"]]
        print(f"{r['log']:<26} {r['target']:>8}  {met:<8} {r['line']}")


if __name__ == "__main__":
    main()
