using Engine.Core;

namespace Engine.Training.Data;

/// <summary>
/// Where a dataset comes from, by its path: a directory of Parquet shards (<c>*.parquet</c>, read in name order, as the
/// Hugging Face Hub stores datasets), a <c>.parquet</c> file, or otherwise a JSONL file. All three give the same
/// examples for the same rows.
/// </summary>
public static class DatasetFiles
{
    /// <summary>The extension of Parquet files.</summary>
    public const string ParquetExtension = ".parquet";

    /// <summary>Whether <paramref name="path"/> is read as Parquet (a <c>.parquet</c> file or a directory of them) rather than JSONL.</summary>
    public static bool IsParquet(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        return Directory.Exists(path) || path.EndsWith(ParquetExtension, StringComparison.OrdinalIgnoreCase);
    }

    /// <summary>The Parquet files of a dataset directory, in ordinal name order.</summary>
    /// <exception cref="InputException">The directory holds no <c>.parquet</c> file.</exception>
    public static IReadOnlyList<string> Shards(string directory)
    {
        ArgumentNullException.ThrowIfNull(directory);
        var shards = Directory.EnumerateFiles(directory, "*" + ParquetExtension).Order(StringComparer.Ordinal).ToList();
        return shards.Count > 0
            ? shards
            : throw new InputException(directory, null, null, "no .parquet files in this directory (a dataset directory holds Parquet shards)");
    }

    /// <summary>
    /// Every example of the dataset at <paramref name="path"/>, streamed. The format of a directory's shards is the one
    /// the first shard's first row decides (or <see cref="DatasetOptions.Format"/>), so every shard is read alike.
    /// </summary>
    public static IEnumerable<Example> ReadAll(string path, DatasetOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(path);
        options ??= new DatasetOptions();
        if (!Directory.Exists(path))
        {
            return IsParquet(path) ? ParquetDatasetReader.ReadAll(path, options) : JsonlReader.ReadAll(path, options);
        }

        return ReadShards(Shards(path), options);
    }

    private static IEnumerable<Example> ReadShards(IReadOnlyList<string> shards, DatasetOptions options)
    {
        foreach (string shard in shards)
        {
            using var reader = new ParquetDatasetReader(shard, options);
            foreach (var example in reader.Examples())
            {
                yield return example;
            }

            options = options with { Format = reader.Format };
        }
    }
}
