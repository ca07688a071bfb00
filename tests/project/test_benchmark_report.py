"""benchmarks/report.py reads the printed lines of recorded benchmark logs."""
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from benchmarks import report  # noqa: E402


def test_report_reads_ratios_and_judges_them_against_targets(tmp_path):
    (tmp_path / "train_step.txt").write_text(
        "$ python benchmarks/train_step.py\n# header\nratio xcf fp32 / baseline: 1.62x  (per-round 1.34-1.80)\n"
        "ratio xcf bf16 / baseline: 3.61x  (per-round 3.2-3.9)\n")
    (tmp_path / "utilisation.txt").write_text(
        "$ cmd\nxcf step bf16: 1.706 TFLOP/step, ... utilisation 87%\nxcf step fp32: ... utilisation 74%\n")
    rows = {(r["log"], r["target"]): r for r in report.rows(tmp_path)}
    assert rows[("train_step.txt", ">= 1.8x")]["value"] == 1.62 and rows[("train_step.txt", ">= 1.8x")]["met"] is False
    assert rows[("train_step.txt", ">= 3.5x")]["met"] is True
    assert rows[("train_step.txt", ">= 3.5x")]["command"] == "$ python benchmarks/train_step.py"
    util = [r for r in report.rows(tmp_path) if r["log"] == "utilisation.txt"]
    assert [r["met"] for r in util] == [True, False]
    missing = rows[("attribution.txt", ">= 3x")]
    assert missing["value"] is None and missing["met"] is None and missing["line"] == "(not recorded)"
    assert report.verdict(missing) == "not recorded"
    assert report.verdict(rows[("train_step.txt", ">= 1.8x")]) == "NOT met"


def test_lines_without_a_target_are_listed_but_not_judged(tmp_path):
    (tmp_path / "attribution.txt").write_text(
        "$ cmd\nratio xcf fp32 / baseline: 1.66x  (per-round 1.63-1.69)\n"
        "ratio xcf bf16 / baseline: 2.90x  (per-round 2.8-3.0)\n")
    rows = {(r["log"], r["target"]): r for r in report.rows(tmp_path)}
    fp32 = rows[("attribution.txt", "(none)")]
    assert fp32["value"] == 1.66 and fp32["met"] is None and report.verdict(fp32) == "no target"
    bf16 = rows[("attribution.txt", ">= 3x")]
    assert bf16["value"] == 2.9 and bf16["met"] is False and report.verdict(bf16) == "NOT met"


def test_rates_are_read_per_contender_from_a_log(tmp_path):
    (tmp_path / "train_step.txt").write_text(
        "$ OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/train_step.py\n"
        "# model PreActResNet-18 (width 64), batch 64\n"
        "baseline (official algorithm, fp32, NCHW)    4.49 img/s\n"
        "xcf pgd_at bf16 autocast (channels_last)    14.51 img/s\n"
        "ratio xcf bf16 / baseline: 3.23x  (per-round 3.01-3.46, median 3.23)\n")
    assert report.rates("train_step.txt", tmp_path) == {
        "baseline (official algorithm, fp32, NCHW)": 4.49, "xcf pgd_at bf16 autocast (channels_last)": 14.51}
    assert report.rates("missing.txt", tmp_path) == {}


def test_epochs_wall_time_by_hand():
    # 50,000 images x 200 epochs at 10 img/s = 1,000,000 s = 277.8 h
    assert abs(report.epochs_wall_time(10.0) - 1_000_000 / 3600) < 1e-9
    assert abs(report.epochs_wall_time(5.0, train_images=100, epochs=36) - 0.2) < 1e-12


def test_epochs_wall_time_refuses_a_speed_of_zero():
    import pytest
    with pytest.raises(ValueError, match="images_per_second must be > 0, got 0"):
        report.epochs_wall_time(0)


def test_shown_log_hides_temporary_folders_of_the_recording_machine(tmp_path):
    (tmp_path / "compile_bf16.txt").write_text(
        "# model PRN18, inductor_cache /tmp/xcf-inductor-NTo3y7, rounds 4\nratio compiled / eager: 1.2x\n")
    shown = report.shown_log("compile_bf16.txt", tmp_path)
    assert "/tmp/" not in shown
    assert "inductor_cache <temporary folder>, rounds 4" in shown
    assert "ratio compiled / eager: 1.2x" in shown          # the result itself is untouched
    assert report.shown_log("missing.txt", tmp_path) == ""


def test_a_bf16_row_left_out_on_a_cpu_without_native_bf16_reads_so(tmp_path):
    """Where the recording CPU emulates bf16 the benchmark prints no ratio for it; the
    report says why instead of 'not recorded', and judges no target."""
    (tmp_path / "train_step.txt").write_text(
        "$ cmd\n# native bf16 no (AVX2 yes, AVX-512 no, AVX-512 BF16 no, AMX no)\n"
        "ratio xcf fp32 / baseline: 1.61x  (per-round 1.6-1.7)\n"
        "ratio xcf bf16 / baseline: not native on this CPU\n")
    rows = {(r["log"], r["target"]): r for r in report.rows(tmp_path)}
    bf16 = rows[("train_step.txt", ">= 3.5x")]
    assert bf16["value"] is None and bf16["met"] is None
    assert report.verdict(bf16) == "not native on this CPU"
    assert bf16["line"] == "ratio xcf bf16 / baseline: not native on this CPU"
    fp32 = rows[("train_step.txt", ">= 1.8x")]
    assert fp32["value"] == 1.61 and report.verdict(fp32) == "NOT met"
    missing = rows[("attribution.txt", ">= 3x")]
    assert report.verdict(missing) == "not recorded"


def test_the_benchmarks_leave_bf16_out_where_it_is_emulated():
    """Forced no-bf16 path: the attribution benchmark times fp32 only and says why."""
    import subprocess

    out = subprocess.run([sys.executable, "benchmarks/attribution.py", "--per-class", "3",
                          "--steps", "1", "--rounds", "1"], cwd=ROOT, capture_output=True,
                         text=True, env={**os.environ, "XCF_NATIVE_BF16": "0"}, check=True).stdout
    assert "# native bf16 no" in out
    assert "ratio xcf bf16 / baseline: not native on this CPU" in out
    assert "bf16 autocast" not in out and "ratio xcf fp32 / baseline: " in out
