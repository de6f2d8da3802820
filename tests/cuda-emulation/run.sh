#!/usr/bin/env bash
# Runs the alignment kernels (kernels/logprob.cu, sequence.cu, rl.cu) on the CPU under shim.h, an emulation of the CUDA
# execution model (a std::thread per CUDA thread, block barriers, warp shuffles through a per-warp exchange), with the
# CUDA backend's host logic (chunk loops, GEMMs in numpy) transliterated in check.py and compared against double-precision
# numpy references. It executes the kernels' indexing, synchronisation and reduction logic where no GPU exists; it says
# nothing about timing, memory coalescing or anything the hardware adds. Not part of `dotnet test`.
#
# Needs g++ with C++20 and python3 with numpy (Debian: g++, python3-numpy).   Usage: bash tests/cuda-emulation/run.sh [seed]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
kernels="$(cd "$here/../../kernels" && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
python3 - "$kernels" "$work" <<'PY'
import re, sys
kernels, work = sys.argv[1], sys.argv[2]
out = ['#include "shim.h"']
for f in ["logprob.cu", "sequence.cu", "rl.cu"]:
    src = open(f"{kernels}/{f}", encoding="utf-8").read()
    out.append(f'#include "{kernels}/{f}"')
    # One exported wrapper per kernel: run_<name>(grid, block, <the kernel's parameters>) launches it on the emulator.
    for m in re.finditer(r'extern "C" __global__ void (\w+)\(([^)]*)\)', src, re.S):
        params = " ".join(m.group(2).split())
        args = ", ".join(p.strip().split()[-1] for p in params.split(","))
        out.append(f'extern "C" void run_{m.group(1)}(unsigned g, unsigned b, {params}) {{ launch(g, b, [=] {{ {m.group(1)}({args}); }}); }}')
open(f"{work}/harness.cpp", "w", encoding="utf-8").write("\n".join(out) + "\n")
PY
# -ffp-contract=off keeps g++ from fusing multiply-adds the kernels spell out (NVCC's own contraction differs anyway).
g++ -std=c++20 -O1 -ffp-contract=off -shared -fPIC -I "$here" -I "$kernels" -o "$work/libemu.so" "$work/harness.cpp" -lpthread
ENGINE_EMULATED_KERNELS="$work/libemu.so" python3 "$here/check.py" "${1:-1}"
