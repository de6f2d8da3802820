using System.Diagnostics;
using System.Globalization;
using Engine.Training.Data;
using Parquet;
using Parquet.Schema;

namespace Engine.Benchmarks;

/// <summary>
/// Streams a large Parquet dataset through <see cref="DatasetFiles.ReadAll"/> and reports rows, throughput and the
/// process's peak resident memory (VmHWM):
/// <c>dotnet run -c Release --project bench/Engine.Benchmarks -- parquet-write &lt;file&gt; [megabytes] [rows-per-group]</c>
/// writes prompt/chosen/rejected rows of incompressible text (snappy) until the file reaches the size (default 1024 MB,
/// 2000 rows of ~6 KB per row group); then, in a fresh process so the writer's memory is not counted,
/// <c>dotnet run -c Release --project bench/Engine.Benchmarks -- parquet-read &lt;file&gt;</c> reads every example.
/// </summary>
internal static class ParquetStreamProbe
{
    private const string Letters = "abcdefghijklmnopqrstuvwxyz      ";

    // Characters per value of prompt, chosen and rejected.
    private static readonly int[] Lengths = [1024, 2560, 2560];

    public static void Write(string[] args)
    {
        string path = args[0];
        long target = (args.Length > 1 ? long.Parse(args[1], CultureInfo.InvariantCulture) : 1024) << 20;
        int rowsPerGroup = args.Length > 2 ? int.Parse(args[2], CultureInfo.InvariantCulture) : 2000;
        var fields = new[] { new DataField<string>("prompt"), new DataField<string>("chosen"), new DataField<string>("rejected") };
        var random = new Random(1);
        var clock = Stopwatch.StartNew();
        long rows = 0;
        using (var file = File.Create(path))
        {
            var writer = ParquetWriter.CreateAsync(new ParquetSchema(fields), file).GetAwaiter().GetResult();
            while (file.Length < target)
            {
                using var group = writer.CreateRowGroup();
                foreach (var (field, length) in fields.Zip(Lengths))
                {
                    var values = new string[rowsPerGroup];
                    for (int i = 0; i < values.Length; i++)
                    {
                        values[i] = string.Create(length, random, static (span, r) =>
                        {
                            for (int j = 0; j < span.Length; j++)
                            {
                                span[j] = Letters[r.Next(Letters.Length)];
                            }
                        });
                    }

                    group.WriteAsync(field, values).GetAwaiter().GetResult();
                }

                rows += rowsPerGroup;
            }

            writer.DisposeAsync().AsTask().GetAwaiter().GetResult();
        }

        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"wrote {path}: {new FileInfo(path).Length / 1048576.0:F0} MiB, {rows} rows in groups of {rowsPerGroup}, {clock.Elapsed.TotalSeconds:F1} s"));
    }

    public static void Read(string[] args)
    {
        string path = args[0];
        var clock = Stopwatch.StartNew();
        long examples = 0, chars = 0;
        foreach (var example in DatasetFiles.ReadAll(path))
        {
            var pair = (PreferenceExample)example;
            chars += pair.Prompt.Text!.Length + pair.Chosen.Text!.Length + pair.Rejected.Text!.Length;
            examples++;
        }

        double seconds = clock.Elapsed.TotalSeconds;
        double mib = new FileInfo(path).Length / 1048576.0;
        Console.WriteLine(string.Create(
            CultureInfo.InvariantCulture,
            $"read {path}: {mib:F0} MiB, {examples} examples, {chars / 1e6:F0} M chars in {seconds:F1} s ({mib / seconds:F0} MiB/s); peak RSS {PeakResidentMiB():F0} MiB, GC heap now {GC.GetTotalMemory(false) / 1048576.0:F0} MiB, {GC.CollectionCount(2)} gen2 collections"));
    }

    // VmHWM: the most resident memory the process has held.
    private static double PeakResidentMiB() =>
        File.ReadLines("/proc/self/status").Where(l => l.StartsWith("VmHWM:", StringComparison.Ordinal))
            .Select(l => long.Parse(l.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture) / 1024.0).Single();
}
