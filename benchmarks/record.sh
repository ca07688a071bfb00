#!/usr/bin/env bash
# Re-run the benchmarks of the performance page into benchmarks/results/, one after
# another (never two at once: they measure the machine).  Run on a quiet machine; about
# 16 minutes on 2 cores.
#
#   bash benchmarks/record.sh                          # all of them
#   bash benchmarks/record.sh profile_step attribution # only these logs
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p benchmarks/results
# One fresh inductor cache for the compile benchmarks: compile.py measures cold compiles
# into it (fp32, then bf16), and train_step.py --compile then starts warm, as any run
# after the first does, which keeps it under 3 minutes.
TORCHINDUCTOR_CACHE_DIR=$(mktemp -d "${TMPDIR:-/tmp}/xcf-inductor-XXXXXX")
export TORCHINDUCTOR_CACHE_DIR
trap 'rm -rf "$TORCHINDUCTOR_CACHE_DIR"' EXIT
# Lines that say nothing about the measurement: Python warnings, torch's note that this
# CPU machine has no CUDA runtime, and the profiler's start/stop chatter.
quiet() { grep -v -i -e warning -e 'No CUDA runtime is found' -e '^USDT:' -e 'gpuGetDeviceCount failed' || true; }
record() {  # record NAME ARGS...: the command line, then its output; atomic replace
    local name=$1; shift
    local tmp="benchmarks/results/.$name.tmp"
    echo "\$ OMP_WAIT_POLICY=PASSIVE .venv/bin/python $*" > "$tmp"
    if ! OMP_WAIT_POLICY=PASSIVE .venv/bin/python "$@" > "$tmp.out" 2>&1; then
        cat "$tmp.out" >&2; rm -f "$tmp" "$tmp.out"
        echo "record.sh: $name failed; the recorded log is unchanged" >&2; exit 1
    fi
    quiet < "$tmp.out" >> "$tmp"; rm -f "$tmp.out"
    mv "$tmp" "benchmarks/results/$name.txt"
    cat "benchmarks/results/$name.txt"
}
# Each log and the benchmark, with its arguments, that writes it, in recording order.
LOGS=(
    "train_step            benchmarks/train_step.py"
    "attribution           benchmarks/attribution.py"
    "utilisation           benchmarks/utilisation.py"
    "profile_step          benchmarks/profile_step.py"
    "compile_fp32          benchmarks/compile.py --amp none"
    "compile_bf16          benchmarks/compile.py --amp bf16"
    "train_step_compiled   benchmarks/train_step.py --compile"
    "profile_step_compiled benchmarks/profile_step.py --compile"
)
args_of() {  # the benchmark and its arguments that write log NAME
    local entry
    for entry in "${LOGS[@]}"; do
        # shellcheck disable=SC2086  # split the entry into its words
        set -- "$1" $entry
        if [ "$1" = "$2" ]; then shift 2; echo "$*"; return 0; fi
    done
    echo "record.sh: unknown log '$1'; known: $(printf '%s\n' "${LOGS[@]}" | cut -d' ' -f1 | xargs)" >&2
    return 1
}
names=("$@")
if [ ${#names[@]} -eq 0 ]; then
    for entry in "${LOGS[@]}"; do names+=("${entry%% *}"); done
fi
for name in "${names[@]}"; do args_of "$name" > /dev/null; done  # bad names fail before any run
for name in "${names[@]}"; do
    # shellcheck disable=SC2046  # the arguments are words without spaces
    record "$name" $(args_of "$name")
done
