"""Run folders: one folder per training configuration, written so that a kill never corrupts it.

A run folder is named ``<dataset>-<model>-<objective>-<key>``, where ``key`` is a hash of
the configuration's identity (:func:`config_key`), and holds::

    config.yaml          the resolved configuration (what was hashed, plus runtime options)
    provenance.json      git commit, versions, device, seed, one entry per session
                         (start/end time, command, status)
    metrics.jsonl        one JSON object per finished epoch
    matrices/            C (Eq. 6) per chosen epoch: epoch_0010.npy (adversarial, Algorithm 1)
                         and clean_epoch_0010.npy (clean inputs, Fig. 9), float32 (K, K)
    checkpoints/last.pt  full training state of the last finished epoch (the commit point)
    checkpoints/best.pt  model of the epoch with the best test robust accuracy
    checkpoints/epoch_0010.pt   models of chosen epochs
    final.json           written when training has finished (best/last summary, AutoAttack)

**Write order.**  ``checkpoints/last.pt`` is the single commit point of an epoch: it holds
the model, optimiser, RNG states, the metrics history and the current epoch's matrices.
Everything else (metrics.jsonl, matrices, best/epoch checkpoints) is derived from it by
:meth:`Run.publish`, which is idempotent and is repeated on resume, so a kill between the
commit and the derived writes loses nothing.  Every file is written atomically
(:func:`atomic_write`: temp file in the same folder, fsync, ``os.replace``, fsync of the
folder), so a reader sees either the old or the new version, never a torn one.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Optional, Union

import numpy as np
import torch
import torch.nn as nn
import yaml

STATE_FORMAT = "xcf-train-state"
MODEL_FORMAT = "xcf-model"
FORMAT_VERSION = 1
Which = Union[int, str]  # an epoch number, or "best" / "last"


class CheckpointError(ValueError):
    """A checkpoint is missing, unreadable, or does not fit the model it is loaded into."""


class RunLockedError(RuntimeError):
    """Another live process is working on the same run folder."""


# =========================================================================== atomic writes

def atomic_write(path: str | Path, write: Callable[[io.BufferedWriter], None]) -> Path:
    """Write ``path`` atomically: ``write(f)`` fills a temp file in the same folder, which is
    flushed, fsynced and then renamed over ``path`` (``os.replace`` is atomic on POSIX).

    If ``write`` raises, or the process dies, the temp file never replaces ``path``: the
    previous version stays intact.  Temp files are named ``.<name>.<pid>.tmp`` so that
    :func:`remove_stale_temps` can clean up after a killed process.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{os.getpid()}.tmp"
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    _fsync_dir(path.parent)  # make the rename itself durable
    return path


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):  # not every file system lets a folder be fsynced
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write(path, lambda f: f.write(text.encode("utf-8")))


