"""PGD-AT training step: xcf's fast path against the official algorithm, side by side.

    python benchmarks/train_step.py            # 4 rounds, under 3 min on 2 quiet cores
    python benchmarks/train_step.py --quick    # 2 rounds
    python benchmarks/train_step.py --compile  # xcf compiled (model.compile()), 3 rounds;
                                               # compile time apart (a cold compile of both
                                               # dtypes takes ~100 s: record.sh warms the
                                               # inductor cache with compile.py first)
    python benchmarks/train_step.py --device cuda  # on the GPU, with an fp16 row
                                                   # (GradScaler); benchmarks/gpu.sh

Contenders, on PreActResNet-18 (width 64), batch 64, PGD-10 (eps 8/255, step 2/255),
SGD (lr 0.1, momentum 0.9, weight decay 5e-4), from the same initial weights:

- ``baseline``: the official loop (``benchmarks/baseline.py``): DataLoader with per-sample
  PIL augmentation, PGD whose every step calls ``loss.backward()`` (weight gradients
  too) in train mode, normalisation outside the model, the update, then an extra clean
  forward with autograd on; fp32, NCHW.
- ``xcf fp32`` / ``xcf bf16``: one step of :func:`xcf.train.loop.train_epoch` with the
  ``pgd_at`` objective that :func:`xcf.train.objectives.build_objective` makes from the paper's
  :class:`~xcf.runs.config.TrainConfig` (Table 2): augmentation on the device, PGD-10 with
  input gradients only and frozen parameters, the model in train mode as in the official
  loop (the config's default ``attack_mode``), the update; channels_last; ``amp`` none or
  bf16 autocast.  So the headline ratios compare the same algorithm on both sides.
- ``xcf fp32, eval-mode attack``: the same with ``attack_mode: eval``, a deviation (batch
  norm uses running statistics during the attack), on its own row and ratio.  No clean-accuracy
  forward: it only logs, and xcf leaves it out unless ``log_train_clean`` is set
  (``--log-train-clean`` puts it back, one more forward per batch).

On ``--device cuda`` every contender runs on the GPU (the baseline's loader stays on the
CPU and its batches are copied over, as in the official code), a row ``xcf pgd_at fp16
autocast`` (with :func:`xcf.train.precision.grad_scaler`) is added, and the header names the
device; on the CPU (the default) the output is as before (``benchmarks/report.py``).

Data: synthetic CIFAR-shaped uint8 images from a fixed seed (CIFAR-10 cannot be
downloaded here); speed does not depend on pixel values.  Contenders alternate within one
process, in A B C / C B A order, one step each per round, after one untimed warm-up step
each.  Prints img/s per contender and the ratios to the baseline: the ratio of the total
rates, with the range and the median of the per-round ratios (this shared machine's
speed moves by several per cent from minute to minute).
"""
from __future__ import annotations

import argparse
import os
import time

try:
    from benchmarks import common
except ImportError:  # run as a script: benchmarks/ is on sys.path, the root is not yet
    import common  # type: ignore[no-redef]

import torch  # noqa: E402

from benchmarks import baseline  # noqa: E402
from xcf.runs.config import TrainConfig  # noqa: E402
from xcf.train.objectives import build_objective  # noqa: E402
from xcf.train.precision import NOT_NATIVE, grad_scaler  # noqa: E402
from xcf.train.loop import sgd, train_epoch  # noqa: E402


