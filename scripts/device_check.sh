#!/usr/bin/env bash
# The GPU check, in one go, for a machine with one CUDA GPU and no network whose python3 already
# has a CUDA build of torch (2.11 or newer) with typer, rich, PyYAML and matplotlib. Installs
# nothing: runs from src/ (PYTHONPATH). Uses only generated data. Everything it measures goes to
# --out DIR. --device cpu runs the same steps on the CPU (the fallback mode, any machine).
# Usage: bash scripts/device_check.sh --out DIR [--device cuda|cpu] [--python PY] [--cpu-threads N]
set -uo pipefail
cd "$(dirname "$0")/.."
out="" device="" python="${PYTHON:-python3}" threads=16
while [[ $# -gt 0 ]]; do
    case "$1" in
        --out) out="$2"; shift 2 ;;
        --device) device="$2"; shift 2 ;;
        --python) python="$2"; shift 2 ;;
        --cpu-threads) threads="$2"; shift 2 ;;
        *) echo "device_check: unknown option $1 (valid: --out, --device, --python, --cpu-threads)" >&2; exit 2 ;;
    esac
done
[[ -n "$out" ]] || { echo "device_check: --out DIR is required" >&2; exit 2; }
mkdir -p "$out"
export PYTHONPATH="$PWD/src:$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 CI=true
if [[ -z "$device" ]]; then
    device=$("$python" -c 'import torch; print("cuda" if torch.cuda.is_available() else "cpu")')
fi
started=$(date +%s)
step() { echo "== $1 ($(( $(date +%s) - started )) s)" | tee -a "$out/steps.txt"; }

step "environment"
{ "$python" -c 'import sys, torch; print("python", sys.version.split()[0]); print("torch", torch.__version__, "cuda", torch.version.cuda); print("gpu", torch.cuda.get_device_name(0) if torch.cuda.is_available() else None)'
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null || echo "nvidia-smi: none"
  nproc; } > "$out/environment.txt" 2>&1
cat "$out/environment.txt"

step "tests: the gpu-marked ones, then the device and engine tests (on $device where they take one)"
"$python" -m pytest -q -p no:cacheprovider -m gpu tests/ > "$out/pytest_gpu.txt" 2>&1
echo "pytest -m gpu: exit $?" | tee -a "$out/steps.txt"
timeout 240 "$python" -m pytest -q -p no:cacheprovider -x tests/unit/engines > "$out/pytest_engines.txt" 2>&1
echo "pytest tests/unit/engines: exit $?" | tee -a "$out/steps.txt"

step "every rule: a short training in fp32 and bf16, and 1-process samples/s ($device vs $threads CPU threads)"
timeout 200 "$python" -m benchmarks.device_check --device "$device" --out "$out" --cpu-threads "$threads" \
    > "$out/device_check.txt" 2>&1
echo "device_check: exit $?" | tee -a "$out/steps.txt"

step "CPU stages: bench_parallel --stages 2 4 8 (one thread each)"
timeout 150 "$python" -m benchmarks.bench_parallel --stages 2 4 8 --rules dgl backprop --steps 20 \
    --warmup 4 --machine "device-check-$device" > "$out/bench_parallel.txt" 2>&1
echo "bench_parallel: exit $?" | tee -a "$out/steps.txt"
cp benchmarks/results/*"device-check-$device"*parallel.json "$out/" 2>/dev/null

step "two stages sharing one device ($device, gloo)"
timeout 90 "$python" -m beyond_backprop launch --nproc 2 --config configs/smoke/dgl.yaml \
    --set engine.device="$device" --set engine.backend=gloo --set engine.schedule=pipelined \
    --set train.max_steps=8 --set log.root="$out/runs" > "$out/two_stages_one_device.txt" 2>&1
echo "2 stages on one $device: exit $?" | tee -a "$out/steps.txt"
rm -rf "$out/runs"
step "done"
