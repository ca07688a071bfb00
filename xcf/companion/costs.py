"""Training plans: the runs a notebook trains at a profile, their order, and their cost.

A plan is what a notebook prints before it trains: each run (a KD teacher before its
student, runs shared with other notebooks once), its epochs and an estimated time.  The
cost of a run is counted, not guessed: :func:`image_flops` runs the model once forward and
once backward under :class:`torch.utils.flop_counter.FlopCounterMode` (on the CPU, at
batch 2), and :func:`run_flops` multiplies by the passes the protocol of Wei, Guo & Wang
(ICML 2025, Table 2) makes per image and epoch: PGD-K training (K attack steps of forward
+ input gradient, then one forward + backward of the weights) and the per-epoch
evaluation (PGD-20 on the evaluation set, plus one clean forward pass).

Hours follow from FLOPs either with a measured time per FLOP on this device
(:func:`measured_seconds_per_flop`) or with a GPU's datasheet peak and an assumed
utilisation (:data:`GPUS`, :data:`ASSUMED_UTILISATION`).  Both are **estimates until a
GPU run is recorded**; AutoAttack at the end of a run and data loading are not counted.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Mapping, Optional, Sequence

import torch

from xcf.runs.config import TrainConfig, make_config
from xcf.models import build
from xcf.companion.page_runs import page_runs
from xcf.runs.identity import folder_name

__all__ = ["DATASET_SIZES", "GPUS", "ASSUMED_UTILISATION", "ESTIMATE_LABEL", "PlannedRun",
           "dataset_size", "image_flops", "run_flops", "notebook_runs", "plan_runs",
           "measured_seconds_per_flop", "gpu_hours", "duration", "format_pflop", "format_plan",
           "print_plan"]

# (training images, test images, classes, image shape) of each dataset's full split.
DATASET_SIZES: dict[str, tuple[int, int, int, tuple[int, int, int]]] = {
    "cifar10": (50_000, 10_000, 10, (3, 32, 32)),
    "cifar100": (50_000, 10_000, 100, (3, 32, 32)),
    "tiny-imagenet": (100_000, 10_000, 200, (3, 64, 64)),
    "fashion-mnist": (60_000, 10_000, 10, (1, 28, 28)),
}
# Dense datasheet peak, FLOP/s, in the precision an fp32 run of PyTorch uses: plain fp32 on
# T4 and V100; TF32 tensor cores on A100, L4 and H100, where cuDNN convolutions use TF32 by
# default (torch.backends.cudnn.allow_tf32).  Vendor datasheets, without sparsity.
GPUS: dict[str, float] = {
    "T4": 8.1e12,
    "V100": 15.7e12,
    "L4": 60e12,
    "A100": 156e12,
    "H100": 495e12,
}
# Share of the peak a ResNet-18 training step reaches: an assumption (small 32 px images
# keep big GPUs far from their peak), replaced by a measured step once a GPU run is recorded.
ASSUMED_UTILISATION: dict[str, float] = {"T4": 0.5, "V100": 0.5, "L4": 0.3, "A100": 0.2,
                                         "H100": 0.15}
ESTIMATE_LABEL = "an estimate until a GPU run is recorded"


@dataclass(frozen=True)
class PlannedRun:
    """One run of a plan: a label, its config, epochs, and total FLOPs."""

    label: str
    config: TrainConfig
    flops: float

    @property
    def epochs(self) -> int:
        return self.config.epochs

    @property
    def name(self) -> str:
        """The run folder's name (:func:`xcf.runs.identity.folder_name`)."""
        return folder_name(self.config)


