"""Mixed precision: the one autocast of training and evaluation, and fp16 loss scaling.

``amp="bf16"`` runs forwards (and the attacks' input gradients) under bfloat16 autocast;
``amp="fp16"`` under float16 autocast, with the training loss scaled by a
:class:`torch.amp.GradScaler` (:func:`grad_scaler`) so that small weight gradients do
not underflow in float16: the fast path on GPUs without bf16 tensor cores (T4, V100).
In both, the losses and the attribution statistics of Algorithm 1 of Wei, Guo & Wang
(ICML 2025) (class means, cosines) stay in float32.  The attacks need no scaler: their
loss is summed over the batch and taken in float32 (:mod:`xcf.attacks`), and the l-inf
step reads only the sign of the input gradient.

bf16 is fast only where the hardware has it: on a CPU, oneDNN's bf16 kernels need
AVX-512 (native bf16 instructions: AVX-512 BF16 or AMX); on an AVX2-only CPU autocast
*emulates* bf16 and runs 8-16x slower than fp32 (measured on a 2-core AMD EPYC with
AVX2: a small-CNN PGD-AT epoch of the cpu profile 78 s vs 10 s, a PreActResNet-18 step
13.6 s vs 0.82 s).  :func:`xcf.runs.machine.native_bf16` is the one check of that, used
wherever bf16 can be chosen: training warns before it starts (:func:`warn_if_emulated`),
and the benchmarks report bf16 as "not native on this CPU" instead of a ratio.
"""
from __future__ import annotations

import contextlib
import warnings
from typing import ContextManager, Optional

import torch
import torch.nn as nn

from xcf.runs.machine import native_bf16

__all__ = ["AUTOCAST_DTYPES", "NOT_NATIVE", "EmulatedBF16Warning", "warn_if_emulated",
           "precision_label", "autocast", "grad_scaler", "AutocastModel"]

# The autocast dtype of each amp mode that has one (``"none"``: float32, no autocast).
AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


NOT_NATIVE = "not native on this CPU"  # what benchmarks and pages print instead of a bf16 ratio


class EmulatedBF16Warning(UserWarning):
    """Training in bf16 autocast on a CPU that emulates bf16 (several times slower)."""


def emulated_bf16_message(device: torch.device | str) -> str:
    """Why bf16 is slow on ``device`` and the fix, for the training warning."""
    return (f"amp: bf16 on {torch.device(device)}: this CPU has no native bf16 (no AVX-512; "
            "bf16 is emulated), so autocast runs about 8-16x slower than fp32 (measured: a "
            "cpu-profile epoch 78 s vs 10 s). To train in fp32 instead, use --set amp=none "
            "(xcf train), amp: none in the config or profile, or amp='none' in xcf.train; "
            "amp is part of the run key, so that is a run of its own")


def warn_if_emulated(amp: str, device: torch.device | str) -> bool:
    """Warn (:class:`EmulatedBF16Warning`) before training in bf16 where it is emulated;
    return whether it warned.  Nothing changes: the run trains in the precision asked for,
    under the key that names it."""
    if amp != "bf16" or native_bf16(device):
        return False
    warnings.warn(emulated_bf16_message(device), EmulatedBF16Warning, stacklevel=3)
    return True


def precision_label(amp: str) -> str:
    """How a page names the precision a run trained in: ``fp32``, ``bf16 autocast`` or
    ``fp16 autocast`` (for a config's ``amp`` ``none``, ``bf16``, ``fp16``)."""
    return {"none": "fp32"}.get(amp, f"{amp} autocast")


def autocast(amp: str, device: torch.device | str) -> ContextManager:
    """bf16 or fp16 autocast on ``device`` for ``amp`` ``"bf16"`` / ``"fp16"``; a no-op
    for ``"none"``.  Any other value is a ``ValueError`` naming the allowed ones."""
    if amp == "none":
        return contextlib.nullcontext()
    if amp not in AUTOCAST_DTYPES:
        raise ValueError(f"amp {amp!r} is not one of none, {', '.join(AUTOCAST_DTYPES)}")
    return torch.autocast(device_type=torch.device(device).type, dtype=AUTOCAST_DTYPES[amp])


def grad_scaler(amp: str, device: torch.device | str) -> Optional[torch.amp.GradScaler]:
    """A fresh :class:`torch.amp.GradScaler` on ``device``'s type for ``amp == "fp16"``
    (initial scale 2**16, halved at a step with inf/NaN gradients, which is skipped, and
    doubled after 2000 clean steps: PyTorch's defaults); ``None`` for ``"none"`` and
    ``"bf16"``, whose exponent range is float32's and needs no scaling."""
    if amp != "fp16":
        return None
    return torch.amp.GradScaler(torch.device(device).type)


class AutocastModel(nn.Module):
    """``model`` with its forward and ``features`` run under :func:`autocast` (``amp``:
    ``"bf16"``, the default, or ``"fp16"``) and returned in float32, so that attacks and
    the feature extractor are fast while the attribution statistics of Algorithm 1 (class
    means, cosines) stay in float32.  ``x``: ``(B, C, H, W)``; logits ``(B, K)``,
    features ``(B, n)``."""

    def __init__(self, model: nn.Module, device: torch.device, amp: str = "bf16") -> None:
        super().__init__()
        if amp not in AUTOCAST_DTYPES:
            raise ValueError(f"AutocastModel needs amp in {', '.join(AUTOCAST_DTYPES)}, got "
                             f"{amp!r} (for amp='none' use the model itself)")
        self.model, self.head, self.device, self.amp = model, model.head, torch.device(device), amp

    def features(self, x: torch.Tensor) -> torch.Tensor:
        with autocast(self.amp, self.device):
            return self.model.features(x).float()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with autocast(self.amp, self.device):
            return self.model(x).float()
