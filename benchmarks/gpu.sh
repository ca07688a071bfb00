#!/usr/bin/env bash
# The GPU check of xcf, in one script: <= 8 minutes on a machine with one GPU.
#
#   bash benchmarks/gpu.sh                        # on a GPU; logs in benchmarks/results/gpu/
#   bash benchmarks/gpu.sh --out DIR              # logs in DIR
#   bash benchmarks/gpu.sh --fashion-mnist DIR    # the end-to-end runs on the four Fashion-
#                                                 # MNIST IDX .gz files in DIR (e.g. data/
#                                                 # fashion-mnist, ignored by git): uint8
#                                                 # images on the GPU; default: planted images
#   bash benchmarks/gpu.sh --cpu                  # the same parts at toy sizes on the CPU,
#                                                 # <= 3 minutes; says which GPU parts it skips
#
# Parts, each logged to its own file, cheapest and most telling first:
#   1. preflight: the packages the code paths import (torch, torchvision, numpy, yaml,
#      tqdm; timm brings the last two), named if missing; provenance.json (git commit,
#      date, device, versions).
#   2. cuda_checks: uint8 -> float32 per batch on the GPU gives the CPU's bits for all 256
#      bytes; fp16 autocast and GradScaler work on the device.
#   3. train_step: benchmarks/train_step.py --device cuda (baseline, xcf fp32, bf16, fp16).
#   4. gpu_profile: the gpu profile's PGD-AT run (notebooks/params/gpu.yaml, notebook 03),
#      end to end through xcf.train.runner.train (training, PGD-20 evaluation, C/CAS,
#      checkpoints, final.json), on data that need no download, a few epochs, once per amp
#      mode (none, bf16, fp16).
#   5. train_step_compiled: the same benchmark with model.compile() (cold compiles; last,
#      under its own time limit).
# No pip, no network: xcf runs from this checkout (PYTHONPATH), nothing is installed.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
OUT="$ROOT/benchmarks/results/gpu"
CPU=0
FASHION=""
while [ $# -gt 0 ]; do
    case "$1" in
        --cpu) CPU=1 ;;
        --out) OUT=$2; shift ;;
        --fashion-mnist) FASHION=$(cd "$2" && pwd) || { echo "gpu.sh: no folder $2" >&2; exit 2; }; shift ;;
        -h|--help) sed -n '2,25p' "$0"; exit 0 ;;
        *) echo "gpu.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
    esac
    shift
done
if [ -z "${PYTHON:-}" ]; then
    if [ -x "$ROOT/.venv/bin/python" ]; then PYTHON="$ROOT/.venv/bin/python"; else PYTHON=python3; fi
