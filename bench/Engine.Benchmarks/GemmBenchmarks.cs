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
        public Config() => AddColumn(new GflopsColumn());
    }

    /// <summary>2·M·N·K over the mean time of the shape's benchmark.</summary>
    private sealed class GflopsColumn : IColumn
    {
        public string Id => nameof(GflopsColumn);

        public string ColumnName => "GFLOP/s";

        public bool AlwaysShow => true;

        public ColumnCategory Category => ColumnCategory.Custom;

        public int PriorityInCategory => 0;

        public bool IsNumeric => true;

        public UnitType UnitType => UnitType.Dimensionless;

        public string Legend => "Billions of floating-point operations per second (2·M·N·K / mean time)";

        public string GetValue(Summary summary, BenchmarkCase benchmarkCase) => GetValue(summary, benchmarkCase, SummaryStyle.Default);

        public string GetValue(Summary summary, BenchmarkCase benchmarkCase, SummaryStyle style)
        {
            var stats = summary[benchmarkCase]?.ResultStatistics;
            if (stats is null || benchmarkCase.Parameters[nameof(Shape)] is not GemmCase shape)
            {
                return "-";
            }

            return (shape.Flops / stats.Mean).ToString("F1", System.Globalization.CultureInfo.InvariantCulture);
        }

        public bool IsDefault(Summary summary, BenchmarkCase benchmarkCase) => false;

        public bool IsAvailable(Summary summary) => true;
    }
}
