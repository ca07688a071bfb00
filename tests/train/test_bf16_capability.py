"""bf16 only where the CPU has it (issue 25): one capability check, a warning before a
bf16 training where bf16 is emulated, and provenance that records which case a run was.

The no-bf16 path is forced with ``XCF_NATIVE_BF16=0``, so these tests take the path of
an AVX2-only CPU on any machine."""
import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch

from conftest import tiny_config
from xcf.runs import machine
from xcf.train import precision
from xcf.cli.main import main
from xcf.runs.config import make_config
from xcf.train.runner import train

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def no_native_bf16(monkeypatch):
    monkeypatch.setenv("XCF_NATIVE_BF16", "0")


def cpuinfo_flags() -> set[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        pytest.skip("no /proc/cpuinfo to check against")
    line = next((ln for ln in text.splitlines() if ln.startswith("flags")), "")
    return set(line.split(":", 1)[-1].split())


def test_detection_agrees_with_the_kernels_cpu_flags(monkeypatch):
    """Independent truth: without AVX-512 (avx512f in /proc/cpuinfo) oneDNN has no bf16
    kernels, so bf16 cannot be native; the recorded features follow the same flags."""
    monkeypatch.delenv("XCF_NATIVE_BF16", raising=False)
    flags = cpuinfo_flags()
    f = machine.cpu_features()
    assert set(f) == {"native_bf16", "avx2", "avx512", "avx512_bf16", "amx", "kernels",
                      "isa_caps"}
    if "avx512f" not in flags:
        assert machine.native_bf16("cpu") is False and f["native_bf16"] is False
    if f["avx2"] is not None:
        assert f["avx2"] == ("avx2" in flags)
    if f["avx512_bf16"] is not None:
        assert f["avx512_bf16"] == ("avx512_bf16" in flags)


def test_the_override_forces_either_answer_and_refuses_anything_else(monkeypatch):
    monkeypatch.setenv("XCF_NATIVE_BF16", "0")
    assert machine.native_bf16("cpu") is False
    assert machine.cpu_features()["native_bf16"] is False
    monkeypatch.setenv("XCF_NATIVE_BF16", "1")
    assert machine.native_bf16("cpu") is True
    monkeypatch.setenv("XCF_NATIVE_BF16", "yes")
    with pytest.raises(ValueError, match="XCF_NATIVE_BF16='yes'.*0.*1"):
        machine.native_bf16("cpu")


def test_only_bf16_on_an_emulating_cpu_warns(no_native_bf16):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert precision.warn_if_emulated("none", "cpu") is False
        assert precision.warn_if_emulated("fp16", "cpu") is False
    with pytest.warns(precision.EmulatedBF16Warning, match=r"--set amp=none"):
        assert precision.warn_if_emulated("bf16", "cpu") is True


def test_the_kernels_instruction_set_and_its_caps_are_recorded_as_set():
    """A run trained with the kernels capped (to reproduce an AVX2 machine's fp32 runs
    bitwise) says so: in a fresh process with ``ATEN_CPU_CAPABILITY=default`` (valid on
    every CPU) torch's kernels are the scalar ones, and the record names the cap."""
    env = {**os.environ, "ATEN_CPU_CAPABILITY": "default"}
    env.pop("ONEDNN_MAX_CPU_ISA", None)
    code = "import json; from xcf.runs import machine; print(json.dumps(machine.cpu_features()))"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, check=True).stdout
    f = json.loads(out.strip().splitlines()[-1])
    assert f["kernels"] == "DEFAULT"
    assert f["isa_caps"]["ATEN_CPU_CAPABILITY"] == "default"
    assert "ONEDNN_MAX_CPU_ISA" not in f["isa_caps"]


def test_a_smoke_training_at_the_profiles_precision_runs_without_a_word(tmp_path, no_native_bf16):
    """What a user of an AVX2-only CPU runs first: the smoke config (amp none) trains
    without any bf16 warning, and its provenance says the CPU has no native bf16."""
    smoke = make_config(str(ROOT / "configs" / "smoke.yaml"))
    assert smoke.amp == "none"
    with warnings.catch_warnings():
        warnings.simplefilter("error", precision.EmulatedBF16Warning)
        run = train(tiny_config(amp=smoke.amp, epochs=1), runs_dir=tmp_path, progress=False,
                    log=lambda line: None)
    assert run.finished
    prov = json.loads((run.path / "provenance.json").read_text())
    assert prov["cpu"]["native_bf16"] is False


def test_bf16_where_it_is_emulated_warns_before_anything_is_trained(tmp_path, no_native_bf16):
    """The warning comes before the run folder exists (as an error it stops the call with
    nothing written); heeded or not, the run trains in the precision asked for, under a
    key of its own (amp is part of the key)."""
    cfg = tiny_config(amp="bf16", epochs=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error", precision.EmulatedBF16Warning)
        with pytest.raises(precision.EmulatedBF16Warning, match="no native bf16.*amp=none"):
            train(cfg, runs_dir=tmp_path, progress=False, log=lambda line: None)
    assert not any(tmp_path.iterdir())
    with pytest.warns(precision.EmulatedBF16Warning):
        run = train(cfg, runs_dir=tmp_path, progress=False, log=lambda line: None)
    assert run.finished and run.config["amp"] == "bf16"
    assert make_config(cfg).key() != make_config({**cfg, "amp": "none"}).key()


def test_the_cli_says_it_in_one_line_with_the_fix(tmp_path, capsys, no_native_bf16):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(json.dumps(tiny_config(amp="bf16", epochs=1)))
    assert main(["train", str(cfg), "--runs-dir", str(tmp_path / "runs"), "--no-progress"]) == 0
    err = capsys.readouterr().err
    line = next(ln for ln in err.splitlines() if "warning" in ln)
    assert line.startswith("xcf train: warning: amp: bf16 on cpu: this CPU has no native bf16")
    assert "--set amp=none" in line and "precision.py" not in err


def test_a_cuda_device_answers_for_itself():
    if not torch.cuda.is_available():
        assert machine.native_bf16("cuda") is False
    else:
        assert machine.native_bf16("cuda") == torch.cuda.is_bf16_supported()
