using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Columns;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Reports;
using BenchmarkDotNet.Running;
using Engine.Core.Cpu;
using Engine.Core.Tensors;

namespace Engine.Benchmarks;

/// <summary>
/// Our SGEMM on the model shapes (forward and both backward products of every linear layer, see <see cref="GemmShapes"/>),
/// with a GFLOP/s column. <c>dotnet run -c Release --project bench/Engine.Benchmarks -- --filter *GemmBenchmarks*</c>.
/// </summary>
[MemoryDiagnoser]
[Config(typeof(Config))]
public class GemmBenchmarks
{
    private CpuBackend backend = null!;
    private Tensor a, b, c;

    /// <summary>The product to time.</summary>
    [ParamsSource(nameof(Shapes))]
    public GemmCase Shape { get; set; } = null!;

    /// <summary>Worker threads, the caller included.</summary>
    [Params(2)]
    public int Threads { get; set; }

    public static IEnumerable<GemmCase> Shapes => GemmShapes.All();

    [GlobalSetup]
    public void Setup()
    {
        backend = new CpuBackend(Threads);
        var g = Shape;
        a = backend.AllocateTensor(DType.F32, g.TransposeA ? [g.K, g.M] : [g.M, g.K]);
        b = backend.AllocateTensor(DType.F32, g.TransposeB ? [g.N, g.K] : [g.K, g.N]);
        c = backend.AllocateTensor(DType.F32, g.M, g.N);
        backend.Fill(a, 0.5f);
        backend.Fill(b, -0.25f);
    }

    [Benchmark]
    public void Sgemm() => backend.Gemm(c, a, b, Shape.TransposeA, Shape.TransposeB);

    [GlobalCleanup]
    public void Cleanup()
    {
        a.Buffer?.Dispose();
        b.Buffer?.Dispose();
        c.Buffer?.Dispose();
        backend.Dispose();
    }

    private sealed class Config : ManualConfig
    {
        public Config() => AddColumn(new RateColumn(
            "GFLOP/s", "2·M·N·K floating-point operations per second", b => b.Parameters[nameof(Shape)] is GemmCase shape ? shape.Flops : null));
    }
}