def atomic_write_json(path: str | Path, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def atomic_torch_save(obj: Any, path: str | Path) -> Path:
    return atomic_write(path, lambda f: torch.save(obj, f))


def atomic_save_npy(array: np.ndarray, path: str | Path) -> Path:
    return atomic_write(path, lambda f: np.save(f, np.asarray(array)))


def remove_stale_temps(folder: str | Path) -> list[Path]:
    """Delete temp files left by killed writers (``.*.tmp``) under ``folder``."""
    removed = []
    for tmp in Path(folder).rglob(".*.tmp"):
        with contextlib.suppress(OSError):
            tmp.unlink()
            removed.append(tmp)
    return removed


def load_torch(path: str | Path) -> dict:
    """``torch.load`` with ``weights_only=True`` (no code runs while loading) onto the CPU;
    a missing or unreadable file raises :class:`CheckpointError` naming it."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # truncated zip, pickle error, ...
        raise CheckpointError(f"checkpoint {path} is unreadable ({err})") from err


# =========================================================================== config identity

def config_key(identity: Mapping[str, Any], length: int = 12) -> str:
    """Hex digest of a configuration: SHA-256 of its canonical JSON (sorted keys, floats
    by ``repr``), truncated to ``length`` characters."""
    canonical = json.dumps(identity, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:length]


# =========================================================================== provenance

def _git_commit(folder: Path) -> dict:
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(folder), *args], capture_output=True,
                              text=True, timeout=10, check=True).stdout.strip()
    try:
        return {"commit": git("rev-parse", "HEAD"), "dirty": bool(git("status", "--porcelain"))}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}


def _version(module: str) -> Optional[str]:
    try:
        from importlib.metadata import version
        return version(module)
    except Exception:
        return None


def device_description(device: torch.device) -> str:
    """``"cuda: NVIDIA H100 ..."`` or ``"cpu: <processor>, N threads"``."""
    if device.type == "cuda":
        return f"cuda: {torch.cuda.get_device_name(device)}"
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return f"{device.type}: {cpu}, {torch.get_num_threads()} threads"


def environment(device: torch.device) -> dict:
    """What produced a result: code version, library versions, hardware."""
    import xcf

    return {
        "git": _git_commit(Path(__file__).resolve().parent.parent),
        "versions": {"xcf": xcf.__version__, "python": platform.python_version(),
                     "torch": torch.__version__, "torchvision": _version("torchvision"),
                     "numpy": np.__version__, "timm": _version("timm"),
                     "torchattacks": _version("torchattacks")},
        "platform": platform.platform(),
        "device": device_description(device),
        "threads": torch.get_num_threads(),
    }


def _command() -> str:
    """How this process was started, e.g. ``.venv/bin/python -m xcf train cfg.yaml``."""
    return " ".join(getattr(sys, "orig_argv", sys.argv))


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


# =========================================================================== the run folder

class Run:
    """A run folder (see the module docstring).  Cheap to create: nothing is read until
    asked for.

    >>> run = Run("runs/planted-small_cnn-pgd_at-3f2a9c0d1e4b")
    >>> run.metrics()[-1]["test_robust_acc"], run.best_epoch
    >>> model = run.load_model("best")
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"Run({str(self.path)!r})"

    # ------------------------------------------------------------------ paths
    @property
    def key(self) -> str:
        return self.path.name.rsplit("-", 1)[-1]

    @property
    def state_path(self) -> Path:
        return self.path / "checkpoints" / "last.pt"

    def checkpoint_path(self, which: Which) -> Path:
        """``checkpoints/best.pt``, ``last.pt`` or ``epoch_NNNN.pt``."""
        if which in ("best", "last"):
            return self.path / "checkpoints" / f"{which}.pt"
        return self.path / "checkpoints" / f"epoch_{int(which):04d}.pt"

    def matrix_path(self, epoch: int, clean: bool = False) -> Path:
        return self.path / "matrices" / f"{'clean_' if clean else ''}epoch_{int(epoch):04d}.npy"

    # ------------------------------------------------------------------ reading
    @property
    def config(self) -> dict:
        """The resolved configuration this run was created with."""
        return yaml.safe_load((self.path / "config.yaml").read_text())

    @property
    def finished(self) -> bool:
        return (self.path / "final.json").is_file()

    def final(self) -> dict:
        """Summary written when training finished ({} before that)."""
        path = self.path / "final.json"
        return json.loads(path.read_text()) if path.is_file() else {}

    def provenance(self) -> dict:
        path = self.path / "provenance.json"
        return json.loads(path.read_text()) if path.is_file() else {}

    def metrics(self) -> list[dict]:
        """One dict per finished epoch, in order (``[]`` before the first)."""
        path = self.path / "metrics.jsonl"
        if not path.is_file():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    @property
    def best_epoch(self) -> Optional[int]:
        """Epoch of the best checkpoint so far (``None`` before the first epoch).

        A finished run says it in final.json, which committed result folders keep even
        though they leave the checkpoints out."""
        final = self.final()
        if "best_epoch" in final:
            return int(final["best_epoch"])
        path = self.checkpoint_path("best")
        return int(load_torch(path)["epoch"]) if path.is_file() else None

    def resolve_epoch(self, which: Which) -> int:
        """``"best"`` / ``"last"`` / an int -> the epoch number it denotes."""
        if which == "best":
            epoch = self.best_epoch
        elif which == "last":
            rows = self.metrics()
            epoch = rows[-1]["epoch"] if rows else None
        else:
            epoch = int(which)
        if epoch is None:
            raise CheckpointError(f"{self.path} has no finished epoch yet")
        return epoch

    def matrix(self, which: Which = "best", clean: bool = False) -> np.ndarray:
        """C (Eq. 6) of an epoch, (K, K) float32; ``clean=True`` for clean inputs."""
        epoch = self.resolve_epoch(which)
        path = self.matrix_path(epoch, clean)
        if not path.is_file():
            saved = sorted(p.stem for p in (self.path / "matrices").glob("epoch_*.npy"))
            raise FileNotFoundError(f"no matrix saved for epoch {epoch} in {self.path}; "
                                    f"saved: {saved}")
        return np.load(path)

    def find_checkpoint(self, which: Which) -> Path:
        """The file holding the model of ``which``: ``best``, ``last``, or an epoch number
        (found as ``epoch_NNNN.pt``, or as best/last if that is the epoch they hold)."""
        if which in ("best", "last"):
            path = self.checkpoint_path(which)
            if path.is_file():
                return path
            raise CheckpointError(f"{self.path} has no {which} checkpoint yet")
        epoch = int(which)
        path = self.checkpoint_path(epoch)
        if path.is_file():
            return path
        for name in ("best", "last"):
            other = self.checkpoint_path(name)
            if other.is_file() and int(load_torch(other)["epoch"]) == epoch:
                return other
        saved = sorted(p.name for p in (self.path / "checkpoints").glob("*.pt"))
        raise CheckpointError(f"no checkpoint of epoch {epoch} in {self.path} (saved: {saved}); "
                              f"list epochs in save_checkpoints_at to keep them")

    def load_model(self, which: Which = "best", device: str | torch.device = "cpu") -> nn.Module:
        """Rebuild the model and load the weights of ``which``; returned in eval mode."""
        return load_model(self.find_checkpoint(which), device=device)

    # ------------------------------------------------------------------ writing
    @contextlib.contextmanager
    def lock(self) -> Iterator["Run"]:
        """Hold an exclusive lock on the run while training it, so that two processes (a
        notebook and a CLI, say) never write the same folder.  The lock is an ``flock`` on
        ``.lock``: the kernel drops it when its holder dies, SIGKILL included, so a killed
        run never stays locked."""
        import fcntl

        self.path.mkdir(parents=True, exist_ok=True)
        with open(self.path / ".lock", "a+") as f:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                f.seek(0)
                holder = f.read().strip() or "?"
                raise RunLockedError(f"{self.path} is being trained by another process "
                                     f"(pid {holder}); wait for it or stop it") from None
            f.seek(0)
            f.truncate()
            f.write(str(os.getpid()))
            f.flush()
            try:
                yield self
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    def write_config(self, config: Mapping[str, Any]) -> None:
        atomic_write_text(self.path / "config.yaml", yaml.safe_dump(dict(config), sort_keys=False))

    def save_state(self, state: Mapping[str, Any]) -> None:
        """Commit an epoch: write ``checkpoints/last.pt`` atomically (see module docstring)."""
        atomic_torch_save(dict(state, format=STATE_FORMAT, version=FORMAT_VERSION), self.state_path)

    def load_state(self) -> Optional[dict]:
        """The last committed training state, or ``None`` if no epoch has finished."""
        if not self.state_path.is_file():
            return None
        state = load_torch(self.state_path)
        if state.get("format") != STATE_FORMAT:
            raise CheckpointError(f"{self.state_path} is not an xcf training state")
        return state

    def publish(self, state: Mapping[str, Any]) -> None:
        """Write the files derived from a committed ``state``: metrics.jsonl (whole history),
        the matrices and model checkpoints it lists under ``publish``.  Idempotent."""
        lines = "".join(json.dumps(rec, sort_keys=True) + "\n" for rec in state["history"])
        atomic_write_text(self.path / "metrics.jsonl", lines)
        todo = state.get("publish", {})
        epoch = int(state["epoch"])
        for name, C in todo.get("matrices", {}).items():
            atomic_save_npy(np.asarray(C, dtype=np.float32),
                            self.matrix_path(epoch, clean=(name == "C_clean")))
        model_ckpt = model_checkpoint(state["model"], state["meta"], epoch,
                                      state["history"][-1] if state["history"] else {})
        for which in todo.get("checkpoints", []):
            atomic_torch_save(model_ckpt, self.checkpoint_path(which))

    def update_provenance(self, **fields: Any) -> dict:
        """Merge ``fields`` into provenance.json (atomically) and return the result."""
        prov = self.provenance()
        prov.update(fields)
        atomic_write_json(self.path / "provenance.json", prov)
        return prov

    def start_session(self, environment: Mapping[str, Any], **fields: Any) -> None:
        """Append a session (one process working on the run) to the provenance."""
        prov = self.provenance()
        prov.setdefault("created", now())
        prov.update(environment)
        sessions = prov.setdefault("sessions", [])
        sessions.append({"start": now(), "end": None, "status": "running",
                         "command": _command(), "pid": os.getpid(), **fields})
        atomic_write_json(self.path / "provenance.json", prov)

    def end_session(self, status: str, **fields: Any) -> None:
        prov = self.provenance()
        if prov.get("sessions"):
            prov["sessions"][-1].update(end=now(), status=status, **fields)
        atomic_write_json(self.path / "provenance.json", prov)

    def write_final(self, summary: Mapping[str, Any]) -> None:
        atomic_write_json(self.path / "final.json", dict(summary))


def find_run(runs_dir: str | Path, key: str) -> Optional[Run]:
    """The run folder under ``runs_dir`` whose name ends in ``-<key>``, if any."""
    runs_dir = Path(runs_dir)
    if not runs_dir.is_dir():
        return None
    matches = sorted(p for p in runs_dir.iterdir() if p.is_dir() and p.name.endswith(f"-{key}"))
    return Run(matches[0]) if matches else None


def list_runs(runs_dir: str | Path) -> Iterator[Run]:
    """Every run folder (one holding config.yaml) directly under ``runs_dir``."""
    runs_dir = Path(runs_dir)
    if runs_dir.is_dir():
        for p in sorted(runs_dir.iterdir()):
            if (p / "config.yaml").is_file():
                yield Run(p)


# =========================================================================== model checkpoints

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
    return atomic_torch_save(model_checkpoint(model.state_dict(), meta, epoch, metrics), path)


def read_checkpoint(path_or_run: str | Path, which: Which = "best") -> tuple[dict, Path]:
    """Load a model or state checkpoint, given a file or a run folder (then ``which``)."""
    path = Path(path_or_run)
    if path.is_dir():
        path = Run(path).find_checkpoint(which)
    ckpt = load_torch(path)
    if not isinstance(ckpt, dict) or ckpt.get("format") not in (MODEL_FORMAT, STATE_FORMAT):
        raise CheckpointError(f"{path} is not an xcf checkpoint (no 'format' entry); save "
                              f"models with xcf.runs.save_model so that they can be rebuilt")
    return ckpt, path


def build_from_meta(meta: Mapping[str, Any]) -> nn.Module:
    from .models import build

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

