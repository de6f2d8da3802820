using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Columns;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Reports;
using BenchmarkDotNet.Running;
using Engine.Core.Backends;
using Engine.Core.Cpu;
using Engine.Core.Tensors;

namespace Engine.Benchmarks;

/// <summary>One attention problem: batch, time, heads, kv heads, head size.</summary>
public sealed record AttentionCase(int B, int T, int NH, int NKV, int HS)
{
    /// <summary>Causal (query, key) pairs over all batch rows and heads.</summary>
    public double Pairs => (double)B * NH * T * (T + 1) / 2;

    /// <summary>Forward FLOPs: q·k and p·v, 2·HS each per pair.</summary>
    public double ForwardFlops => Pairs * 4 * HS;

    /// <summary>Backward FLOPs: q·k, dout·v, dq, dk and dv, 2·HS each per pair.</summary>
    public double BackwardFlops => Pairs * 10 * HS;

    public override string ToString() => $"B{B} T{T} NH{NH}/{NKV} HS{HS}";
}

/// <summary>Causal attention forward and backward on the CPU backend (all cores), with a GFLOP/s column.</summary>
[MemoryDiagnoser]
[Config(typeof(AttentionConfig))]
public class AttentionBenchmarks : IDisposable
{
    private CpuBackend backend = null!;
    private Tensor qkv, output, lse, qkvGrad, outputGrad;

    public static IEnumerable<AttentionCase> Cases =>
    [
        new(4, 64, 12, 12, 64),
        new(4, 256, 12, 12, 64),
        new(4, 256, 6, 2, 64),
    ];

    [ParamsSource(nameof(Cases))]
    public AttentionCase Case { get; set; } = null!;

    private AttentionShape Shape => new(Case.NH, Case.NKV, Case.HS);

    [GlobalSetup]
    public void Setup()
    {
        backend = new CpuBackend();
        var rng = new Random(1);
        qkv = Random(rng, Case.B, Case.T, Shape.QkvChannels);
        outputGrad = Random(rng, Case.B, Case.T, Shape.OutChannels);
        output = backend.AllocateTensor(DType.F32, Case.B, Case.T, Shape.OutChannels);
        lse = backend.AllocateTensor(DType.F32, Case.B, Case.NH, Case.T);
        qkvGrad = backend.AllocateTensor(DType.F32, Case.B, Case.T, Shape.QkvChannels);
        backend.AttentionForward(output, lse, qkv, Shape);
    }

    [Benchmark]
    public void Forward() => backend.AttentionForward(output, lse, qkv, Shape);

    [Benchmark]
    public void Backward() => backend.AttentionBackward(qkvGrad, outputGrad, qkv, output, lse, Shape);

    [GlobalCleanup]
    public void Dispose()
    {
        foreach (var t in new[] { qkv, output, lse, qkvGrad, outputGrad })
        {
            t.Buffer?.Dispose();
        }

        backend?.Dispose();
        GC.SuppressFinalize(this);
    }

    private Tensor Random(Random rng, params long[] dims)
    {
        var t = backend.AllocateTensor(DType.F32, dims);
        var data = new float[t.ElementCount];
        for (int i = 0; i < data.Length; i++)
        {
            data[i] = (float)((rng.NextDouble() * 2) - 1);
        }

        backend.CopyFromHost<float>(t, data);
        return t;
    }

    private sealed class AttentionConfig : ManualConfig
    {
        public AttentionConfig() => AddColumn(new RateColumn(
            "GFLOP/s",
            "Useful floating-point operations per second (causal pairs only)",
            b => b.Parameters["Case"] is AttentionCase c
                ? (b.Descriptor.WorkloadMethod.Name == nameof(Forward) ? c.ForwardFlops : c.BackwardFlops)
                : null));
    }
}
