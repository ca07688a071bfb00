"""Model and training-state checkpoints: what they hold, how to read them, and how to
rebuild the model they describe.

A *model checkpoint* (:func:`model_checkpoint`) holds the weights plus ``meta``, what is
needed to rebuild the model (name in :data:`xcf.models.MODELS`, classes, input channels,
``model_kwargs``, image shape).  A *training state* (written by :class:`xcf.runs.folder.Run`)
also holds the optimiser, RNG states and metrics history.  Both carry a ``format`` entry,
so a foreign file is refused with a clear message instead of a tensor-shape error.
Files are loaded with ``weights_only=True``: no code runs while loading.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Mapping, Union

import torch
import torch.nn as nn

from xcf import atomic
from xcf.models import build

__all__ = ["STATE_FORMAT", "MODEL_FORMAT", "FORMAT_VERSION", "Which", "CheckpointError",
           "load_torch", "checkpoint_path", "find_checkpoint", "model_checkpoint", "save_model",
           "read_checkpoint", "build_from_meta", "load_weights", "load_model", "describe",
           "file_digest", "weights_digest"]

STATE_FORMAT = "xcf-train-state"
MODEL_FORMAT = "xcf-model"
FORMAT_VERSION = 1
Which = Union[int, str]  # an epoch number, or "best" / "last"


class CheckpointError(ValueError):
    """A checkpoint is missing, unreadable, or does not fit the model it is loaded into."""


def load_torch(path: str | Path, *, mmap: bool = False) -> dict:
    """``torch.load`` with ``weights_only=True`` (no code runs while loading) onto the CPU;
    a missing or unreadable file raises :class:`CheckpointError` naming it.  ``mmap=True``
    maps the tensors instead of reading them: cheap when only the small entries (epoch,
    history) are wanted."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except Exception as err:  # truncated zip, pickle error, ...
        raise CheckpointError(f"checkpoint {path} is unreadable ({err})") from err


def checkpoint_path(run_dir: str | Path, which: Which) -> Path:
    """``checkpoints/best.pt``, ``last.pt`` or ``epoch_NNNN.pt`` of a run folder."""
    if which in ("best", "last"):
        return Path(run_dir) / "checkpoints" / f"{which}.pt"
    return Path(run_dir) / "checkpoints" / f"epoch_{int(which):04d}.pt"


def find_checkpoint(run_dir: str | Path, which: Which) -> Path:
    """The file of a run folder holding the model of ``which``: ``best``, ``last``, or an
    epoch number (found as ``epoch_NNNN.pt``, or as best/last if that is the epoch they hold)."""
    if which in ("best", "last"):
        path = checkpoint_path(run_dir, which)
        if path.is_file():
            return path
        raise CheckpointError(f"{run_dir} has no {which} checkpoint yet")
    epoch = int(which)
    path = checkpoint_path(run_dir, epoch)
    if path.is_file():
        return path
    for name in ("best", "last"):
        other = checkpoint_path(run_dir, name)
        if other.is_file() and int(load_torch(other)["epoch"]) == epoch:
            return other
    saved = sorted(p.name for p in (Path(run_dir) / "checkpoints").glob("*.pt"))
    raise CheckpointError(f"no checkpoint of epoch {epoch} in {run_dir} (saved: {saved}); "
                          f"list epochs in save_checkpoints_at to keep them")


def model_checkpoint(state_dict: Mapping[str, torch.Tensor], meta: Mapping[str, Any],
                     epoch: int, metrics: Mapping[str, Any] | None = None) -> dict:
    """A model-only checkpoint: weights plus what is needed to rebuild the model.

    ``meta`` holds ``model`` (name in :data:`xcf.models.MODELS`), ``num_classes``,
    ``in_channels``, ``model_kwargs`` (width, mean, std, ...) and the image shape.
    """
    return {"format": MODEL_FORMAT, "version": FORMAT_VERSION, "epoch": int(epoch),
            "model": {k: v.detach().cpu().contiguous() for k, v in state_dict.items()},
            "meta": dict(meta), "metrics": dict(metrics or {})}


def save_model(model: nn.Module, meta: Mapping[str, Any], path: str | Path, epoch: int = 0,
               metrics: Mapping[str, Any] | None = None) -> Path:
    """Save ``model`` as an xcf model checkpoint (e.g. to use it as a KD teacher)."""
    return atomic.torch_save(model_checkpoint(model.state_dict(), meta, epoch, metrics), path)