def dataset_size(c: TrainConfig) -> tuple[int, int, int, tuple[int, int, int]]:
    """``(n_train, n_eval, classes, image_shape)`` a config trains and evaluates on:
    the subsets ``n_train`` / ``n_test`` / ``eval_n`` of the dataset's full split."""
    key = str(c.dataset).lower().replace("_", "-")
    if key == "planted":
        kw = c.data_kwargs
        size = int(kw.get("image_size", 32))
        full = (2400, 600, int(kw.get("num_classes", 6)),
                (int(kw.get("channels", 3)), size, size))
    else:
        full = DATASET_SIZES[key]
        if key == "fashion-mnist":
            side = int(c.data_kwargs.get("pad_to") or c.data_kwargs.get("image_size", 28))
            full = (*full[:3], (1, side, side))
    n_train = c.n_train or full[0]
    n_eval = c.eval_n or c.n_test or full[1]
    return n_train, min(n_eval, c.n_test or full[1]), full[2], full[3]


def image_flops(c: TrainConfig) -> dict[str, float]:
    """FLOPs per image of config ``c``'s model, counted by
    :class:`~torch.utils.flop_counter.FlopCounterMode` on the CPU at batch 2:
    ``forward`` (one forward pass), ``attack`` (forward + gradient with respect to the
    input only, one PGD step) and ``train`` (forward + backward of the weights)."""
    from torch.utils.flop_counter import FlopCounterMode

    _, _, classes, shape = dataset_size(c)
    kwargs = dict(c.model_kwargs)
    if c.model.replace("-", "_").lower() == "deit_tiny":
        kwargs.setdefault("img_size", shape[-1])
    torch.manual_seed(0)
    model = build(c.model, classes, shape[0], **kwargs).train()
    x = torch.rand(2, *shape)
    y = torch.zeros(2, dtype=torch.long)

    def count(fn) -> float:
        with FlopCounterMode(display=False) as counter:
            fn()
        return counter.get_total_flops() / 2

    def attack():
        for p in model.parameters():
            p.requires_grad_(False)
        xa = x.clone().requires_grad_(True)
        torch.nn.functional.cross_entropy(model(xa), y).backward()
        for p in model.parameters():
            p.requires_grad_(True)

    def train():
        torch.nn.functional.cross_entropy(model(x), y).backward()

    with torch.no_grad():
        forward = count(lambda: model(x))
    return {"forward": forward, "attack": count(attack), "train": count(train)}


def run_flops(c: TrainConfig, per_image: Optional[Mapping[str, float]] = None) -> float:
    """Total FLOPs of training run ``c``: per epoch, every training image gets the attack
    steps of its objective (PGD-K: ``attack_steps``; fast AT: one FGSM step; standard:
    none), one weight update (TRADES and KD-AT add a forward pass: the clean logits, the
    teacher's logits), and every evaluation image (``eval_n``, and ``holdout_n``) gets
    ``eval_steps`` attack steps and two forward passes (adversarial and clean C)."""
    f = dict(per_image or image_flops(c))
    n_train, n_eval, _, _ = dataset_size(c)
    if c.holdout_n:
        n_train -= c.holdout_n
        n_eval += c.holdout_n
    steps = {"standard": 0, "fast_at": 1}.get(c.objective, c.attack_steps)
    extra = f["forward"] if c.objective in ("trades", "kd_at") else 0.0
    per_train = steps * f["attack"] + f["train"] + extra
    per_eval = c.eval_steps * f["attack"] + 2 * f["forward"]
    return c.epochs * (n_train * per_train + n_eval * per_eval)


def notebook_runs(notebook: str, knobs: Mapping[str, Any]) -> list[tuple[str, dict]]:
    """``(label, config)`` of every run ``notebook`` trains with ``knobs`` (a profile's
    section, :func:`xcf.companion.profiles.profile_knobs`), in the order it trains them: a KD
    teacher before its student.  The runs are the page's, as
    :func:`xcf.companion.page_runs.page_runs` declares them; a KD student's teacher is named
    by the teacher's run folder (``runs/<name>``), as :func:`xcf.companion.locate.kd_overrides`
    does."""
    out = []
    for run in page_runs(notebook, knobs):
        folder = None
        if run.teacher is not None:
            folder = f"runs/{PlannedRun('', make_config(run.teacher.config()), 0.0).name}"
        out.append((run.label, run.config(folder)))
    return out


