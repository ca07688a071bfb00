"""Keeping freed memory in the process (glibc ``mallopt``) on the xcf PGD-AT step: a
measurement that led us *not* to change xcf.

    python benchmarks/page_faults.py              # bf16, 2 processes per setting, ~2.5 min
    python benchmarks/page_faults.py --amp none   # fp32

glibc serves large blocks with ``mmap`` and returns them, and trims its heap, so each step
page-faults and zeroes again the 4-16 MB activations it frees.  ``keep`` raises the mmap
threshold to glibc's maximum (32 MiB) and the trim threshold to 1 GiB, so freed blocks stay
for reuse.  The setting is process-wide and cannot be undone, so each setting runs in its
own process (``default`` / ``keep`` / ``keep`` / ``default``), each doing one untimed warm-up
step and ``--steps`` timed steps of ``benchmarks/train_step.py``'s xcf step.  Prints, per
setting, img/s, system time and minor page faults per step.
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

try:
    from benchmarks import common
except ImportError:  # run as a script: benchmarks/ is on sys.path, the root is not yet
    import common  # type: ignore[no-redef]


def child(setting: str, amp: str, steps: int) -> None:
    import ctypes

    import torch

    from benchmarks import baseline
    from benchmarks.train_step import xcf_contender

    if setting == "keep":
        libc = ctypes.CDLL("libc.so.6")
        assert libc.mallopt(-3, 32 * 1024 * 1024) == 1   # M_MMAP_THRESHOLD
        assert libc.mallopt(-1, 1024 * 1024 * 1024) == 1  # M_TRIM_THRESHOLD
    images, labels = baseline.synthetic_cifar(64 * 8, seed=0)
    step = xcf_contender(amp, 64, 10, baseline.to_tensor(images), torch.from_numpy(labels))
    step()
    r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    for _ in range(steps):
        step()
    wall, r1 = time.perf_counter() - t0, resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({"wall": wall, "sys": r1.ru_stime - r0.ru_stime,
                      "minflt": r1.ru_minflt - r0.ru_minflt, "steps": steps}))


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--amp", choices=["none", "bf16"], default="bf16")
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--child", choices=["default", "keep"], help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        return child(args.child, args.amp, args.steps)
    common.header("Freed-memory reuse (glibc mallopt) on the xcf PGD-AT step",
                  amp=args.amp, steps_per_process=args.steps, order="default keep keep default")
    if args.amp == "bf16" and not common.bf16_here():
        print(f"bf16: {common.NOT_NATIVE}; measure fp32 with --amp none")
        return
    totals = {"default": [0.0, 0.0, 0, 0], "keep": [0.0, 0.0, 0, 0]}
    for setting in ("default", "keep", "keep", "default"):
        out = subprocess.run([sys.executable, __file__, "--child", setting, "--amp", args.amp,
                              "--steps", str(args.steps)], capture_output=True, text=True, check=True)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        for i, k in enumerate(("wall", "sys", "minflt", "steps")):
            totals[setting][i] += r[k]
    for setting, (wall, sys_, flt, n) in totals.items():
        print(f"{setting:<8} {64 * n / wall:6.2f} img/s  system time {sys_ / n:.2f} s/step  "
              f"minor page faults {flt / n:,.0f}/step")
    print(f"ratio keep / default: {totals['default'][0] / totals['keep'][0]:.3f}x")


if __name__ == "__main__":
    main()
