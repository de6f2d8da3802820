using System.Globalization;
using BenchmarkDotNet.Columns;
using BenchmarkDotNet.Reports;
using BenchmarkDotNet.Running;

namespace Engine.Benchmarks;

/// <summary>
/// A column of work per second: the case's work per call (FLOPs or bytes, from <c>workPerCall</c>) divided by the mean
/// time in nanoseconds, which reads directly as GFLOP/s or GB/s. Cases whose work is unknown show "-".
/// </summary>
public sealed class RateColumn(string name, string legend, Func<BenchmarkCase, double?> workPerCall) : IColumn
{
    public string Id => nameof(RateColumn) + "." + ColumnName;

    public string ColumnName { get; } = name;

    public bool AlwaysShow => true;

    public ColumnCategory Category => ColumnCategory.Custom;

    public int PriorityInCategory => 0;

    public bool IsNumeric => true;

    public UnitType UnitType => UnitType.Dimensionless;

    public string Legend { get; } = legend;

    public string GetValue(Summary summary, BenchmarkCase benchmarkCase) => GetValue(summary, benchmarkCase, SummaryStyle.Default);

    public string GetValue(Summary summary, BenchmarkCase benchmarkCase, SummaryStyle style)
    {
        var stats = summary[benchmarkCase]?.ResultStatistics;
        double? work = workPerCall(benchmarkCase);
        return stats is null || stats.Mean <= 0 || work is null
            ? "-"
            : (work.Value / stats.Mean).ToString("F1", CultureInfo.InvariantCulture);
    }

    public bool IsDefault(Summary summary, BenchmarkCase benchmarkCase) => false;

    public bool IsAvailable(Summary summary) => true;
}
