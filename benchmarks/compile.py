"""torch.compile on the xcf PGD-AT step: compile time, and eager vs compiled speed.

    python benchmarks/compile.py --amp none    # fp32, about 2.5 min on 2 cores
    python benchmarks/compile.py --amp bf16

The step of ``benchmarks/train_step.py`` (PreActResNet-18 width 64, batch 64, PGD-10,
:func:`xcf.train.loop.train_epoch`, channels_last) twice, from the same weights: once eager,
once with the model compiled in place (``model.compile()``, inductor, default mode).  The
first compiled step compiles every graph the step needs (attack: eval mode with frozen
weights and input gradients; update: train mode; clean forward: no grad) and is reported
on its own (with an empty inductor cache, unless ``TORCHINDUCTOR_CACHE_DIR`` is set); then
the two alternate (A B / B A) for ``--rounds`` rounds.
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time

# A cold compile unless the caller points inductor at a cache: its on-disk caches would
# otherwise make a second run report seconds instead of the real compile time.
os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", tempfile.mkdtemp(prefix="xcf-inductor-"))

try:
    from benchmarks import common
except ImportError:  # run as a script: benchmarks/ is on sys.path, the root is not yet
    import common  # type: ignore[no-redef]

import torch  # noqa: E402

from benchmarks import baseline  # noqa: E402
from benchmarks.train_step import xcf_contender  # noqa: E402


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--amp", choices=["none", "bf16"], default="none")
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--quick", action="store_true", help="2 rounds")
    p.add_argument("--batch", type=int, default=64)
    args = p.parse_args(argv)
    rounds = 2 if args.quick else args.rounds
    label = "bf16" if args.amp == "bf16" else "fp32"
    common.header(f"torch.compile on the xcf PGD-AT step ({label})",
                  model="PreActResNet-18 (width 64)", batch=args.batch, attack="PGD-10",
                  rounds=rounds, compile="model.compile() (inductor, default mode)",
                  inductor_cache=os.environ["TORCHINDUCTOR_CACHE_DIR"])
    if args.amp == "bf16" and not common.bf16_here():
        print(f"ratio compiled / eager: {common.NOT_NATIVE}")
        return
    images, labels = baseline.synthetic_cifar(args.batch * 8, seed=0)
    x, y = baseline.to_tensor(images), torch.from_numpy(labels)
    eager = xcf_contender(args.amp, args.batch, 10, x, y)
    compiled = xcf_contender(args.amp, args.batch, 10, x, y, compile_model=True)
    t0 = time.perf_counter()
    compiled()
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    compiled()
    second = time.perf_counter() - t0
    eager()
    print(f"compiled: first step (compiles) {first:.0f} s, second step {second:.1f} s", flush=True)
    timers = {"eager": common.Timer(f"xcf pgd_at {label} eager"),
              "compiled": common.Timer(f"xcf pgd_at {label} compiled")}
    steps = {"eager": eager, "compiled": compiled}
    for order in common.abba(rounds, ["eager", "compiled"]):
        for key in order:
            timers[key].time(steps[key], args.batch)
    for t in timers.values():
        print(f"{t.name:<28}  {t.rate:6.2f} img/s")
    e, c = timers["eager"], timers["compiled"]
    saved = args.batch / e.rate - args.batch / c.rate     # seconds per step
    overhead = first - args.batch / c.rate                  # compile time
    pays = f"compiling ({overhead:.0f} s) pays after {overhead / saved:.0f} steps" if saved > 0 \
        else "compiling never pays"
    print(f"ratio compiled / eager: {c.rate / e.rate:.2f}x  ({common.spread(c, e)}); {pays}")


if __name__ == "__main__":
    main()
