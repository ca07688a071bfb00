"""Robust accuracy with fp32 and with bf16 autocast, same seeds: does ``amp: bf16`` change
what training reaches?

    python benchmarks/amp_accuracy.py             # seeds 0 and 1, about 2 min on 2 cores
    python benchmarks/amp_accuracy.py --seeds 0   # one seed

Trains ``configs/smoke.yaml`` (PGD-AT of a small CNN on the planted images, 10 epochs) with
``amp: none`` and ``amp: bf16`` for each seed, each run in its own fresh run folder, and
prints the last epoch's test robust accuracy (PGD, the run's own evaluation, which runs
at the run's amp setting), clean accuracy, CAS and training time, then the mean
bf16 - fp32 difference beside the seed-to-seed spread of fp32.
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time

try:
    from benchmarks import common
except ImportError:  # run as a script: benchmarks/ is on sys.path, the root is not yet
    import common  # type: ignore[no-redef]

from xcf.train.runner import train  # noqa: E402


def run(config: str, amp: str, seed: int, runs_dir: str) -> dict:
    t0 = time.perf_counter()
    r = train(config, runs_dir=runs_dir, progress=False, log=lambda line: None, amp=amp, seed=seed)
    last = r.metrics()[-1]
    return {"ra": last["test_robust_acc"], "clean": last["test_clean_acc"], "cas": last["cas"],
            "seconds": time.perf_counter() - t0}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--config", default=str(common.ROOT / "configs" / "smoke.yaml"))
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    args = p.parse_args(argv)
    common.header("Robust accuracy: fp32 vs bf16 autocast, same seeds",
                  config=args.config, seeds=args.seeds)
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            for amp in ("none", "bf16"):
                rows[amp, seed] = res = run(args.config, amp, seed, tmp)
                print(f"seed {seed} amp {amp:<4}  test robust acc {res['ra']:.4f}  clean {res['clean']:.4f}"
                      f"  CAS {res['cas']:.2f}  {res['seconds']:.0f} s", flush=True)
    diffs = [rows["bf16", s]["ra"] - rows["none", s]["ra"] for s in args.seeds]
    fp32 = [rows["none", s]["ra"] for s in args.seeds]
    spread = statistics.stdev(fp32) if len(fp32) > 1 else float("nan")
    print(f"robust acc bf16 - fp32: mean {statistics.mean(diffs):+.4f} "
          f"(per seed {', '.join(f'{d:+.4f}' for d in diffs)}); fp32 seed-to-seed std {spread:.4f}")


if __name__ == "__main__":
    main()
