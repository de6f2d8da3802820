using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Engines;
using BenchmarkDotNet.Jobs;
using BenchmarkDotNet.Toolchains.InProcess.Emit;
using Engine.Core.Cpu;
using Engine.Core.Tensors;

namespace Engine.Benchmarks;

/// <summary>
/// The fused token log-prob kernel at GPT-2 size (N = 2048 rows, V = 50257, C = 768) against the three GEMMs it contains
/// on the same shapes: logits = h·Wᵀ, dh = dz·W, dW = dzᵀ·h (the GEMMs read and write a materialised 412 MB [N,V]
/// tensor; the kernel never holds it). One call takes seconds on two cores, so the job (<see cref="ShortJob"/>) is one
/// in-process launch, one warm-up and three measured single invocations. The memory diagnoser shows the steady-state allocation (zero: the workspace is
/// kept by the backend); <see cref="LogProbProbe"/> prints the first-call extra memory.
/// Run: <c>dotnet run -c Release --project bench/Engine.Benchmarks -- --filter *LogProbBenchmarks*</c>.
/// </summary>
[MemoryDiagnoser]
[Config(typeof(ShortJob))]
public class LogProbBenchmarks
{
    private CpuBackend backend = null!;
    private LogProbSetup setup = null!;
    private Tensor logits;

    [GlobalSetup]
    public void Setup()
    {
        backend = new CpuBackend();
        setup = new LogProbSetup(backend, 2048, 50257, 768);
        logits = backend.AllocateTensor(DType.F32, setup.N, setup.V);
        LogProbSetup.Fill(logits.AsSpan<float>(), 9, 1e-4f);
    }

    /// <summary>TokenLogProbsForwardBackward: logp, entropy and KL forward, dh and dW backward, in one pass.</summary>
    [Benchmark]
    public void FusedForwardBackward() => setup.Fused();

    /// <summary>TokenLogProbsForward then TokenLogProbsBackward (the backward recomputes the logits: four GEMMs).</summary>
    [Benchmark]
    public void ForwardThenBackward() => setup.ForwardThenBackward();

    /// <summary>The three GEMMs in sequence: the baseline the fused kernel is compared to.</summary>
    [Benchmark(Baseline = true)]
    public void ThreeGemms()
    {
        LogitsGemm();
        InputGradGemm();
        WeightGradGemm();
    }

    /// <summary>logits[N,V] = h·Wᵀ.</summary>
    [Benchmark]
    public void LogitsGemm() => backend.Gemm(logits, setup.Hidden, setup.Weight, transposeA: false, transposeB: true);

    /// <summary>dh[N,C] += dz·W.</summary>
    [Benchmark]
    public void InputGradGemm() => backend.Gemm(setup.HiddenGrad, logits, setup.Weight, transposeA: false, transposeB: false, beta: 1f);

    /// <summary>dW[V,C] += dzᵀ·h.</summary>
    [Benchmark]
    public void WeightGradGemm() => backend.Gemm(setup.WeightGrad, logits, setup.Hidden, transposeA: true, transposeB: false, beta: 1f);

    [GlobalCleanup]
    public void Cleanup()
    {
        logits.Buffer!.Dispose();
        setup.Dispose();
        backend.Dispose();
    }

    /// <summary>
    /// In process (no generated project to build), monitoring strategy (no pilot stage), 1 warm-up + 3 measured
    /// iterations of one invocation each.
    /// </summary>
    private sealed class ShortJob : ManualConfig
    {
        public ShortJob() =>
            AddJob(Job.Default
                .WithToolchain(InProcessEmitToolchain.Instance)
                .WithStrategy(RunStrategy.Monitoring)
                .WithLaunchCount(1)
                .WithWarmupCount(1)
                .WithIterationCount(3)
                .WithInvocationCount(1)
                .WithUnrollFactor(1)
                .WithId("short"));
    }
}
