"""Shared helpers of the benchmarks: environment header, timing, model construction."""
from __future__ import annotations

import os

# Spinning OpenMP waits make a shared 2-core machine several times slower (see
# book/performance.md); like the xcf CLI, default to passive waits before torch loads.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import datetime  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `python benchmarks/x.py` from anywhere
    sys.path.insert(0, str(ROOT))


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def load_average() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "n/a"


def header(title: str, **settings) -> None:
    """Print what was measured, where and when, before any number."""
    dev = torch.cuda.get_device_name() if torch.cuda.is_available() else "none"
    print(f"# {title}")
    print(f"# {datetime.datetime.now().isoformat(timespec='seconds')}  load average {load_average()}"
          f"  (1, 5, 15 min)")
    print(f"# CPU {cpu_model()}, {os.cpu_count()} cores, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}, "
          f"GPU {dev}")
    print("# " + cpu_flags_line())
    if settings:
        print("# " + ", ".join(f"{k} {v}" for k, v in settings.items()))
    sys.stdout.flush()


NOT_NATIVE = "not native on this CPU"  # = xcf.train.precision.NOT_NATIVE (read before torch loads)


def cpu_flags_line() -> str:
    """Whether this CPU runs bf16 natively, and the instruction sets that decide it
    (:func:`xcf.runs.machine.cpu_features`): a bf16 ratio means something only where it does."""
    from xcf.runs.machine import cpu_features

    f = cpu_features()
    yes = lambda v: "n/a" if v is None else "yes" if v else "no"  # noqa: E731
    return (f"native bf16 {yes(f['native_bf16'])} (AVX2 {yes(f['avx2'])}, AVX-512 "
            f"{yes(f['avx512'])}, AVX-512 BF16 {yes(f['avx512_bf16'])}, AMX {yes(f['amx'])})")


def bf16_here(device: str = "cpu") -> bool:
    """Whether to time a bf16 contender on ``device``: only where bf16 is native.  Where it
    is emulated, each benchmark prints ``ratio xcf bf16 / baseline: not native on this CPU``
    instead of a ratio that would be about the CPU, not about xcf."""
    from xcf.runs.machine import native_bf16

    return native_bf16(device)


class Timer:
    """Accumulated wall-clock seconds and items of one contender."""

    def __init__(self, name: str) -> None:
        self.name, self.seconds, self.items, self.rounds = name, 0.0, 0, []

    def time(self, fn, items: int):
        t0 = time.perf_counter()
        out = fn()
        dt = time.perf_counter() - t0
        self.seconds += dt
        self.items += items
        self.rounds.append(items / dt)
        return out

    @property
    def rate(self) -> float:
        return self.items / self.seconds


def abba(n_rounds: int, contenders: list) -> list:
    """Order of contenders round by round, reversed every other round (A B C, C B A, ...),
    so that a slow drift of the machine's speed does not favour one of them."""
    order = []
    for r in range(n_rounds):
        order.append(list(contenders) if r % 2 == 0 else list(reversed(contenders)))
    return order


def spread(a: Timer, b: Timer) -> str:
    """Smallest, largest and median per-round ratio a / b."""
    ratios = [x / y for x, y in zip(a.rounds, b.rounds)]
    return f"per-round {min(ratios):.2f}-{max(ratios):.2f}, median {statistics.median(ratios):.2f}"


def paper_model(seed: int = 0, width: int = 64, num_classes: int = 10):
    """xcf's PreActResNet-18 with CIFAR-10 normalisation inside, weights from ``seed``."""
    from benchmarks.baseline import CIFAR10_MEAN, CIFAR10_STD
    from xcf.models import preact_resnet18

    torch.manual_seed(seed)
    return preact_resnet18(num_classes, width=width, mean=CIFAR10_MEAN, std=CIFAR10_STD)
