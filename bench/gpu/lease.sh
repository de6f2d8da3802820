#!/usr/bin/env bash
# Everything one short lease of a GPU machine is for, in one call, most important first, each step capped so the next
# still runs (see bench/gpu/run.sh for publishing the runner into publish/gpu first):
#   1. run.sh: the conformance suite (every op, then whole models), the GPU benchmarks and the PyTorch peer step;
#   2. `engine pipeline --quick --device cuda`: every trainer's host code on the real device (a smoke test);
#   3. the full pipeline on the device, cut off after PIPELINE_SECONDS: how far the main job gets, stage by stage.
# Logs and the markdown results go to OUTDIR (default $OUT, else ./gpu-out) for bench/results/.
#
#   bash bench/gpu/lease.sh [OUTDIR]        env: CHECK_SECONDS (240), QUICK_SECONDS (90), PIPELINE_SECONDS (90), SEED
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="${1:-${OUT:-./gpu-out}}"
mkdir -p "$out"
runner="$here/../../publish/gpu/engine-gpucheck"
export ENGINE_CUDA_CACHE="${ENGINE_CUDA_CACHE:-/tmp/engine-cuda-cache}"
date -u
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm --format=csv,noheader || true
ls /usr/local/cuda/lib64 2>/dev/null | grep -E '^lib(nvrtc|cublas|cublasLt)\.so\.[0-9]+$' | tr '\n' ' '; echo

ENGINE_GPUCHECK_SECONDS="${CHECK_SECONDS:-240}" bash "$here/run.sh" --seed "${SEED:-11}" --results "$out/gpu-check.md" \
  > "$out/gpu-check.log" 2>&1
echo "run.sh exit code $?"
grep -vE '\] .* ok$' "$out/gpu-check.log" | grep -vE '^\[bench\]' | tail -80

export LD_LIBRARY_PATH="${LD_LIBRARY_PATH:-}:/usr/local/cuda/lib64"
echo "== engine pipeline --quick --device cuda"
timeout "${QUICK_SECONDS:-90}" "$runner" engine pipeline --quick --device cuda --out /tmp/pipeline-quick > "$out/pipeline-quick.log" 2>&1
echo "exit code $?"
tail -12 "$out/pipeline-quick.log"

echo "== engine pipeline --device cuda (cut off after ${PIPELINE_SECONDS:-90} s)"
timeout --signal=INT "${PIPELINE_SECONDS:-90}" "$runner" engine pipeline --device cuda --out /tmp/pipeline > "$out/pipeline.log" 2>&1
echo "exit code $?"
grep -E '^[a-z_]+: [0-9]+ steps|held-out|wrote|error' "$out/pipeline.log" | tail -20
tail -3 "$out/pipeline.log"
