"""Post-hoc measurement: recompute a saved checkpoint's evaluation (``xcf measure``)."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Optional

import torch

from xcf.runs.checkpoints import Which, build_from_meta, load_torch, load_weights
from xcf.runs.config import TrainConfig, make_config
from xcf.train.evaluation import evaluate
from xcf.train.setup import load_data, model_meta, resolve_device
from xcf.runs.files import RunFileError
from xcf.runs.folder import Run

__all__ = ["measure_run"]


def measure_run(run_dir: str | Path, which: Which = "best", *, eval_n: Optional[int] = None,
                eval_steps: Optional[int] = None, eval_eps: Optional[float] = None,
                instance: bool = False, device: Optional[str] = None, progress: bool = False,
                erase: Optional[str] = None):
    """Recompute test clean/robust accuracy, C and CAS of a saved checkpoint of a run.

    With the defaults this repeats the run's own evaluation of that epoch (same test
    subset, same attack, same random seed), so on the same device it reproduces the
    numbers in metrics.jsonl.  Returns ``(epoch, numbers, adversarial, clean)``; see
    :func:`xcf.train.evaluation.evaluate`.

    ``erase`` (planted runs only; the causal test of :mod:`xcf.companion.hypotheses`): measure on
    the test set with the ``"shared"`` or ``"exclusive"`` glyphs erased
    (:func:`xcf.data.planted.planted`), the same images otherwise.
    """
    run = Run(run_dir)
    saved = run.config  # RunFileError naming the file if missing or garbled
    config_file = run.path / "config.yaml"
    try:
        key = TrainConfig.from_dict(saved).key()
    except ValueError as err:
        raise RunFileError(f"{config_file} is not a valid config ({err})") from err
    if re.fullmatch(r"[0-9a-f]{12}", run.key) and key != run.key:
        teacher = saved.get("kd", {}).get("teacher") if saved.get("objective") == "kd_at" else None
        why = (f" or its KD teacher {teacher} was replaced, moved or deleted since (the "
               "teacher's best.pt digest is part of the key)" if teacher else "")
        raise RunFileError(f"{config_file} gives the run key {key}, but the folder's key is "
                           f"{run.key}: config.yaml was edited{why}; restore it (or train the "
                           "edited config as a run of its own)")
    overrides = {k: v for k, v in dict(eval_n=eval_n, eval_steps=eval_steps, eval_eps=eval_eps,
                                       device=device).items() if v is not None}
    if erase is not None:
        if saved.get("dataset") != "planted":
            raise ValueError(f"erase={erase!r} needs a planted run (its glyphs are known); "
                             f"{run.path.name} trained on {saved.get('dataset')!r}")
        overrides["data_kwargs"] = {**(saved.get("data_kwargs") or {}), "erase": erase}
    cfg = make_config(run.config, **overrides).resolved()
    path = run.find_checkpoint(which)
    ckpt = load_torch(path)
    saved_meta = ckpt.get("meta", {}) if isinstance(ckpt, dict) else {}
    if ckpt.get("config_key") not in (None, key):
        raise RunFileError(f"checkpoint {path} is of run {ckpt['config_key']}, not of "
                           f"{config_file} (key {key})")
    if saved_meta.get("dataset") not in (None, saved.get("dataset")):
        raise RunFileError(f"checkpoint {path} was trained on {saved_meta['dataset']!r} but "
                           f"{config_file} says dataset {saved.get('dataset')!r}")
    if "num_classes" not in saved_meta:
        raise RunFileError(f"checkpoint {path} has no model meta (num_classes); not an xcf "
                           "checkpoint")
    dev = resolve_device(cfg.device)
    _, x_eval, y_eval = load_data(cfg)
    meta = model_meta(cfg, saved_meta["num_classes"], x_eval.shape[1:])
    model = build_from_meta(meta)
    load_weights(model, ckpt, path, meta=meta)
    model = model.to(dev).eval()
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    epoch = int(ckpt["epoch"])
    numbers, adv, clean = evaluate(model, x_eval.to(dev), y_eval.to(dev), cfg, epoch, amp=cfg.amp,
                                   instance=instance, progress=progress)
    return epoch, numbers, adv, clean