def plan_runs(runs: Sequence[tuple[str, Mapping[str, Any]]]) -> list[PlannedRun]:
    """Validated configs with their FLOPs; a run asked for twice (the same key) is kept
    once, where it first appears, as the trainer reuses it."""
    out, seen, per_model = [], set(), {}
    for label, config in runs:
        c = make_config(dict(config))
        if c.key() in seen:
            continue
        seen.add(c.key())
        shape = (c.model, tuple(sorted(c.model_kwargs.items())), dataset_size(c)[2:])
        if repr(shape) not in per_model:
            per_model[repr(shape)] = image_flops(c)
        out.append(PlannedRun(label, c, run_flops(c, per_model[repr(shape)])))
    return out


def measured_seconds_per_flop(config: TrainConfig, device: str | torch.device,
                              batch: Optional[int] = None, repeats: int = 2) -> float:
    """Seconds per FLOP of one forward + backward training pass of ``config``'s model on
    ``device``, timed after a warm-up (batch: the config's, at most 8 on a CPU)."""
    device = torch.device(device)
    _, _, classes, shape = dataset_size(config)
    kwargs = dict(config.model_kwargs)
    if config.model.replace("-", "_").lower() == "deit_tiny":
        kwargs.setdefault("img_size", shape[-1])
    b = batch or (config.batch_size if device.type != "cpu" else min(8, config.batch_size))
    torch.manual_seed(0)
    model = build(config.model, classes, shape[0], **kwargs).to(device).train()
    x = torch.rand(b, *shape, device=device)
    y = torch.zeros(b, dtype=torch.long, device=device)

    def step():
        torch.nn.functional.cross_entropy(model(x), y).backward()

    step()  # warm-up: cuDNN autotuning, allocations
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    for _ in range(repeats):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = (time.perf_counter() - start) / repeats
    return seconds / (b * image_flops(config)["train"])


def gpu_hours(flops: float, gpu: str) -> float:
    """Hours for ``flops`` on GPU class ``gpu`` (:data:`GPUS`) at its assumed
    utilisation: an estimate until a GPU run is recorded."""
    if gpu not in GPUS:
        raise ValueError(f"unknown GPU class {gpu!r}; known: {', '.join(GPUS)}")
    return flops / (GPUS[gpu] * ASSUMED_UTILISATION[gpu]) / 3600


def duration(seconds: float) -> str:
    """``seconds`` as text: whole seconds below 90 s, minutes below 90 min, else hours."""
    if seconds < 90:
        return f"{math.ceil(seconds)} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def format_pflop(flops: float) -> str:
    """``flops`` in PFLOP, three significant digits (whole numbers from 1000 up)."""
    pf = flops / 1e15
    return f"{pf:,.0f}" if pf >= 1000 else f"{pf:.3g}"


def format_plan(planned: Sequence[PlannedRun], seconds_per_flop: Optional[float] = None,
                where: str = "this device") -> str:
    """The plan as text: one line per run (label, epochs, PFLOP, time) and a total."""
    lines = []
    for r in planned:
        t = f", {duration(r.flops * seconds_per_flop)}" if seconds_per_flop else ""
        lines.append(f"  {r.label}: {r.epochs} epochs, {format_pflop(r.flops)} PFLOP{t}")
    total = sum(r.flops for r in planned)
    head = f"plan: {len(planned)} run(s), {format_pflop(total)} PFLOP"
    if seconds_per_flop:
        head += f", about {duration(total * seconds_per_flop)} on {where} ({ESTIMATE_LABEL})"
    return "\n".join([head, *lines])


def print_plan(notebook: str, knobs: Mapping[str, Any], device: str = "auto") -> list[PlannedRun]:
    """Print the plan of ``notebook`` at ``knobs``, with times from a step measured on
    ``device`` (``auto``: CUDA if present); returns the planned runs.  Runs that already
    exist are reused by the trainer, so the time is an upper bound."""
    planned = plan_runs(notebook_runs(notebook, knobs))
    if not planned:
        print("plan: this page trains nothing")
        return planned
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    spf = measured_seconds_per_flop(planned[0].config, device)
    print(format_plan(planned, spf, f"this {torch.device(device).type.upper()}"))
    return planned
