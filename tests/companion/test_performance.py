"""xcf.companion.performance (the Performance page's live part): a benchmark script run
with its flags, and the ratios read from what it prints."""
import pytest

from xcf.companion.performance import live_ratios, run_benchmark
from xcf.train.precision import NOT_NATIVE

SCRIPT = """import os, sys
print("args", sys.argv[1:], os.environ["OMP_WAIT_POLICY"])
print("ratio xcf fp32 / baseline: 1.75x")
print("ratio xcf fp32 eval-mode attack (a deviation) / baseline: 9.00x")
print("ratio xcf bf16 / baseline: {}")
"""


def test_a_benchmark_runs_from_the_checkout_with_its_flags_and_passive_threads(tmp_path,
                                                                               capsys):
    (tmp_path / "benchmarks").mkdir()
    (tmp_path / "benchmarks" / "b.py").write_text(SCRIPT.format(NOT_NATIVE))
    out = run_benchmark(tmp_path, "benchmarks/b.py", per_class=10, steps=3, rounds=1)
    assert "args ['--per-class', '10', '--steps', '3', '--rounds', '1'] PASSIVE" in out
    assert capsys.readouterr().out == out + "\n"
    assert live_ratios({"b": out, "c": "ratio xcf bf16 / baseline: 3.50x"}) == {
        "b fp32": 1.75, "b bf16": NOT_NATIVE, "c bf16": 3.5}  # a deviation is not a kind


def test_a_failing_benchmark_raises_with_its_stderr(tmp_path):
    (tmp_path / "bad.py").write_text("import sys\nsys.exit('no such model')\n")
    with pytest.raises(RuntimeError, match="failed:\nno such model"):
        run_benchmark(tmp_path, "bad.py")