def xcf_contender(amp: str, batch: int, steps: int, x: torch.Tensor, y: torch.Tensor, *,
                  compile_model: bool = False, attack_mode: str | None = None,
                  log_train_clean: bool = False, device: str = "cpu"):
    """A function running one xcf training step on the next batch of ``(x, y)``, with
    the paper's config (Table 2) except ``amp``, ``batch``, ``steps`` and, if given,
    ``attack_mode``; ``compile`` and ``log_train_clean`` as in the config."""
    extra = {"attack_mode": attack_mode} if attack_mode else {}
    cfg = TrainConfig(dataset="cifar10", model="preact_resnet18", model_kwargs={"width": 64},
                      batch_size=batch, attack_steps=steps, amp=amp, channels_last=True,
                      compile=compile_model, log_train_clean=log_train_clean,
                      device=device, **extra).resolved()
    model = common.paper_model().to(device).to(memory_format=torch.channels_last)
    if cfg.compile:
        model.compile()  # as xcf.train.loop does for TrainConfig(compile=True)
    opt = sgd(model, cfg.lr, cfg.momentum, cfg.weight_decay)
    objective = build_objective(cfg)
    gen = torch.Generator(device=device).manual_seed(0)
    scaler = grad_scaler(cfg.amp, device)  # fp16 only
    x, y = x.to(device), y.to(device)
    state = {"i": 0}

    def step():
        i = state["i"] % (len(x) // batch)
        state["i"] += 1
        xb, yb = x[i * batch:(i + 1) * batch], y[i * batch:(i + 1) * batch]
        return train_epoch(model, opt, xb, yb, epoch=1, lr=cfg.lr, batch_size=batch,
                           objective=objective, augment=cfg.augment, generator=gen,
                           amp=cfg.amp, channels_last=cfg.channels_last,
                           log_clean=cfg.log_train_clean, scaler=scaler)

    return step


def baseline_contender(batch: int, steps: int, images, labels, device: str = "cpu"):
    net = baseline.OfficialStyleNet(common.paper_model()).to(device)
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    torch.manual_seed(0)
    batches = baseline.endless(baseline.train_loader(images, labels, batch, seed=0))

    def step():
        xb, yb = next(batches)  # the loader's per-sample PIL work is part of the step
        xb, yb = xb.to(device), yb.to(device)  # the official code's .cuda()
        return baseline.train_step(net, opt, xb, yb, eps=8 / 255, alpha=2 / 255, steps=steps)

    return step


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="2 rounds")
    p.add_argument("--rounds", type=int, default=None)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--steps", type=int, default=10, help="PGD steps")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument("--attack-mode", choices=["eval", "train"], default=None,
                   help="xcf's model mode during the attack in the headline rows (default: "
                   "the config's, train, as the official loop)")
    p.add_argument("--compile", action="store_true",
                   help="xcf contenders with model.compile() (inductor); compile time printed apart")
    p.add_argument("--log-train-clean", action="store_true",
                   help="xcf also logs clean training accuracy (one more forward per batch)")
    p.add_argument("--device", default="cpu",
                   help="cpu (default) or cuda[:N]: where every contender runs; on a GPU an "
                   "fp16 (GradScaler) row is added")
    args = p.parse_args(argv)
    on_gpu = args.device != "cpu"
    if on_gpu and not torch.cuda.is_available():
        p.error(f"--device {args.device}: CUDA is not available here")
    rounds = args.rounds or (2 if args.quick else 3 if args.compile else 4)
    if args.threads:
        torch.set_num_threads(args.threads)
    common.header("PGD-AT training step: xcf vs the official algorithm",
                  model="PreActResNet-18 (width 64)", batch=args.batch, attack=f"PGD-{args.steps}",
                  rounds=rounds, data="synthetic CIFAR-shaped uint8 images, seed 0",
                  xcf_attack_mode=args.attack_mode or TrainConfig().attack_mode,
                  xcf_compiled=args.compile, xcf_log_train_clean=args.log_train_clean,
                  **({"inductor_cache": os.environ.get("TORCHINDUCTOR_CACHE_DIR", "torch's default")}
                     if args.compile else {}),
                  **({"device": f"{args.device} ({torch.cuda.get_device_name(args.device)})"}
                     if on_gpu else {}))

    images, labels = baseline.synthetic_cifar(args.batch * 8, seed=0)
    x, y = baseline.to_tensor(images), torch.from_numpy(labels)
    tag = ", compiled" if args.compile else ""
    dev = {"device": args.device}
    contenders = {
        "baseline (official algorithm, fp32, NCHW)": baseline_contender(
            args.batch, args.steps, images, labels, **dev),
        f"xcf pgd_at fp32 (channels_last{tag})": xcf_contender(
            "none", args.batch, args.steps, x, y, attack_mode=args.attack_mode,
            compile_model=args.compile, log_train_clean=args.log_train_clean, **dev),
        f"xcf pgd_at fp32, eval-mode attack (channels_last{tag})": xcf_contender(
            "none", args.batch, args.steps, x, y, attack_mode="eval",
            compile_model=args.compile, log_train_clean=args.log_train_clean, **dev),
    }
    with_bf16 = common.bf16_here(args.device)
    if with_bf16:  # emulated bf16 (an AVX2-only CPU) would time the CPU, not xcf
        contenders[f"xcf pgd_at bf16 autocast (channels_last{tag})"] = xcf_contender(
            "bf16", args.batch, args.steps, x, y, attack_mode=args.attack_mode,
            compile_model=args.compile, log_train_clean=args.log_train_clean, **dev)
    if on_gpu:  # fp16 autocast with loss scaling: the fast path of T4 / V100 tensor cores
        contenders[f"xcf pgd_at fp16 autocast + GradScaler (channels_last{tag})"] = xcf_contender(
            "fp16", args.batch, args.steps, x, y, attack_mode=args.attack_mode,
            compile_model=args.compile, log_train_clean=args.log_train_clean, **dev)
    timers = {name: common.Timer(name) for name in contenders}
    t0 = time.perf_counter()
    for name, step in contenders.items():  # warm-up: allocator, oneDNN caches, compilation
        t1 = time.perf_counter()
        step()
        if args.compile and name.startswith("xcf"):
            print(f"# {name}: first step (compiles) {time.perf_counter() - t1:.0f} s", flush=True)
    print(f"# warm-up {time.perf_counter() - t0:.0f} s", flush=True)
    for order in common.abba(rounds, list(contenders)):
        for name in order:
            timers[name].time(contenders[name], args.batch)
    base, fp32, fp32_eval, *rest = timers.values()
    bf16 = rest.pop(0) if with_bf16 else None
    fp16 = rest
    width = max(map(len, timers))
    for t in timers.values():
        print(f"{t.name:<{width}}  {t.rate:6.2f} img/s")
    print(f"ratio xcf fp32 / baseline: {fp32.rate / base.rate:.2f}x  ({common.spread(fp32, base)})")
    if bf16 is None:
        print(f"ratio xcf bf16 / baseline: {NOT_NATIVE}")
    else:
        print(f"ratio xcf bf16 / baseline: {bf16.rate / base.rate:.2f}x  "
              f"({common.spread(bf16, base)})")
    print(f"ratio xcf fp32 eval-mode attack (a deviation) / baseline: "
          f"{fp32_eval.rate / base.rate:.2f}x  ({common.spread(fp32_eval, base)})")
    for half in fp16:
        print(f"ratio xcf fp16 / baseline: {half.rate / base.rate:.2f}x  "
              f"({common.spread(half, base)})")
    print(f"# total {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
