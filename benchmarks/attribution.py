"""Algorithm 1 (C, CAS and robust accuracy): ``xcf.attribution.measure`` against the
official algorithm, side by side.

    python benchmarks/attribution.py            # 2 classes x 40 images, 2 rounds, < 3 min
    python benchmarks/attribution.py --quick    # 2 classes x 20 images

Both on PreActResNet-18 (width 64), PGD-20 (eps 8/255, step eps/4), model in eval mode, the
same weights:

- ``baseline``: ``benchmarks/baseline.py``'s :func:`~benchmarks.baseline.attribution`, as
  the official ``evaluate_matrix.py``: class by class, PGD whose every step calls
  ``loss.backward()`` (weight gradients too), a feature forward for the attribution
  vectors and a second full forward for the accuracy; fp32, NCHW.
- ``xcf fp32``: :func:`xcf.attribution.measure` with :class:`xcf.attacks.PGD` (input
  gradients only, frozen weights; one forward gives features and logits); channels_last,
  as xcf's per-epoch evaluation runs it.
- ``xcf bf16``: the same through :class:`xcf.train.precision.AutocastModel`, what the evaluation
  uses when a run has ``amp: bf16``.

Test-set size: the official code attacks 100 images of one class at a time; 10 classes x
100 images would take the baseline about 7 minutes on 2 CPU cores.  Small batches are no way
out (with 10 images a batch, xcf ran at about 124 GFLOP/s against 188 in a batch-64
training step, the baseline at 124 against 157: batch size would decide the ratio), so the
benchmark keeps the work per image and the batch size realistic and cuts the number of
classes instead: the network has ``--classes`` outputs (default 2; the head's share of the
work is negligible) and the test set is ``--classes`` x ``--per-class`` images (default 40);
both sides attack ``--per-class`` images at a time (the baseline one class per batch, xcf's
``measure`` with ``batch_size`` equal to it).  Images are synthetic CIFAR-shaped uint8 from a
fixed seed (no CIFAR-10 download here); the model's batch-norm statistics are set from them
first.  The whole set is measured once per round, contenders in A B C / C B A order, after
an untimed warm-up run of each with PGD-1.
"""
from __future__ import annotations

import argparse
import copy
import time

try:
    from benchmarks import common
except ImportError:  # run as a script: benchmarks/ is on sys.path, the root is not yet
    import common  # type: ignore[no-redef]

import torch  # noqa: E402

from benchmarks import baseline  # noqa: E402
from xcf.attacks import PGD  # noqa: E402
from xcf.attribution import cas, measure  # noqa: E402
from xcf.train.precision import NOT_NATIVE, AutocastModel  # noqa: E402

EPS = 8 / 255


def calibrated_model(x: torch.Tensor, num_classes: int) -> torch.nn.Module:
    """The benchmark model with batch-norm running statistics from ``x`` (not the
    initial 0/1), so that eval-mode activations have realistic scales."""
    model = common.paper_model(num_classes=num_classes)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.momentum = None  # cumulative average over the calibration batches
    model.train()
    with torch.no_grad():
        for chunk in x.split(40):
            model(chunk)
    return model.eval()


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="20 images per class instead of 40")
    p.add_argument("--classes", type=int, default=2)
    p.add_argument("--per-class", type=int, default=None)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--steps", type=int, default=20, help="PGD steps")
    p.add_argument("--no-bf16", action="store_true", help="leave out the bf16 contender")
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args(argv)
    per_class = args.per_class or (20 if args.quick else 40)
    K = args.classes
    if args.threads:
        torch.set_num_threads(args.threads)
    common.header("Algorithm 1 (C, CAS, robust accuracy): xcf.attribution.measure vs the official algorithm",
                  model="PreActResNet-18 (width 64)", attack=f"PGD-{args.steps}",
                  test_set=f"{K} classes x {per_class} images", batch=per_class, rounds=args.rounds,
                  data="synthetic CIFAR-shaped uint8 images, seed 0")

    images, labels = baseline.synthetic_cifar(K * per_class, num_classes=K, seed=0)
    x, y = baseline.to_tensor(images), torch.from_numpy(labels)
    model = calibrated_model(x, K)
    net = baseline.OfficialStyleNet(copy.deepcopy(model))
    fast = copy.deepcopy(model).to(memory_format=torch.channels_last)
    x_cl = x.contiguous(memory_format=torch.channels_last)
    torch.manual_seed(0)

    def run_baseline(steps):
        return lambda: baseline.attribution(net, x, y, num_classes=K, eps=EPS, steps=steps,
                                            batch=per_class)

    def run_xcf(steps, amp):
        target = AutocastModel(fast, x.device) if amp == "bf16" else fast
        return lambda: measure(target, x_cl, y, PGD(eps=EPS, steps=steps), batch_size=per_class)

    names = {"baseline": "baseline (official algorithm, fp32, NCHW)",
             "fp32": "xcf measure fp32 (channels_last)",
             "bf16": "xcf measure bf16 autocast (channels_last)"}
    if args.no_bf16 or not common.bf16_here():  # emulated bf16 would time the CPU, not xcf
        del names["bf16"]
    make = {"baseline": run_baseline, "fp32": lambda s: run_xcf(s, "none"),
            "bf16": lambda s: run_xcf(s, "bf16")}
    t0 = time.perf_counter()
    for key in names:
        make[key](1)()
    print(f"# warm-up {time.perf_counter() - t0:.0f} s", flush=True)
    timers = {key: common.Timer(names[key]) for key in names}
    results = {}
    for order_ in common.abba(args.rounds, list(names)):
        for key in order_:
            results[key] = timers[key].time(make[key](args.steps), len(y))
    width = max(len(n) for n in names.values())
    for key, t in timers.items():
        out = results[key]
        acc, cas_ = (out[1], cas(out[0])) if key == "baseline" else (out.accuracy, out.cas)
        print(f"{t.name:<{width}}  {t.rate:6.2f} img/s  (robust acc {acc:.2f}, CAS {cas_:.2f})")
    base = timers["baseline"]
    for key in [k for k in names if k != "baseline"]:
        print(f"ratio xcf {key} / baseline: {timers[key].rate / base.rate:.2f}x  "
              f"({common.spread(timers[key], base)})")
    if not args.no_bf16 and "bf16" not in names:
        print(f"ratio xcf bf16 / baseline: {NOT_NATIVE}")
    print(f"# total {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
