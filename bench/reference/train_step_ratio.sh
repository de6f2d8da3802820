#!/usr/bin/env bash
# Side-by-side training-step timings, Engine vs PyTorch on this CPU, for the README's performance table.
# Runs Engine and three PyTorch configurations (OpenBLAS as the environment sets it, OpenBLAS left to detect the CPU,
# and that with glibc malloc kept from returning large blocks to the OS), alternating, ROUNDS rounds, and prints one
# JSON line per run plus the load average before and after. Needs: a Release build of src/Engine.Cli, and Debian's
# python3-torch with libopenblas0-pthread. Run it on a quiet machine: the load average is part of the result.
#   bash bench/reference/train_step_ratio.sh [ROUNDS] > results.jsonl
set -euo pipefail
cd "$(dirname "$0")/../.."
rounds=${1:-3}
engine=src/Engine.Cli/bin/Release/net10.0/engine
[ -x "$engine" ] || { echo "build first: dotnet build src/Engine.Cli -c Release" >&2; exit 1; }
small=(--arch gpt2 --layers 4 --dim 256 --heads 4 --vocab 8192 --seq 128 --batch 4 --steps 10 --threads 2 --json)
big=(--arch gpt2 --layers 12 --dim 768 --heads 12 --vocab 50257 --seq 64 --batch 4 --steps 5 --threads 2 --json)
torch=(/usr/bin/python3 bench/reference/torch_train_step.py)
tag() { sed "s/^{/{\"side\": \"$1\", \"model\": \"$2\", \"round\": $3, /"; }
echo "{\"loadavg_before\": \"$(cut -d' ' -f1-3 /proc/loadavg)\", \"openblas_env\": \"CORETYPE=${OPENBLAS_CORETYPE:-unset} L2_SIZE=${OPENBLAS_L2_SIZE:-unset}\"}"
for r in $(seq 1 "$rounds"); do
  for m in small big; do
    declare -n flags=$m
    "$engine" bench train-step "${flags[@]}" | tag engine "$m" "$r"
    "${torch[@]}" "${flags[@]}" | tag "torch-as-configured" "$m" "$r"
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE "${torch[@]}" "${flags[@]}" | tag "torch-openblas-autodetect" "$m" "$r"
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE GLIBC_TUNABLES=glibc.malloc.mmap_threshold=4294967296:glibc.malloc.trim_threshold=4294967296 \
      "${torch[@]}" "${flags[@]}" | tag "torch-openblas-autodetect-malloc-tuned" "$m" "$r"
  done
done
echo "{\"loadavg_after\": \"$(cut -d' ' -f1-3 /proc/loadavg)\"}"
