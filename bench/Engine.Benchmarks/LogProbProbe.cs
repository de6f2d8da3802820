using System.Diagnostics;
using System.Globalization;
using Engine.Core.Backends;
using Engine.Core.Cpu;
using Engine.Core.Tensors;

namespace Engine.Benchmarks;

/// <summary>
/// Quick timing of the fused token log-prob kernel against the three GEMMs it contains, without BenchmarkDotNet:
/// <c>dotnet run -c Release --project bench/Engine.Benchmarks -- logprob-probe [threads] [N] [V] [C] [reps] [chunk rows]</c>
/// (defaults 2, 2048, 50257, 768, 2, auto). Prints the best time of each variant and the extra memory of the fused
/// kernel, measured on its first call in a fresh process (before any standalone GEMM has grown the shared GEMM scratch).
/// </summary>
internal static class LogProbProbe
{
    public static void Run(string[] args)
    {
        int Arg(int i, int fallback) => args.Length > i ? int.Parse(args[i], CultureInfo.InvariantCulture) : fallback;
        int threads = Arg(0, 2), n = Arg(1, 2048), v = Arg(2, 50257), c = Arg(3, 768), reps = Arg(4, 2), chunkRows = Arg(5, 0);
        using var backend = new CpuBackend(threads) { LogProbChunkRowsOverride = chunkRows };
        using var setup = new LogProbSetup(backend, n, v, c);
        Console.WriteLine($"{backend.Description}; N={n} V={v} C={c}; chunk rows {backend.LogProbChunkRows(v, n)}");

        // First call: everything the kernel and the GEMMs under it allocate (grow-only scratch) plus any host buffers.
        long gcBefore = GC.GetTotalAllocatedBytes(precise: true);
        long liveBefore = HostBuffer.LiveBytes;
        var first = Stopwatch.StartNew();
        setup.Fused();
        first.Stop();
        double gcMiB = (GC.GetTotalAllocatedBytes(precise: true) - gcBefore) / 1048576.0;
        double hostMiB = (HostBuffer.PeakBytes - liveBefore) / 1048576.0;
        Console.WriteLine($"first fused call {first.Elapsed.TotalMilliseconds:F0} ms; extra memory: {gcMiB:F1} MiB GC (workspace + GEMM scratch), "
            + $"{hostMiB:F1} MiB host buffers; inputs+outputs {setup.TensorBytes / 1048576.0:F1} MiB");

        long gcSteady = GC.GetTotalAllocatedBytes(precise: true);
        setup.Fused();
        Console.WriteLine($"steady-state fused call allocates {GC.GetTotalAllocatedBytes(precise: true) - gcSteady} bytes");

        using var gemms = new ThreeGemms(backend, setup);
        var fused = Best.None;
        var twoPass = Best.None;
        var three = Best.None;
        Best[] parts = [Best.None, Best.None, Best.None];
        for (int r = 0; r < reps; r++)
        {
            fused = fused.Min(Time(setup.Fused));
            twoPass = twoPass.Min(Time(setup.ForwardThenBackward));
            Best t0 = Time(gemms.Logits), t1 = Time(gemms.InputGrad), t2 = Time(gemms.WeightGrad);
            parts[0] = parts[0].Min(t0);
            parts[1] = parts[1].Min(t1);
            parts[2] = parts[2].Min(t2);
            three = three.Min(new Best(t0.WallMs + t1.WallMs + t2.WallMs, t0.CpuMs + t1.CpuMs + t2.CpuMs));
        }

        // On a shared machine the wall time depends on the neighbours; the process CPU time (all threads) much less.
        double flops = 2.0 * n * v * c;
        Console.WriteLine($"best of {reps}: wall ms / process CPU ms");
        Console.WriteLine($"3 GEMMs       {three}  (logits {parts[0]}, dh {parts[1]}, dW {parts[2]}; {3 * flops / three.WallMs / 1e6:F1} GFLOP/s wall)");
        Console.WriteLine($"fused fwd+bwd {fused}  ratio {fused.WallMs / three.WallMs:F3} wall, {fused.CpuMs / three.CpuMs:F3} CPU  (TokenLogProbsForwardBackward, one pass)");
        Console.WriteLine($"fwd then bwd  {twoPass}  ratio {twoPass.WallMs / three.WallMs:F3} wall, {twoPass.CpuMs / three.CpuMs:F3} CPU  (Forward + Backward, logits recomputed)");
    }

    private static Best Time(Action action)
    {
        var process = Process.GetCurrentProcess();
        var cpu0 = process.TotalProcessorTime;
        long t0 = Stopwatch.GetTimestamp();
        action();
        double wall = Stopwatch.GetElapsedTime(t0).TotalMilliseconds;
        process.Refresh();
        return new Best(wall, (process.TotalProcessorTime - cpu0).TotalMilliseconds);
    }

    /// <summary>Wall-clock and process CPU milliseconds of one run; <see cref="Min"/> keeps the smaller of each.</summary>
    private readonly record struct Best(double WallMs, double CpuMs)
    {
        public static Best None => new(double.MaxValue, double.MaxValue);

        public Best Min(Best other) => new(Math.Min(WallMs, other.WallMs), Math.Min(CpuMs, other.CpuMs));

        public override string ToString() => $"{WallMs,8:F1} / {CpuMs,8:F1}";
    }

