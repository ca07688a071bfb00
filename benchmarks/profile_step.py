"""Where one xcf PGD-AT step spends its time: ``torch.profiler`` grouped by kind of work.

    python benchmarks/profile_step.py             # bf16
    python benchmarks/profile_step.py --amp none  # fp32
    python benchmarks/profile_step.py --table     # also torch.profiler's own top-25 table
    python benchmarks/profile_step.py --compile   # the compiled step (model.compile())

The step of ``benchmarks/train_step.py`` (PreActResNet-18 width 64, batch 64, PGD-10,
channels_last), after one warm-up step.  Operators' self CPU time is summed into groups
(convolution forward / backward, batch norm, ReLU, additions, casts and copies, the rest)
and printed as shares of the total; about 30 s (plus the compile with ``--compile``).
In the compiled step, inductor's fused kernels (batch norm, ReLU and additions in one
loop) run inside its graph calls and are counted as "fused kernels (inductor)".
"""
from __future__ import annotations

import argparse
import time
from collections import defaultdict

try:
    from benchmarks import common
except ImportError:  # run as a script: benchmarks/ is on sys.path, the root is not yet
    import common  # type: ignore[no-redef]

import torch  # noqa: E402
from torch.profiler import ProfilerActivity, profile  # noqa: E402

from benchmarks import baseline  # noqa: E402
from benchmarks.train_step import xcf_contender  # noqa: E402

GROUPS = [  # (group, substrings of operator names), first match wins
    ("convolution backward", ("convolution_backward",)),
    ("convolution forward", ("mkldnn_convolution", "_convolution", "convolution")),
    ("batch norm", ("batch_norm",)),
    ("ReLU", ("relu", "clamp_min", "threshold_backward")),
    ("additions", ("aten::add",)),
    ("casts and copies", ("copy_", "_to_copy", "aten::to")),
    ("fused kernels (inductor)", ("CompiledFxGraph",)),
    ("linear head, loss, optimiser, PGD arithmetic, other", ("",)),
]


def group_of(name: str) -> str:
    for group, keys in GROUPS:
        if any(k in name for k in keys):
            return group
    return GROUPS[-1][0]


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--amp", choices=["none", "bf16"], default="bf16")
    p.add_argument("--table", action="store_true")
    p.add_argument("--compile", action="store_true", help="profile the compiled step")
    args = p.parse_args(argv)
    kind = ("bf16" if args.amp == "bf16" else "fp32") + (", compiled" if args.compile else "")
    common.header(f"torch.profiler on one xcf PGD-AT step ({kind})",
                  model="PreActResNet-18 (width 64)", batch=64, attack="PGD-10")
    if args.amp == "bf16" and not common.bf16_here():
        print(f"bf16: {common.NOT_NATIVE}; profile fp32 with --amp none")
        return
    images, labels = baseline.synthetic_cifar(64 * 4, seed=0)
    step = xcf_contender(args.amp, 64, 10, baseline.to_tensor(images), torch.from_numpy(labels),
                         compile_model=args.compile)
    step()
    if args.compile:
        step()  # a second untimed step: the first may still have compiled a graph or two
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        t0 = time.perf_counter()
        step()
        wall = time.perf_counter() - t0
    shares: dict[str, float] = defaultdict(float)
    events = prof.key_averages()
    for e in events:
        shares[group_of(e.key)] += e.self_cpu_time_total
    total = sum(shares.values())
    print(f"step {wall:.2f} s under the profiler; self CPU time {total / 1e6:.2f} s")
    for group, _ in GROUPS:
        print(f"  {group:<52} {shares[group] / total:6.1%}")
    if args.table:
        print(events.table(sort_by="self_cpu_time_total", row_limit=25))


if __name__ == "__main__":
    main()
