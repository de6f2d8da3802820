using System.Diagnostics;
using Engine.Core.Cpu;
using Engine.Core.Tensors;

namespace Engine.Benchmarks;

/// <summary>
/// Quick GFLOP/s table of our GEMM on the model shapes without BenchmarkDotNet, in the same format as
/// bench/reference/sgemm_openblas.py: <c>dotnet run -c Release --project bench/Engine.Benchmarks -- gemm-probe [threads]
/// [seconds per shape] [name filter]</c>. Each shape reports the best of several timed batches after a warm-up, as
/// wall-clock GFLOP/s and as GFLOP per second of process CPU time (the machine is shared: the second figure is the
/// efficiency of the cores while we had them, robust to other load; it counts every core we keep busy).
/// </summary>
internal static class GemmProbe
{
    public static void Run(string[] args)
    {
        int threads = args.Length > 0 ? int.Parse(args[0], System.Globalization.CultureInfo.InvariantCulture) : 2;
        double seconds = args.Length > 1 ? double.Parse(args[1], System.Globalization.CultureInfo.InvariantCulture) : 0.5;
        string filter = args.Length > 2 ? args[2] : "";
        using var backend = new CpuBackend(threads);
        Console.WriteLine($"{backend.Description}");
        Console.WriteLine($"{"shape",-22} {"M",6} {"N",6} {"K",6} {"op",3} {"ms",9} {"GFLOP/s",9} {"per-cpu-s",9}");
        foreach (var g in GemmShapes.All())
        {
            if (!g.Name.Contains(filter, StringComparison.OrdinalIgnoreCase))
            {
                continue;
            }

            var a = backend.AllocateTensor(DType.F32, g.TransposeA ? [g.K, g.M] : [g.M, g.K]);
            var b = backend.AllocateTensor(DType.F32, g.TransposeB ? [g.N, g.K] : [g.K, g.N]);
            var c = backend.AllocateTensor(DType.F32, g.M, g.N);
            Fill(a.AsSpan<float>(), 1);
            Fill(b.AsSpan<float>(), 2);
            backend.Gemm(c, a, b, g.TransposeA, g.TransposeB);
            int calls = Math.Max(1, (int)(0.02 * 100e9 / g.Flops));
            double best = double.MaxValue, bestCpu = double.MaxValue;
            using var process = Process.GetCurrentProcess();
            var total = Stopwatch.StartNew();
            for (int round = 0; round < 3 || total.Elapsed.TotalSeconds < seconds; round++)
            {
                process.Refresh();
                var cpu0 = process.TotalProcessorTime;
                long t0 = Stopwatch.GetTimestamp();
                for (int i = 0; i < calls; i++)
                {
                    backend.Gemm(c, a, b, g.TransposeA, g.TransposeB);
                }

                best = Math.Min(best, Stopwatch.GetElapsedTime(t0).TotalSeconds / calls);
                process.Refresh();
                bestCpu = Math.Min(bestCpu, (process.TotalProcessorTime - cpu0).TotalSeconds / calls);
            }

            Console.WriteLine($"{g.Name,-22} {g.M,6} {g.N,6} {g.K,6} {g.Ops,3} {best * 1e3,9:F3} {g.Flops / best / 1e9,9:F1} {g.Flops / bestCpu / 1e9,9:F1}");
            a.Buffer!.Dispose();
            b.Buffer!.Dispose();
            c.Buffer!.Dispose();
        }
    }

    private static void Fill(Span<float> x, int seed)
    {
        var rng = new Random(seed);
        for (int i = 0; i < x.Length; i++)
        {
            x[i] = (float)(rng.NextDouble() * 2 - 1);
        }
    }
}