def read_checkpoint(path_or_run: str | Path, which: Which = "best") -> tuple[dict, Path]:
    """Load a model or state checkpoint, given a file or a run folder (then ``which``)."""
    path = Path(path_or_run)
    if path.is_dir():
        path = find_checkpoint(path, which)
    ckpt = load_torch(path)
    if not isinstance(ckpt, dict) or ckpt.get("format") not in (MODEL_FORMAT, STATE_FORMAT):
        raise CheckpointError(f"{path} is not an xcf checkpoint (no 'format' entry); save "
                              f"models with xcf.runs.checkpoints.save_model so that they can be rebuilt")
    return ckpt, path


def build_from_meta(meta: Mapping[str, Any]) -> nn.Module:
    """A fresh (untrained) model of the architecture a checkpoint's ``meta`` describes."""
    return build(meta["model"], meta["num_classes"], meta["in_channels"],
                 **dict(meta.get("model_kwargs", {})))


def load_weights(model: nn.Module, ckpt: Mapping[str, Any], path: str | Path = "<checkpoint>",
                 meta: Mapping[str, Any] | None = None) -> nn.Module:
    """Load ``ckpt['model']`` into ``model``, with a clear error when the checkpoint comes
    from another architecture.  ``meta`` (the model's own description) is compared with
    the checkpoint's first, so the message names both models rather than a tensor."""
    saved = ckpt.get("meta", {})
    if meta is not None:
        for field in ("model", "num_classes", "in_channels", "model_kwargs"):
            if field in saved and field in meta and _plain(saved[field]) != _plain(meta[field]):
                raise CheckpointError(
                    f"checkpoint {path} holds a different architecture: {field} is "
                    f"{saved[field]!r} there but {meta[field]!r} here "
                    f"(checkpoint: {describe(saved)}; model: {describe(meta)})")
    try:
        model.load_state_dict(ckpt["model"])
    except RuntimeError as err:
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise CheckpointError(f"checkpoint {path} ({describe(saved)}) does not fit "
                              f"{type(model).__name__}: {first}") from err
    return model


def load_model(path_or_run: str | Path, which: Which = "best",
               device: str | torch.device = "cpu") -> nn.Module:
    """Rebuild a model from an xcf checkpoint (file, or run folder + ``which``), in eval mode."""
    ckpt, path = read_checkpoint(path_or_run, which)
    model = build_from_meta(ckpt["meta"])
    load_weights(model, ckpt, path)
    model.meta = dict(ckpt["meta"])  # type: ignore[attr-defined]  # for callers' checks
    return model.to(device).eval()


def describe(meta: Mapping[str, Any]) -> str:
    """``"small_cnn(width=32) with 10 classes, 1 input channels"``: a model in words."""
    kwargs = {k: v for k, v in dict(meta.get("model_kwargs", {})).items() if k not in ("mean", "std")}
    extra = ", ".join(f"{k}={v}" for k, v in sorted(kwargs.items()))
    return (f"{meta.get('model', '?')}({extra}) with {meta.get('num_classes', '?')} classes, "
            f"{meta.get('in_channels', '?')} input channels")


def _plain(value: Any) -> Any:
    """Lists and tuples compare equal after a YAML/JSON round trip."""
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def file_digest(path: str | Path) -> str:
    """SHA-256 of a file, for provenance (e.g. the KD teacher's checkpoint)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def weights_digest(path_or_run: str | Path, which: Which = "best") -> str:
    """SHA-256 of what a model checkpoint computes: its ``meta`` (architecture, classes,
    normalisation) and every weight tensor (name, dtype, shape, bytes), in name order.

    Not the file's bytes (:func:`file_digest`): a checkpoint also holds its epoch's
    metrics row, wall-clock ``seconds`` among them, so training the same model twice,
    bit for bit, writes two files with two file digests but one weights digest.  A KD
    student's key carries its teacher's weights digest (:func:`xcf.runs.identity.teacher_digest`)."""
    ckpt, _ = read_checkpoint(path_or_run, which)
    h = hashlib.sha256()
    h.update(json.dumps(_plain(dict(ckpt.get("meta", {}))), sort_keys=True, default=str).encode())
    for name in sorted(ckpt["model"]):
        t = ckpt["model"][name].detach().cpu().contiguous()
        h.update(f"\n{name}:{t.dtype}:{tuple(t.shape)}:".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()
