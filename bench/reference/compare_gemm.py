#!/usr/bin/python3
"""Times our GEMM (gemm-probe) and OpenBLAS shape by shape, alternately, and prints a markdown table of the best of each.

    /usr/bin/python3 bench/reference/compare_gemm.py [rounds] [seconds per shape] [threads]

The machine is shared with other work, so for every shape the three measurements (ours; OpenBLAS as it configures
itself, OPENBLAS_CORETYPE unset; OpenBLAS forced onto its AVX-512 SkylakeX kernels) run back to back, `rounds` times,
and each keeps its best GFLOP/s: all three see the same load at nearly the same moment.
Build first: dotnet build bench/Engine.Benchmarks -c Release.
"""
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OURS = ["dotnet", os.path.join(ROOT, "bench/Engine.Benchmarks/bin/Release/net10.0/Engine.Benchmarks.dll"), "gemm-probe"]
BLAS = ["/usr/bin/python3", os.path.join(ROOT, "bench/reference/sgemm_openblas.py")]


def parse(text):
    """Rows of either table: name, M, N, K, op, ms, GFLOP/s[, GFLOP per CPU-second]."""
    rows = {}
    for line in text.splitlines():
        parts = line.split()
        ops = [i for i, p in enumerate(parts) if p in ("NN", "NT", "TN", "TT")]
        if ops and ops[0] >= 4 and len(parts) >= ops[0] + 3:
            i = ops[0]
            name = " ".join(parts[: i - 3])
            rows[name] = (int(parts[i - 3]), int(parts[i - 2]), int(parts[i - 1]), parts[i], float(parts[i + 2]))
    return rows


def run(cmd, env_extra):
    env = dict(os.environ, **env_extra)
    return subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout


def merge(best, rows):
    for name, row in rows.items():
        if name not in best or row[4] > best[name][4]:
            best[name] = row


def main():
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    seconds = sys.argv[2] if len(sys.argv) > 2 else "0.5"
    threads = sys.argv[3] if len(sys.argv) > 3 else "2"
    names = list(parse(run(OURS + [threads, "0"], {})).keys())
    ours, blas, blas512 = {}, {}, {}
    for name in names:
        for _ in range(rounds):
            merge(ours, {k: v for k, v in parse(run(OURS + [threads, seconds, name], {})).items() if k == name})
            merge(blas, {k: v for k, v in parse(run(BLAS + [seconds, name], {"OPENBLAS_NUM_THREADS": threads})).items() if k == name})
            env512 = {"OPENBLAS_NUM_THREADS": threads, "OPENBLAS_CORETYPE": "SkylakeX"}
            merge(blas512, {k: v for k, v in parse(run(BLAS + [seconds, name], env512)).items() if k == name})
    print("| shape | M | N | K | op | ours GFLOP/s | OpenBLAS (auto: Haswell) | ratio | OpenBLAS (SkylakeX) | ratio |")
    print("|---|---:|---:|---:|:-:|---:|---:|---:|---:|---:|")
    for name in names:
        m, n, k, op, g = ours[name]
        b = blas.get(name, (0, 0, 0, "", float("nan")))[4]
        b5 = blas512.get(name, (0, 0, 0, "", float("nan")))[4]
        print(f"| {name} | {m} | {n} | {k} | {op} | {g:.1f} | {b:.1f} | {g / b:.2f} | {b5:.1f} | {g / b5:.2f} |", flush=True)


if __name__ == "__main__":
    main()
