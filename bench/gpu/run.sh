#!/usr/bin/env bash
# Runs the CUDA conformance suite and the GPU micro-benchmarks on a Linux machine with an NVIDIA driver and NO .NET.
#
# 1. On a machine WITH the .NET 10 SDK (any OS), from the repository root, publish the self-contained single-file runner
#    into the ignored folder publish/gpu:
#
#      dotnet publish bench/Engine.GpuCheck -c Release -r linux-x64 --self-contained \
#          -p:PublishSingleFile=true -p:EnableCompressionInSingleFile=true -p:DebugType=none -o publish/gpu
#
#    (38 MB; without compression it is 72 MB, over the 64 MiB a remote GPU runner may accept.)
#
# 2. Copy publish/gpu/engine-gpucheck and this script to the GPU machine (or the whole repository), then run:
#
#      bash bench/gpu/run.sh [--tf32] [--skip-bench] [--seed N] [--results FILE]
#
# Needs on the GPU machine: the NVIDIA driver (libcuda.so.1), NVRTC (libnvrtc.so.13/.12/.11.2) and cuBLAS
# (libcublas.so.13/.12/.11), e.g. from the CUDA toolkit or the pip wheels nvidia-cuda-nvrtc-cu12 and nvidia-cublas-cu12.
# Set ENGINE_NVRTC / ENGINE_CUBLAS / ENGINE_LIBCUDA to a full path when a library is not on the loader path; this script
# also adds the usual toolkit and pip-wheel folders to LD_LIBRARY_PATH when they exist.
#
# Output: every conformance comparison (relative error vs tolerance) and the conformance table (per op family) first, so
# a run cut short still leaves the verdict; then the benchmark table (GEMM GFLOP/s, attention forward/backward, the
# fused log-prob, GPT-2 124M train step ms/step and tokens/s), then the same step in PyTorch on the same GPU when a CUDA
# PyTorch is installed (ENGINE_TORCH_PYTHON names its python3; bench/reference/torch_train_step.py). Both tables also go, as markdown, to the results file
# (default bench/results/<date>-gpu-check.md beside this script, else ./gpu-check-<date>.md) for bench/results/.
# The whole run is capped at ENGINE_GPUCHECK_SECONDS (default 540: nine minutes, inside a 10-minute GPU window; the
# kernels are compiled by NVRTC on first use, about a minute on a cold cache). Exit code 0 when every conformance check
# passed, 1 when one failed, 2 when CUDA is not available (the reason is printed), 124 when the cap was reached.
#
# Before spending GPU time, the same runner can be tried on the emulated device (no GPU, needs g++):
#      publish/gpu/engine-gpucheck --emulated --skip-bench
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"

runner=""
for candidate in "${ENGINE_GPUCHECK:-}" "$here/engine-gpucheck" "$here/../../publish/gpu/engine-gpucheck" "./engine-gpucheck"; do
  if [ -n "$candidate" ] && [ -x "$candidate" ]; then runner="$candidate"; break; fi
done
if [ -z "$runner" ]; then
  echo "engine-gpucheck not found: publish it first (see the header of $0) or set ENGINE_GPUCHECK" >&2
  exit 2
fi

extra=""
for dir in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib \
           "$HOME"/.local/lib/python3*/site-packages/nvidia/*/lib /usr/lib/python3*/site-packages/nvidia/*/lib \
           /usr/local/lib/python3*/dist-packages/nvidia/*/lib /opt/*/.venv/lib/python3*/site-packages/nvidia/*/lib \
           /usr/local/nvidia/lib64; do
  [ -d "$dir" ] && extra="$extra:$dir"
done
export LD_LIBRARY_PATH="${LD_LIBRARY_PATH:-}$extra"

if command -v nvidia-smi >/dev/null; then
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
fi

# Kernels compiled by NVRTC are cached here between runs.
export ENGINE_CUDA_CACHE="${ENGINE_CUDA_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/engine/cuda}"
results=()
case " $* " in
  *" --results "*) ;;
  *) if [ -d "$here/../results" ]; then results=(--results "$here/../results/$(date -u +%F)-gpu-check.md");
     else results=(--results "./gpu-check-$(date -u +%F).md"); fi ;;
esac
results_file="${results[1]:-}"
previous=""
for arg in "$@"; do [ "$previous" = "--results" ] && results_file="$arg"; previous="$arg"; done

status=0
timeout --signal=INT --kill-after=20 "${ENGINE_GPUCHECK_SECONDS:-540}" "$runner" "${results[@]}" "$@" || status=$?

# The PyTorch peer of the GPT-2 124M train step above (B=4, T=1024, fp32), on the same GPU, when a CUDA PyTorch is
# there: the fixture models as they are (explicit softmax attention, the same math as Engine's), then what a PyTorch
# user would run (scaled_dot_product_attention and the fused AdamW). --tf32 applies to both, as to Engine's step.
case " $* " in *" --skip-bench "*) exit "$status" ;; esac
python="${ENGINE_TORCH_PYTHON:-python3}"
if [ "$status" -ne 124 ] && "$python" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
  tf32=""
  case " $* " in *" --tf32 "*) tf32="--tf32" ;; esac
  shape=(--arch gpt2 --layers 12 --dim 768 --heads 12 --vocab 50257 --seq 1024 --batch 4 --steps 10 --device cuda $tf32 --json)
  for variant in "" "--sdpa --fused-adamw"; do
    # shellcheck disable=SC2086
    line=$(timeout 120 "$python" "$here/../reference/torch_train_step.py" "${shape[@]}" $variant 2>&1 | tail -1) || true
    echo "[torch peer${variant:+ $variant}] $line"
    if [ -n "$results_file" ]; then printf '\n[torch peer%s] `%s`\n' "${variant:+ $variant}" "$line" >> "$results_file"; fi
  done
else
  echo "no CUDA PyTorch here (or the cap was reached): the PyTorch peer step is not run"
fi
exit "$status"
