"""Utilisation of xcf's PGD-AT training step: counted FLOPs per second over a matmul peak
measured in the same run at the same dtype.

    python benchmarks/utilisation.py            # fp32 and bf16, 3 timed steps each
    python benchmarks/utilisation.py --quick    # 2 timed steps each

The step is the one of ``benchmarks/train_step.py`` (PreActResNet-18 width 64, batch 64,
PGD-10, :func:`xcf.train.loop.train_epoch` with the ``pgd_at`` objective, channels_last).
FLOPs: :class:`torch.utils.flop_counter.FlopCounterMode` over one step (convolutions and
matrix products, forward and backward, as they are dispatched: input-only gradients in the
attack count only their data gradient).  Element-wise work (batch norm, ReLU, casts) is not
counted, so it shows up as lost utilisation.  Peak: the best of several square matmuls
(``--size``, default 4096) in the step's dtype (fp32, or bf16 for ``amp: bf16``, whose
convolutions and matmuls run in bf16), measured before and after the steps.
"""
from __future__ import annotations

import argparse
import time

try:
    from benchmarks import common
except ImportError:  # run as a script: benchmarks/ is on sys.path, the root is not yet
    import common  # type: ignore[no-redef]

import torch  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from benchmarks import baseline  # noqa: E402
from benchmarks.train_step import xcf_contender  # noqa: E402


class _GlobalOnly:
    """Stands in for FlopCounterMode's per-module tracker, whose backward hooks refuse
    ``torch.autograd.grad`` (the attack's input gradients): every FLOP counts as "Global"."""

    parents = ("Global",)

    def __enter__(self):
        return self

    def __exit__(self, *args):
        return None


def count_flops(fn) -> int:
    """FLOPs that :class:`FlopCounterMode` counts while ``fn()`` runs."""
    counter = FlopCounterMode(display=False)
    counter.mod_tracker = _GlobalOnly()
    with counter:
        fn()
    return counter.get_total_flops()


def matmul_peak(dtype: torch.dtype, n: int, reps: int = 4) -> float:
    """Best FLOP/s of ``reps`` ``(n, n) @ (n, n)`` products in ``dtype``."""
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    c = torch.empty(n, n, dtype=dtype)
    torch.mm(a, b, out=c)
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        torch.mm(a, b, out=c)
        best = min(best, time.perf_counter() - t0)
    return 2 * n ** 3 / best


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="2 timed steps instead of 3")
    p.add_argument("--steps", type=int, default=None, help="timed training steps per dtype")
    p.add_argument("--amp", choices=["none", "bf16", "both"], default="both")
    p.add_argument("--size", type=int, default=4096, help="matmul size for the peak")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args(argv)
    n_steps = args.steps or (2 if args.quick else 3)
    if args.threads:
        torch.set_num_threads(args.threads)
    common.header("Utilisation of the xcf PGD-AT step (FlopCounterMode FLOPs / time / matmul peak)",
                  model="PreActResNet-18 (width 64)", batch=args.batch, attack="PGD-10",
                  timed_steps=n_steps, matmul=f"{args.size}x{args.size}")
    images, labels = baseline.synthetic_cifar(args.batch * 8, seed=0)
    x, y = baseline.to_tensor(images), torch.from_numpy(labels)
    amps = ["none", "bf16"] if args.amp == "both" else [args.amp]
    for amp in amps:
        dtype = torch.bfloat16 if amp == "bf16" else torch.float32
        label = "bf16" if amp == "bf16" else "fp32"
        if amp == "bf16" and not common.bf16_here():
            print(f"xcf step bf16: {common.NOT_NATIVE}", flush=True)
            continue
        step = xcf_contender(amp, args.batch, 10, x, y)
        step()  # warm-up
        flops = count_flops(step)
        peak = matmul_peak(dtype, args.size)
        t0 = time.perf_counter()
        for _ in range(n_steps):
            step()
        seconds = (time.perf_counter() - t0) / n_steps
        peak = max(peak, matmul_peak(dtype, args.size))
        achieved = flops / seconds
        print(f"xcf step {label}: {flops / 1e12:.3f} TFLOP/step, {seconds:.2f} s/step "
              f"({args.batch / seconds:.2f} img/s) = {achieved / 1e9:.0f} GFLOP/s; "
              f"{label} matmul peak {peak / 1e9:.0f} GFLOP/s; utilisation {achieved / peak:.0%}",
              flush=True)


if __name__ == "__main__":
    main()