fi
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" OMP_WAIT_POLICY=PASSIVE
export TORCHINDUCTOR_CACHE_DIR=${TORCHINDUCTOR_CACHE_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/xcf-inductor-XXXXXX")}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
SUMMARY="$OUT/summary.txt"
: > "$SUMMARY"
START=$SECONDS
STATUS=0
say() { echo "$*" | tee -a "$SUMMARY"; }

part() {  # part NAME LIMIT_S CMD...: run, log to OUT/NAME.log, record status and time
    local name=$1 limit=$2; shift 2
    local t0=$SECONDS rc
    echo "== $name (limit ${limit}s) ==" >&2
    { echo "\$ $*"; date -Is; } > "$OUT/$name.log"
    timeout --kill-after=10 "$limit" "$@" 2>&1 | tee -a "$OUT/$name.log"
    rc=${PIPESTATUS[0]}
    local dt=$((SECONDS - t0))
    if [ "$rc" = 0 ]; then say "ok       $name (${dt} s)"
    elif [ "$rc" = 124 ] || [ "$rc" = 137 ]; then say "TIMEOUT  $name after ${dt} s (limit ${limit} s)"; STATUS=1
    else say "FAILED   $name (exit $rc, ${dt} s): see $OUT/$name.log"; STATUS=1
    fi
}

# ---------------------------------------------------------------- 1. preflight
part preflight 60 "$PYTHON" - "$OUT" "$CPU" <<'EOF'
import importlib.util, json, subprocess, sys, time
out, cpu = sys.argv[1], sys.argv[2] == "1"
need = {"torch": "PyTorch", "torchvision": "torchvision", "numpy": "numpy (comes with torch)",
        "yaml": "pyyaml (xcf.runs.config reads YAML; timm depends on it)",
        "tqdm": "tqdm (xcf.train.loop's progress bar; timm's huggingface_hub depends on it)",
        "PIL": "Pillow (comes with torchvision)"}
missing = [f"{m}: {why}" for m, why in need.items() if importlib.util.find_spec(m) is None]
if missing:
    sys.exit("gpu.sh preflight: missing packages the xcf code paths import at module level:\n  "
             + "\n  ".join(missing) + "\ninstall them (pip install pyyaml tqdm) and rerun")
import torch
from xcf.runs.provenance import environment
if not cpu and not torch.cuda.is_available():
    sys.exit("gpu.sh: no CUDA device visible to torch; run on a GPU machine, or use --cpu")
device = torch.device("cpu" if cpu else "cuda")
prov = {"date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "mode": "cpu" if cpu else "gpu",
        **environment(device)}
if not cpu:
    prov["cuda"] = {"version": torch.version.cuda, "capability": list(
        torch.cuda.get_device_capability()), "bf16": torch.cuda.is_bf16_supported(),
        "memory_gib": round(torch.cuda.get_device_properties(0).total_memory / 2**30, 1)}
    try:
        prov["nvidia_smi"] = subprocess.run(["nvidia-smi", "-L"], capture_output=True,
                                            text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        prov["nvidia_smi"] = None
with open(f"{out}/provenance.json", "w") as f:
    json.dump(prov, f, indent=1)
print(json.dumps(prov, indent=1))
EOF
if [ "$STATUS" != 0 ]; then say "gpu.sh: preflight failed; nothing else run"; exit 1; fi

# ---------------------------------------------------------------- 2. CUDA checks
if [ "$CPU" = 0 ]; then
part cuda_checks 120 "$PYTHON" - <<'EOF'
import torch
from xcf.data.dataset import uint8_to_float
from xcf.train.precision import autocast, grad_scaler
b = torch.arange(256, dtype=torch.uint8)
cpu_bits, gpu_bits = uint8_to_float(b), uint8_to_float(b.cuda()).cpu()
assert torch.equal(cpu_bits, gpu_bits), "uint8_to_float on CUDA differs from the CPU"
naive = b.cuda().float().div_(255.0).cpu()
print(f"uint8 -> float32 on CUDA: all 256 bytes equal the CPU's v/255; a plain CUDA "
      f"division would differ in {int((naive != cpu_bits).sum())} of 256")
a = torch.randn(64, 64, device="cuda")
with autocast("fp16", "cuda"):
    assert (a @ a).dtype == torch.float16
with autocast("bf16", "cuda"):
    assert (a @ a).dtype == torch.bfloat16
w = torch.nn.Parameter(torch.ones(4, device="cuda"))
opt = torch.optim.SGD([w], lr=0.1)
scaler = grad_scaler("fp16", "cuda")
scaler.scale((w * float("inf")).sum()).backward()
scaler.step(opt); scaler.update()
assert torch.equal(w.detach().cpu(), torch.ones(4)) and scaler.get_scale() == 2.0 ** 15
print("fp16/bf16 autocast on CUDA ok; GradScaler skipped an inf step and halved its scale")
EOF
fi

# ---------------------------------------------------------------- 3. train-step benchmark
if [ "$CPU" = 0 ]; then
    part train_step 150 "$PYTHON" benchmarks/train_step.py --device cuda --batch 128 --rounds 4
else
    part train_step 90 "$PYTHON" benchmarks/train_step.py --batch 8 --steps 2 --rounds 1
fi

# ---------------------------------------------------------------- 4. gpu-profile run
if [ "$CPU" = 0 ]; then LIMIT=180; else LIMIT=100; fi
part gpu_profile "$LIMIT" "$PYTHON" - "$OUT" "$CPU" "$FASHION" <<'EOF'
import sys, time
from pathlib import Path
import torch
from xcf.runs.config import make_config
from xcf.train.setup import prepare
from xcf.companion.profiles import profile_knobs
from xcf.train.runner import train

out, cpu, fashion = Path(sys.argv[1]), sys.argv[2] == "1", sys.argv[3]
run = dict(profile_knobs("03_at_dynamics", "gpu", Path("notebooks/params"))["train"])
print("gpu profile, notebook 03's PGD-AT run:", run)
if fashion:  # real bytes: the training set is held as uint8 on the device
    data = dict(dataset="fashion-mnist", data_kwargs={"source_dir": fashion, "pad_to": 32})
else:        # synthetic, nothing to download
    data = dict(dataset="planted", data_kwargs={"image_size": 32})
if cpu:      # toy sizes; the code path is the same
    size = dict(n_train=96, n_test=60, eval_n=60, epochs=2, attack_steps=2, eval_steps=2,
                batch_size=32, model_kwargs={"width": 16}, device="cpu")
else:        # 4 epochs: both lr decays of the schedule (50%, 75%) happen
    size = dict(n_train=6400, n_test=1000, eval_n=1000, epochs=4, device="cuda")
failed = []
for amp in ("none", "bf16", "fp16"):
    cfg = make_config({**run, **data, **size, "amp": amp})
    if torch.cuda.is_available() and not cpu:
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    r = train(cfg, runs_dir=out / "runs", overwrite=True, progress=False, log=print)
    dt = time.perf_counter() - t0
    rows = r.metrics()
    train_s = sum(row["seconds"]["train"] for row in rows)
    ok = r.finished and len(rows) == cfg.epochs and all(
        row["train_loss"] == row["train_loss"] for row in rows)
    peak = (f", peak GPU memory {torch.cuda.max_memory_allocated() / 2**20:.0f} MiB"
            if not cpu else "")
    print(f"amp {amp}: {'ok' if ok else 'FAILED'} in {dt:.1f} s, training "
          f"{cfg.epochs * len(prepare(cfg).y_train) / train_s:.0f} img/s{peak}; last epoch "
          f"test clean/robust {rows[-1]['test_clean_acc']:.3f}/{rows[-1]['test_robust_acc']:.3f}"
          f", CAS {rows[-1]['cas']:.2f}; run folder {r.path.name}")
    if amp == "fp16":  # xcf.train.runner keeps the GradScaler's state in last.pt, for resume
        state = r.load_state() or {}
        print(f"fp16: GradScaler state in last.pt: {'yes' if state.get('scaler') else 'NO'}")
    if not ok:
        failed.append(amp)
x_train = prepare(make_config({**run, **data, **size})).x_train
print(f"training images on the device as {x_train.dtype} ({x_train.nbytes / 2**20:.1f} MiB)")
sys.exit(f"gpu_profile: failed for amp {failed}" if failed else 0)
EOF

# ---------------------------------------------------------------- 5. compiled benchmark
if [ "$CPU" = 0 ]; then
    LEFT=$((470 - (SECONDS - START)))
    if [ "$LEFT" -lt 60 ]; then
        say "SKIPPED  train_step_compiled: only ${LEFT} s left of the 8-minute budget"
    else
        part train_step_compiled "$LEFT" "$PYTHON" benchmarks/train_step.py --device cuda \
            --batch 128 --compile --rounds 2
    fi
else
    say "SKIPPED  (--cpu) cuda_checks: uint8 conversion on CUDA, fp16/bf16 autocast and"
    say "         GradScaler on the device"
    say "SKIPPED  (--cpu) train_step on CUDA: the fp16 + GradScaler row, batch 128, PGD-10"
    say "         (ran on the CPU at batch 8, PGD-2, 1 round: baseline, fp32, bf16)"
    say "SKIPPED  (--cpu) gpu_profile at GPU size (6400 images, 4 epochs, width 64);"
    say "         ran at toy size on the CPU"
    say "SKIPPED  (--cpu) train_step_compiled: model.compile() on CUDA (cold compiles)"
fi
say "total $((SECONDS - START)) s; logs in $OUT"
exit "$STATUS"
