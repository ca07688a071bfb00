"""Post-hoc measurement: recompute a saved checkpoint's evaluation (``xcf measure``)."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import torch

from .checkpoints import Which, build_from_meta, load_torch, load_weights
from .config import make_config
from .evaluation import evaluate
from .preparation import load_data, model_meta, resolve_device
from .runs import Run

__all__ = ["measure_run"]


def measure_run(run_dir: str | Path, which: Which = "best", *, eval_n: Optional[int] = None,
                eval_steps: Optional[int] = None, eval_eps: Optional[float] = None,
                instance: bool = False, device: Optional[str] = None, progress: bool = False):
    """Recompute test clean/robust accuracy, C and CAS of a saved checkpoint of a run.

    With the defaults this repeats the run's own evaluation of that epoch (same test
    subset, same attack, same random seed), so on the same device it reproduces the
    numbers in metrics.jsonl.  Returns ``(epoch, numbers, adversarial, clean)``; see
    :func:`xcf.evaluation.evaluate`.
    """
    run = Run(run_dir)
    if not (run.path / "config.yaml").is_file():
        raise FileNotFoundError(f"{run.path} is not a run folder (no config.yaml)")
    overrides = {k: v for k, v in dict(eval_n=eval_n, eval_steps=eval_steps, eval_eps=eval_eps,
                                       device=device).items() if v is not None}
    cfg = make_config(run.config, **overrides).resolved()
    path = run.find_checkpoint(which)
    ckpt = load_torch(path)
    dev = resolve_device(cfg.device)
    _, x_eval, y_eval = load_data(cfg)
    meta = model_meta(cfg, ckpt["meta"]["num_classes"], x_eval.shape[1:])
    model = build_from_meta(meta)
    load_weights(model, ckpt, path, meta=meta)
    model = model.to(dev).eval()
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    epoch = int(ckpt["epoch"])
    numbers, adv, clean = evaluate(model, x_eval.to(dev), y_eval.to(dev), cfg, epoch, amp=cfg.amp,
                                   instance=instance, progress=progress)
    return epoch, numbers, adv, clean
