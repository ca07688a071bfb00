"""A measurement folder: Algorithm 1 on any classifier, with its files written.

:func:`measure_model` is what ``xcf measure-model`` and the book's "Measure your own model"
page call: it wraps the model (:func:`xcf.models.as_feature_classifier`), checks that it
takes the images and can be attacked, measures C, CAS and I-CAS on PGD examples and C on
clean ones (:func:`xcf.attribution.measure`), and writes ``C.npy``, ``C_instance.npy``,
``C.png`` and ``summary.json`` (with provenance) under ``out``.  :func:`load_weights` reads a
state_dict file from anywhere (xcf, Lightning, DataParallel) into a model.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

import torch
import torch.nn as nn

from xcf import __version__, plots
from xcf.atomic import save_npy, write_json
from xcf.attacks import PGD, default_step_size
from xcf.attribution import Measurement, measure
from xcf.inputs import ArgumentError
from xcf.models import LinearHeadError, WrappedClassifier, as_feature_classifier
from xcf.runs import provenance
from xcf.runs.checkpoints import CheckpointError, file_digest, load_torch

__all__ = ["ModelReport", "measure_model", "load_weights", "FILES"]

#: What :func:`measure_model` writes under ``out``, besides ``summary.json``.
FILES = ("C.npy", "C_instance.npy", "C.png")


@dataclass
class ModelReport:
    """What :func:`measure_model` measured: the wrapped model, the adversarial and clean
    measurements, the summary written to ``summary.json``, and the files written."""

    net: WrappedClassifier
    adversarial: Measurement       # C, CAS, I-CAS and robust accuracy on PGD examples
    clean: Measurement             # C, CAS and accuracy on the clean images
    summary: dict
    paths: list[Path] = field(default_factory=list)

    def line(self) -> str:
        """One line: robust and clean accuracy, CAS, I-CAS and clean CAS."""
        a, c = self.adversarial, self.clean
        return (f"{self.summary['model']['name']}: clean accuracy {c.accuracy:.4f}  robust "
                f"accuracy {a.accuracy:.4f}  CAS {a.cas:.3f}  I-CAS {a.i_cas:.3f}  "
                f"(clean CAS {c.cas:.3f})")

    def compare(self, other: Measurement) -> dict[str, float]:
        """How far another measurement of the same model and images is from this one's
        adversarial one: the largest absolute difference of C, and the CAS and accuracy gaps."""
        a = self.adversarial
        return {"max_abs_diff_c": float((a.C - other.C.to(a.C.device)).abs().max()),
                "cas_diff": abs(a.cas - other.cas),
                "accuracy_diff": abs(a.accuracy - other.accuracy)}

    def figure(self, ax=None):
        """C of the PGD examples as a heatmap, titled with the model, RA and CAS."""
        import matplotlib.pyplot as plt

        fig = None
        if ax is None:
            fig, ax = plt.subplots(figsize=(4.2, 3.8))
        res = self.summary["results"]
        im = plots.correlation_heatmap(
            self.adversarial.C, ax, title=f"{self.summary['model']['name']} on "
            f"{self.summary['dataset']['name']}\nRA {res['robust_accuracy']:.1%}, "
            f"CAS {res['cas']:.2f}")
        (fig or ax.figure).colorbar(im, ax=ax, fraction=0.046)
        if fig is not None:
            fig.tight_layout()
        return ax.figure


def measure_model(model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                  out: str | Path | None = None, *, eps: float, norm: str = "linf",
                  steps: int = 20, alpha: float | None = None,
                  mean: Sequence[float] | None = None, std: Sequence[float] | None = None,
                  head: str | None = None, seed: int = 0, batch_size: int = 200,
                  device: str | torch.device = "cpu", name: str | None = None,
                  describe: Optional[Mapping[str, Any]] = None,
                  progress: bool = False, overwrite: bool = False) -> ModelReport:
    """Algorithm 1 of Wei, Guo & Wang (ICML 2025) on any classifier ending in a Linear,
    with its files written under ``out`` (none when ``out`` is None).

    Args:
        model: the classifier, e.g. ``torchvision.models.resnet18(num_classes=10)``.
        x: test images in [0, 1], (N, C, H, W); y: labels, (N,), every class present.
        out: the folder for ``C.npy``, ``C_instance.npy``, ``C.png`` and ``summary.json``.
        eps, norm, steps, alpha: the PGD attack (alpha: Table 2's eps/4 or eps/8).
        mean, std, head: passed to :func:`xcf.models.as_feature_classifier`.
        seed: the attack's random start.
        name: the model's name in the summary and the figure; ``describe``: more of the
            summary (e.g. the factory's arguments, the weights' digest, the data's).
        overwrite: replace the files of an earlier measurement in ``out``; without it an
            ``out`` that already holds a ``summary.json`` is refused (a result is never
            replaced by accident).
    Raises before any attack pass: :class:`xcf.inputs.ArgumentError` for a bad argument,
    an ``out`` that is a file or holds an earlier measurement, a model that fails on the images (naming their shape), or
    one whose output has no gradient with respect to its input (PGD could not attack it).
    """
    if (mean is None) != (std is None):
        raise ArgumentError("give mean and std together (one value per model channel), "
                            f"not mean={mean!r}, std={std!r}")
    out = Path(out) if out is not None else None
    if out is not None and out.exists() and not out.is_dir():
        raise ArgumentError(f"out={str(out)!r} is a file; name a folder (it is created)")
    if out is not None and (out / "summary.json").exists() and not overwrite:
        raise ArgumentError(
            f"out={str(out)!r} already holds a measurement (summary.json); name another "
            "folder, or pass overwrite=True (xcf measure-model --overwrite) to replace it")
    attack = PGD(eps=eps, steps=steps, norm=norm, alpha=alpha)
    device = torch.device(device)
    name = name or type(model).__name__
    num_classes = int(y.max()) + 1 if len(y) else None
    net = as_feature_classifier(model, mean, std, num_classes=num_classes, head=head,
                                input_channels=x.shape[1]).to(device).eval()
    x, y = x.to(device), y.to(device)
    _probe(net, x[:2], name, attack=steps > 0 and eps > 0)
    gen = torch.Generator(device=device).manual_seed(seed)
    adv = measure(net, x, y, attack, batch_size=batch_size, instance=True, generator=gen,
                  progress=progress)
    clean = measure(net, x, y, None, batch_size=batch_size)
    extra = dict(describe or {})
    summary = dict(
        model={"name": name, "head": net.head_name, "num_features": net.num_features,
               "num_classes": net.num_classes, "mean": mean, "std": std,
               "repeats_channels": net.repeats_channels, **extra.pop("model", {})},
        weights=extra.pop("weights", None),
        dataset={"n_test": len(y), "image_shape": list(x.shape[1:]),
                 "counts": adv.counts.tolist(), **extra.pop("dataset", {})},
        attack={"name": "pgd", "norm": norm, "eps": eps, "steps": steps,
                "alpha": default_step_size(eps, norm) if alpha is None else alpha,
                "random_start": True, "seed": seed},
        results={"clean_accuracy": clean.accuracy, "robust_accuracy": adv.accuracy,
                 "cas": adv.cas, "i_cas": adv.i_cas, "cas_clean": clean.cas}, **extra)
    summary["dataset"].setdefault("name", "images")
    report = ModelReport(net, adv, clean, summary)
    if out is not None:
        report.paths = _write(out, report, device)
    return report


def load_weights(model: nn.Module, path: str | Path, name: str | None = None) -> str:
    """Load a state_dict file into ``model`` (``weights_only=True``); returns the file's
    SHA-256.  Accepts a bare state_dict or one under ``model`` / ``state_dict`` (xcf and
    Lightning-style checkpoints), with DataParallel's ``module.`` prefix stripped.
    Raises :class:`xcf.runs.checkpoints.CheckpointError` naming the missing, unexpected
    or mis-shaped keys when the weights do not fit the model (called ``name``)."""
    path = Path(path)
    obj = load_torch(path)  # CheckpointError naming the file if missing or unreadable

    def is_state(d) -> bool:
        return isinstance(d, dict) and bool(d) and all(
            isinstance(k, str) and torch.is_tensor(v) for k, v in d.items())

    state = obj if is_state(obj) else next(
        (obj[k] for k in ("model", "state_dict") if isinstance(obj, dict) and is_state(obj.get(k))),
        None)
    if state is None:
        raise CheckpointError(f"{path} holds no state_dict (names -> tensors); save one with "
                              "torch.save(model.state_dict(), path)")
    if all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    own = model.state_dict()
    problems = []
    for label, keys in (("missing", [k for k in own if k not in state]),
                        ("unexpected", [k for k in state if k not in own])):
        if keys:
            problems.append(f"{len(keys)} {label} key(s) ({', '.join(keys[:3])})")
    shapes = [k for k in own if k in state and own[k].shape != state[k].shape]
    if shapes:
        k = shapes[0]
        problems.append(f"{len(shapes)} shape mismatch(es) ({k}: {tuple(state[k].shape)} in "
                        f"the file, {tuple(own[k].shape)} in the model)")
    if problems:
        raise CheckpointError(f"weights {path} do not fit {name or type(model).__name__}: "
                              f"{'; '.join(problems)}; build the model they were saved from")
    model.load_state_dict(state)
    return file_digest(path)


def _probe(net: nn.Module, x: torch.Tensor, name: str, attack: bool = True) -> None:
    """One forward pass on two images, so an input the model cannot take fails before
    the attack pass, naming the input shape; with ``attack``, also that the output has a
    gradient with respect to the input (PGD needs it)."""
    x = x.detach().clone().requires_grad_(attack)
    try:
        with torch.set_grad_enabled(attack):
            out = net(x)
    except LinearHeadError:
        raise
    except Exception as err:  # the user's model rejecting the data
        first = (str(err).splitlines() or [""])[0]
        raise ArgumentError(f"{name} fails on images of shape {tuple(x.shape[1:])}: "
                            f"{type(err).__name__}: {first}; build it for this input (e.g. "
                            "timm img_size=...) or resize the images (--image-size N)") from None
    grad = torch.autograd.grad(out.sum(), x, allow_unused=True)[0] \
        if attack and out.requires_grad else None
    if attack and grad is None:
        raise ArgumentError(f"the output of {name} has no gradient with respect to its input "
                            "(its features are computed under torch.no_grad(), or detached), "
                            "so PGD cannot attack it; compute the forward pass with gradients "
                            "enabled, or measure clean inputs only with steps 0")


def _write(out: Path, report: ModelReport, device: torch.device) -> list[Path]:
    """C.npy, C_instance.npy, C.png and summary.json (with provenance) under ``out``."""
    os.environ.setdefault("MPLBACKEND", "Agg")  # figures go to files; no display needed
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    adv = report.adversarial
    paths = [save_npy(adv.C.numpy(), out / "C.npy"),
             save_npy(adv.C_instance.numpy(), out / "C_instance.npy")]
    fig = report.figure()
    fig.savefig(out / "C.png", dpi=120)
    plt.close(fig)
    paths.append(out / "C.png")
    meta = {"xcf_version": __version__, "command": provenance.command(),
            "created": provenance.now(), "environment": provenance.environment(device)}
    paths.append(write_json(out / "summary.json", {**report.summary, **meta,
                                                   "C": adv.C.tolist(), "files": list(FILES)}))
    return paths
