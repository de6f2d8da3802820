namespace Engine.Training.Data;

/// <summary>How a dataset (JSONL or Parquet) is read. One record with its defaults, shared by the library and the CLI.</summary>
public sealed record DatasetOptions
{
    /// <summary>Longest line accepted by default, in bytes (64 MiB).</summary>
    public const int DefaultMaxLineBytes = 64 << 20;

    /// <summary>The layout, or <see cref="DatasetFormat.Auto"/> to decide from the first valid line.</summary>
    public DatasetFormat Format { get; init; } = DatasetFormat.Auto;

    /// <summary>
    /// Field names as they appear in the file, keyed by the conventional name, e.g. <c>{"chosen": "good"}</c>.
    /// Conventional names: text, prompt, completion, instruction, input, output, messages, chosen, rejected, margin,
    /// responses, ranking, label, tools.
    /// </summary>
    public IReadOnlyDictionary<string, string>? FieldNames { get; init; }

    /// <summary>Skip malformed lines (counted, reported through <see cref="OnSkippedLine"/>) instead of stopping at the first.</summary>
    public bool SkipBadLines { get; init; }

    /// <summary>Called with each skipped line's error when <see cref="SkipBadLines"/> is set.</summary>
    public Action<DatasetException>? OnSkippedLine { get; init; }

    /// <summary>Longest line accepted, in bytes; a longer one is an error found before more than this much is buffered.</summary>
    public int MaxLineBytes { get; init; } = DefaultMaxLineBytes;

    /// <summary>Deepest JSON nesting accepted (a message list is 3 levels; anything near this is hostile).</summary>
    public int MaxJsonDepth { get; init; } = 64;

    /// <summary>
    /// Most responses one ranking may hold (InstructGPT ranks 4 to 9). A ranking of K responses trains on all
    /// K(K-1)/2 pairs, so K is capped where that count stops being a dataset and becomes a memory bomb (32: 496 pairs).
    /// </summary>
    public int MaxRankingResponses { get; init; } = 32;

    /// <summary>Most messages one conversation (or one field holding messages) may hold.</summary>
    public int MaxMessages { get; init; } = 4096;

    /// <summary>Largest Parquet footer (the file's metadata) read, in bytes; a real one is kilobytes to a few megabytes.</summary>
    public int MaxParquetMetadataBytes { get; init; } = 64 << 20;

    /// <summary>
    /// Most memory one Parquet row group may take to decode, in bytes, as its metadata announces it (the uncompressed
    /// size of its columns plus 24 bytes per value for the value and level buffers), checked before any of it is read.
    /// Row groups are read one at a time, so this bounds the memory a Parquet dataset takes while it streams.
    /// </summary>
    public long MaxRowGroupBytes { get; init; } = 512L << 20;
}
