"""What this machine can do: whether bf16 runs natively (:func:`native_bf16`) and the CPU
features that decide it (:func:`cpu_features`).

Read, not set: a run's provenance records it (:mod:`xcf.runs.provenance`: why a bf16 run
was fast or slow), training warns before it trains in emulated bf16
(:func:`xcf.train.precision.warn_if_emulated`), and the benchmarks report bf16 as "not
native on this CPU" where it is emulated.  Separate from :mod:`xcf.train.precision` (the
autocast itself) so that the run folder's provenance can read it without importing
training.

bf16 is fast only where the hardware has it: on a CPU, oneDNN's bf16 kernels need
AVX-512 (native bf16 instructions: AVX-512 BF16 or AMX); on an AVX2-only CPU autocast
*emulates* bf16 and runs 8-16x slower than fp32.
"""
from __future__ import annotations

import os
from typing import Optional

import torch

__all__ = ["cpu_features", "native_bf16", "ISA_CAPS"]

_FORCE = "XCF_NATIVE_BF16"  # "0" / "1": override the detection (tests, or a user who knows)

# The variables that cap the instruction set of torch's own kernels, oneDNN's and MKL's.
# fp32 training is bitwise reproducible between two CPUs only where the kernels are the
# same: an AVX-512 CPU capped at AVX2 (all three set to AVX2) trains exactly as an
# AVX2-only one (checked on C1's seed 3, issue 28), uncapped it drifts from epoch 1.
ISA_CAPS = ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS")


def cpu_features() -> dict:
    """What this CPU offers for bf16, as recorded in run provenance and benchmark headers:
    ``native_bf16`` (:func:`native_bf16` on the CPU), ``avx2``, ``avx512``,
    ``avx512_bf16`` and ``amx`` (``None`` where this torch cannot tell), the instruction
    set torch's kernels use (``kernels``: ``"AVX2"``, ``"AVX512"``, ...) and the caps set
    on it (``isa_caps``: those of :data:`ISA_CAPS` in the environment)."""
    def ask(name: str) -> Optional[bool]:
        fn = getattr(torch.cpu, name, None)
        try:
            return bool(fn()) if fn is not None else None
        except (RuntimeError, AttributeError):
            return None

    return {"native_bf16": native_bf16("cpu"), "avx2": ask("_is_avx2_supported"),
            "avx512": ask("_is_avx512_supported"),
            "avx512_bf16": ask("_is_avx512_bf16_supported"), "amx": ask("_is_amx_tile_supported"),
            "kernels": _kernel_isa(),
            "isa_caps": {v: os.environ[v] for v in ISA_CAPS if v in os.environ}}


def _kernel_isa() -> Optional[str]:
    try:
        return str(torch.backends.cpu.get_cpu_capability())
    except (AttributeError, RuntimeError):
        return None


def native_bf16(device: torch.device | str = "cpu") -> bool:
    """Whether bf16 runs natively on ``device``: a CUDA device with bf16
    (``torch.cuda.is_bf16_supported()``), or a CPU where oneDNN has bf16 kernels
    (AVX-512 and up; ``torch.ops.mkldnn._is_mkldnn_bf16_supported()``).  On an AVX2-only
    CPU bf16 is emulated.  The environment variable ``XCF_NATIVE_BF16`` (``0`` or ``1``)
    overrides the answer for CPUs (the tests force the no-bf16 path with it)."""
    device = torch.device(device)
    if device.type == "cuda":
        return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    forced = os.environ.get(_FORCE)
    if forced in ("0", "1"):
        return forced == "1"
    if forced:
        raise ValueError(f"{_FORCE}={forced!r}: use 0 (treat this CPU as emulating bf16) or "
                         f"1 (as native), or unset it to detect")
    if device.type != "cpu":
        return True  # other accelerators (mps, xpu) decide for themselves
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return bool(getattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)())
