#!/usr/bin/python3
"""Times OpenBLAS SGEMM (through numpy) on the model shapes of bench/Engine.Benchmarks/GemmBenchmarks.cs.

Run with Debian's python so numpy picks up libopenblas0-pthread, with the same thread count as our side:
    OPENBLAS_NUM_THREADS=2 /usr/bin/python3 bench/reference/sgemm_openblas.py [seconds per shape] [name filter]
Each shape is timed as the best of several repeats of a batch of calls into a preallocated output, so Python
overhead and allocation stay out of the number; GFLOP/s = 2·M·N·K / seconds.
"""
import os
import sys
import time

import numpy as np

# (label, rows N, input channels C, output channels OC): the linear layers of the two model configurations.
LAYERS = [
    ("small qkv", 512, 256, 768),
    ("small attproj", 512, 256, 256),
    ("small fc", 512, 256, 1024),
    ("small fcproj", 512, 1024, 256),
    ("small lmhead", 512, 256, 8192),
    ("124M qkv", 256, 768, 2304),
    ("124M attproj", 256, 768, 768),
    ("124M fc", 256, 768, 3072),
    ("124M fcproj", 256, 3072, 768),
    ("124M lmhead", 256, 768, 50257),
]


def gemm_cases():
    """Forward out = inp·Wᵀ, and the two backward products dinp = dout·W and dW = doutᵀ·inp (W is [OC, C])."""
    for label, n, c, oc in LAYERS:
        yield f"{label} fwd", n, oc, c, "NT"
        yield f"{label} dinp", n, c, oc, "NN"
        yield f"{label} dW", oc, c, n, "TN"


def operands(m, n, k, kind, rng):
    a_rows, a_cols = (k, m) if kind[0] == "T" else (m, k)
    b_rows, b_cols = (n, k) if kind[1] == "T" else (k, n)
    a = rng.standard_normal((a_rows, a_cols), dtype=np.float32)
    b = rng.standard_normal((b_rows, b_cols), dtype=np.float32)
    # Transposed operands are views, which numpy hands to sgemm as a transpose flag without copying.
    return (a.T if kind[0] == "T" else a), (b.T if kind[1] == "T" else b)


def time_case(m, n, k, kind, rng, min_seconds):
    a, b = operands(m, n, k, kind, rng)
    c = np.empty((m, n), dtype=np.float32)
    flops = 2.0 * m * n * k
    np.matmul(a, b, out=c)
    calls = max(1, int(0.02 * 100e9 / flops))
    best = float("inf")
    deadline = time.perf_counter() + min_seconds
    rounds = 0
    while rounds < 3 or time.perf_counter() < deadline:
        t0 = time.perf_counter()
        for _ in range(calls):
            np.matmul(a, b, out=c)
        best = min(best, (time.perf_counter() - t0) / calls)
        rounds += 1
    return flops / best / 1e9, best


def main():
    min_seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 0.5
    name_filter = sys.argv[2].lower() if len(sys.argv) > 2 else ""
    threads = os.environ.get("OPENBLAS_NUM_THREADS", "(unset)")
    rng = np.random.default_rng(1)
    core = os.environ.get("OPENBLAS_CORETYPE", "(auto)")
    print(f"numpy {np.__version__}, OPENBLAS_NUM_THREADS={threads}, OPENBLAS_CORETYPE={core}")
    print(f"{'shape':<22} {'M':>6} {'N':>6} {'K':>6} {'op':>3} {'ms':>9} {'GFLOP/s':>9}")
    for label, m, n, k, kind in gemm_cases():
        if name_filter not in label.lower():
            continue
        gflops, seconds = time_case(m, n, k, kind, rng, min_seconds)
        print(f"{label:<22} {m:>6} {n:>6} {k:>6} {kind:>3} {seconds * 1e3:>9.3f} {gflops:>9.1f}", flush=True)


if __name__ == "__main__":
    main()
