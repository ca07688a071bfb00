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
ALL=(train_step attribution utilisation profile_step compile_fp32 compile_bf16
     train_step_compiled profile_step_compiled)
args_of() {  # the benchmark and its arguments that write log NAME
    case $1 in
        train_step) echo benchmarks/train_step.py ;;
        attribution) echo benchmarks/attribution.py ;;
        utilisation) echo benchmarks/utilisation.py ;;
        profile_step) echo benchmarks/profile_step.py ;;
        compile_fp32) echo benchmarks/compile.py --amp none ;;
        compile_bf16) echo benchmarks/compile.py --amp bf16 ;;
        train_step_compiled) echo benchmarks/train_step.py --compile ;;
        profile_step_compiled) echo benchmarks/profile_step.py --compile ;;
        *) echo "record.sh: unknown log '$1'; known: ${ALL[*]}" >&2; return 1 ;;
    esac
}
names=("$@")
[ ${#names[@]} -gt 0 ] || names=("${ALL[@]}")
for name in "${names[@]}"; do args_of "$name" > /dev/null; done  # bad names fail before any run
for name in "${names[@]}"; do
    # shellcheck disable=SC2046  # the arguments are words without spaces
    record "$name" $(args_of "$name")
done
