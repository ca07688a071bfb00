#!/usr/bin/env bash
# Re-run the benchmarks of the performance page into benchmarks/results/, one after
# another (never two at once: they measure the machine).  Run on a quiet machine.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p benchmarks/results
record() {  # record NAME ARGS...: the command line, then its output; atomic replace
    local name=$1; shift
    local tmp="benchmarks/results/.$name.tmp"
    echo "\$ OMP_WAIT_POLICY=PASSIVE .venv/bin/python $*" > "$tmp"
    if ! OMP_WAIT_POLICY=PASSIVE .venv/bin/python "$@" 2>&1 | grep -v -i warning >> "$tmp"; then
        cat "$tmp" >&2; echo "record.sh: $name failed; the recorded log is unchanged" >&2; exit 1
    fi
    mv "$tmp" "benchmarks/results/$name.txt"
    cat "benchmarks/results/$name.txt"
}
record train_step benchmarks/train_step.py
record attribution benchmarks/attribution.py
record utilisation benchmarks/utilisation.py
record profile_step benchmarks/profile_step.py
record train_step_compiled benchmarks/train_step.py --compile