    /// <summary>The standalone GEMMs on the same shapes, with a materialised [N,V] logits/dz tensor (412 MB at GPT-2 size).</summary>
    private sealed class ThreeGemms : IDisposable
    {
        private readonly CpuBackend backend;
        private readonly LogProbSetup s;
        private readonly Tensor logits;

        public ThreeGemms(CpuBackend backend, LogProbSetup setup)
        {
            this.backend = backend;
            s = setup;
            logits = backend.AllocateTensor(DType.F32, setup.N, setup.V);
            LogProbSetup.Fill(logits.AsSpan<float>(), 9, 1e-4f);
        }

        public void Logits() => backend.Gemm(logits, s.Hidden, s.Weight, transposeA: false, transposeB: true);

        public void InputGrad() => backend.Gemm(s.HiddenGrad, logits, s.Weight, transposeA: false, transposeB: false, beta: 1f);

        public void WeightGrad() => backend.Gemm(s.WeightGrad, logits, s.Hidden, transposeA: true, transposeB: false, beta: 1f);

        public void Dispose() => logits.Buffer!.Dispose();
    }
}

/// <summary>GPT-2-sized head inputs for the log-prob benchmarks: hidden [N,C], weight [V,C], targets with some masked rows.</summary>
internal sealed class LogProbSetup : IDisposable
{
    private readonly CpuBackend backend;
    private readonly List<Tensor> owned = [];

    public LogProbSetup(CpuBackend backend, int n, int v, int c)
    {
        this.backend = backend;
        N = n;
        V = v;
        C = c;
        Hidden = Make(DType.F32, n, c);
        Weight = Make(DType.F32, v, c);
        HiddenGrad = Make(DType.F32, n, c);
        WeightGrad = Make(DType.F32, v, c);
        Fill(Hidden.AsSpan<float>(), 1, 1f);
        Fill(Weight.AsSpan<float>(), 2, 0.05f);
        Reference = Make(DType.F32, n);
        Fill(Reference.AsSpan<float>(), 3, 1f);
        foreach (ref float r in Reference.AsSpan<float>())
        {
            r = -12f + r;
        }

        var targets = Make(DType.I32, n);
        var rng = new Random(4);
        var t = targets.AsSpan<int>();
        for (int i = 0; i < n; i++)
        {
            // A prompt-like masked prefix of every 512-row sequence, as in a real alignment batch.
            t[i] = i % 512 < 32 ? -1 : rng.Next(v);
        }

        LogProbsGrad = Make(DType.F32, n);
        EntropyGrad = Make(DType.F32, n);
        KlGrad = Make(DType.F32, n, 3);
        Fill(LogProbsGrad.AsSpan<float>(), 5, 1f / n);
        backend.Fill(EntropyGrad, 0.01f / n);
        Fill(KlGrad.AsSpan<float>(), 6, 0.04f / n);
        Inputs = new TokenLogProbInputs(targets, default, Reference, 1f);
        Outputs = new TokenLogProbOutputs(Make(DType.F32, n), Make(DType.F32, n, 2), Make(DType.F32, n), Make(DType.F32, n, 3));
        Grads = new TokenLogProbGrads(LogProbsGrad, EntropyGrad, KlGrad);
    }

    public int N { get; }

    public int V { get; }

    public int C { get; }

    public Tensor Hidden { get; }

    public Tensor Weight { get; }

    public Tensor HiddenGrad { get; }

    public Tensor WeightGrad { get; }

    public Tensor Reference { get; }

    public Tensor LogProbsGrad { get; }

    public Tensor EntropyGrad { get; }

    public Tensor KlGrad { get; }

    public TokenLogProbInputs Inputs { get; }

    public TokenLogProbOutputs Outputs { get; }

    public TokenLogProbGrads Grads { get; }

    /// <summary>Bytes of every tensor above (the inputs, outputs and gradients the caller owns anyway).</summary>
    public long TensorBytes => owned.Sum(t => t.ByteLength);

    public void Fused() =>
        backend.TokenLogProbsForwardBackward(Outputs, HiddenGrad, WeightGrad, Grads, Hidden, Weight, Inputs);

    public void ForwardThenBackward()
    {
        backend.TokenLogProbsForward(Outputs, Hidden, Weight, Inputs);
        backend.TokenLogProbsBackward(HiddenGrad, WeightGrad, Grads, Hidden, Weight, Outputs.RowStats, Inputs);
    }

    public static void Fill(Span<float> x, int seed, float scale)
    {
        var rng = new Random(seed);
        for (int i = 0; i < x.Length; i++)
        {
            x[i] = (float)((rng.NextDouble() * 2) - 1) * scale;
        }
    }

    public void Dispose()
    {
        foreach (var t in owned)
        {
            t.Buffer!.Dispose();
        }
    }

    private Tensor Make(DType dtype, params long[] dims)
    {
        var t = backend.AllocateTensor(dtype, dims);
        owned.Add(t);
        return t;
    }
}
