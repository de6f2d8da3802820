using System.Buffers;
using System.Buffers.Binary;
using System.Text.Json;
using System.Text.Json.Nodes;
using Engine.Core;
using Engine.Core.IO;
using Parquet;
using Parquet.Meta;

namespace Engine.Training.Data;

/// <summary>
/// Streams typed examples from a Parquet file, one row group at a time: the columns follow the JSONL field conventions
/// (text, prompt/completion, messages as a list of {role, content} structs, prompt/chosen/rejected as strings or
/// message lists, responses/ranking), other columns land in <see cref="Example.Columns"/>, and each row is parsed by the
/// same code as a JSONL line. The footer and every row group's announced sizes are checked before anything is read, so
/// memory is bounded by <see cref="DatasetOptions.MaxRowGroupBytes"/>, not by the file. Faults name the file, the row
/// group and the column (<see cref="InputException"/>); a bad row names its row number where JSONL names a line.
/// </summary>
public sealed class ParquetDatasetReader : IDisposable
{
    private const int MagicLength = 4;

    private readonly FileStream stream;
    private readonly DatasetOptions options;
    private readonly ExampleParser parser;
    private readonly ArrayBufferWriter<byte> json = new();
    private Dictionary<string, string> names = [];
    private bool started;

    /// <summary>Opens <paramref name="path"/>; errors name it as given.</summary>
    public ParquetDatasetReader(string path, DatasetOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(path);
        this.options = options ?? new DatasetOptions();
        SourceName = path;
        parser = new ExampleParser(path, this.options);
        Format = this.options.Format;
        stream = InputFiles.OpenRead(path, "the dataset", FileOptions.RandomAccess);
    }

    /// <summary>The name errors use.</summary>
    public string SourceName { get; }

    /// <summary>The format: as given, or once the first valid row has been read, the one detected.</summary>
    public DatasetFormat Format { get; private set; }

    /// <summary>Rows read so far.</summary>
    public long RowsRead { get; private set; }

    /// <summary>Examples returned so far.</summary>
    public long ExamplesRead { get; private set; }

    /// <summary>Rows skipped as malformed (only with <see cref="DatasetOptions.SkipBadLines"/>).</summary>
    public long SkippedRows { get; private set; }

    /// <summary>Reads every example in a file.</summary>
    public static IEnumerable<Example> ReadAll(string path, DatasetOptions? options = null)
    {
        using var reader = new ParquetDatasetReader(path, options);
        foreach (var example in reader.Examples())
        {
            yield return example;
        }
    }

    /// <summary>The examples, in file order; one row group in memory at a time.</summary>
    /// <exception cref="InputException">The file is not Parquet, its metadata is damaged or too large, or a column cannot be read.</exception>
    /// <exception cref="DatasetException">A row does not make an example, unless <see cref="DatasetOptions.SkipBadLines"/> is set.</exception>
    public IEnumerable<Example> Examples()
    {
        if (started)
        {
            throw new InvalidOperationException("a ParquetDatasetReader is a single pass over its file; open a new one to read again");
        }

        started = true;
        CheckFooter();
        var reader = Open();
        var columns = ParquetRowAssembler.Columns(reader.Schema, SourceName, options.MaxJsonDepth);
        names = columns.ToDictionary(c => string.Join('.', c.Leaf.Path.ToList()), c => c.Name, StringComparer.Ordinal);
        CheckRowGroups(reader.Metadata ?? throw new InputException(SourceName, null, null, "the file has no metadata"));
        for (int group = 0; group < reader.RowGroupCount; group++)
        {
            CheckPages(reader.Metadata.RowGroups[group], group);
            var rows = ParquetRowAssembler.Read(reader, group, columns, SourceName);
            for (int i = 0; i < rows.Length; i++)
            {
                RowsRead++;
                Example example;
                try
                {
                    example = Parse(rows[i], group);
                }
                catch (DatasetException e) when (options.SkipBadLines)
                {
                    SkippedRows++;
                    options.OnSkippedLine?.Invoke(e);
                    continue;
                }
                finally
                {
                    rows[i] = null!;
                }

                ExamplesRead++;
                yield return example;
            }
        }
    }

    /// <inheritdoc/>
    public void Dispose() => stream.Dispose();

    private Example Parse(JsonObject row, int group)
    {
        json.ResetWrittenCount();
        using (var writer = new Utf8JsonWriter(json))
        {
            row.WriteTo(writer);
        }

        using var doc = JsonDocument.Parse(json.WrittenMemory, new JsonDocumentOptions { MaxDepth = options.MaxJsonDepth });
        var format = Format;
        try
        {
            var example = parser.ParseRecord(doc.RootElement, ref format, RowsRead);
            Format = format;
            return example;
        }
        catch (DatasetException e) when (e.Detail is not null)
        {
            throw new DatasetException(SourceName, RowsRead, e.Field, $"{e.Detail} (row {RowsRead}, row group {group})", e);
        }
    }

    // The footer is the file's last 8 bytes: the metadata length and the magic "PAR1". Checked before Parquet.Net reads
    // it, so a hostile length never sizes an allocation, and so are the counts inside the metadata, which Parquet.Net
    // sizes its lists from.
    private void CheckFooter()
    {
        long length = stream.Length;
        if (length < 3 * MagicLength)
        {
            throw new InputException(SourceName, null, null, $"not a Parquet file: {length} bytes is too short");
        }

        var head = new byte[MagicLength];
        var tail = new byte[2 * MagicLength];
        InputFiles.Guard(SourceName, "the dataset", () =>
        {
            stream.Position = 0;
            stream.ReadExactly(head);
            stream.Position = length - tail.Length;
            stream.ReadExactly(tail);
            return 0;
        });
        if (tail.AsSpan(MagicLength).SequenceEqual("PARE"u8))
        {
            throw new InputException(SourceName, null, null, "the file is encrypted (PARE); Engine reads plain Parquet files");
        }

        if (!head.AsSpan().SequenceEqual("PAR1"u8) || !tail.AsSpan(MagicLength).SequenceEqual("PAR1"u8))
        {
            throw new InputException(SourceName, null, null, "not a Parquet file (it does not start and end with PAR1)");
        }

        uint metadata = BinaryPrimitives.ReadUInt32LittleEndian(tail);
        if (metadata > length - 3 * MagicLength)
        {
            throw new InputException(SourceName, null, null, $"the footer says the metadata is {metadata:N0} bytes, more than the file holds ({length:N0})");
        }

        if (metadata > options.MaxParquetMetadataBytes)
        {
            throw new InputException(SourceName, null, null, $"the metadata is {metadata:N0} bytes, over the limit of {options.MaxParquetMetadataBytes:N0}");
        }

        var footer = new byte[metadata];
        InputFiles.Guard(SourceName, "the dataset", () =>
        {
            stream.Position = length - tail.Length - metadata;
            stream.ReadExactly(footer);
            return 0;
        });
        if (ThriftCompactBounds.Check(footer) is string fault)
        {
            throw new InputException(SourceName, null, null, $"the Parquet metadata is damaged: {fault}");
        }
    }

    private ParquetReader Open()
    {
        try
        {
            return ParquetReader.CreateAsync(stream, new ParquetOptions(), leaveStreamOpen: true).GetAwaiter().GetResult();
        }
        catch (Exception e) when (e is not InputException and not OutOfMemoryException)
        {
            throw new InputException(SourceName, null, null, $"the Parquet metadata cannot be read: {e.Message}", e);
        }
    }

    // Every row group's column chunks must lie inside the file, and what decoding it takes (the uncompressed data plus
    // the value and level buffers) must fit the limit, before any row group is read.
    private void CheckRowGroups(FileMetaData metadata)
    {
        long length = stream.Length;
        for (int g = 0; g < metadata.RowGroups.Count; g++)
        {
            var group = metadata.RowGroups[g];
            long bytes = 0;
            foreach (var chunk in group.Columns)
            {
                var column = chunk.MetaData;
                string name = column is null ? "(unnamed)" : NameOf(column);
                if (column is null)
                {
                    throw new InputException(SourceName, null, null, $"row group {g}: a column chunk has no metadata");
                }

                long start = column.DictionaryPageOffset is long d && d > 0 ? Math.Min(d, column.DataPageOffset) : column.DataPageOffset;
                if (column.NumValues < group.NumRows || column.NumValues > int.MaxValue || column.TotalUncompressedSize < 0
                    || column.TotalCompressedSize < 0 || start < MagicLength || start > length - column.TotalCompressedSize)
                {
                    throw new InputException(
                        SourceName, null, name,
                        $"row group {g}: the metadata is damaged ({column.NumValues} values for {group.NumRows} rows, {column.TotalCompressedSize} bytes at offset {start} of a {length}-byte file)");
                }

                bytes = SaturatingAdd(bytes, SaturatingAdd(column.TotalUncompressedSize, column.NumValues * ParquetRowAssembler.BufferBytesPerValue));
            }

            if (bytes > options.MaxRowGroupBytes)
            {
                throw new InputException(
                    SourceName, null, null,
                    $"row group {g} takes {bytes:N0} bytes to decode, over the limit of {options.MaxRowGroupBytes:N0}; write the file with smaller row groups or raise DatasetOptions.MaxRowGroupBytes");
            }
        }
    }

    // The pages of each column chunk of a row group, header by header, before Parquet.Net reads them: it sizes its
    // buffers from each header's page sizes, so each page must lie inside its chunk and decompress to at most the limit.
    private void CheckPages(RowGroup group, int index)
    {
        foreach (var chunk in group.Columns)
        {
            var column = chunk.MetaData!;
            string name = NameOf(column);
            long position = column.DictionaryPageOffset is long d && d > 0 ? Math.Min(d, column.DataPageOffset) : column.DataPageOffset;
            long end = position + column.TotalCompressedSize;
            while (position < end)
            {
                var (headerLength, uncompressed, compressed) = PageHeader(position, end, index, name);
                if (compressed < 0 || compressed > end - position - headerLength || uncompressed < 0 || uncompressed > options.MaxRowGroupBytes)
                {
                    throw new InputException(
                        SourceName, null, name,
                        $"row group {index}: a page at offset {position} claims {compressed:N0} bytes that decompress to {uncompressed:N0}, which do not fit its column chunk or the limit");
                }

                position += headerLength + compressed;
            }
        }
    }

    private (int Length, long Uncompressed, long Compressed) PageHeader(long position, long end, int index, string column)
    {
        // Headers are tens of bytes (more with statistics): read a little, and more only when it was not enough.
        for (int size = 4096; ; size *= 16)
        {
            int available = (int)Math.Min(size, end - position);
            var bytes = new byte[available];
            InputFiles.Guard(SourceName, "the dataset", () =>
            {
                stream.Position = position;
                stream.ReadExactly(bytes);
                return 0;
            });
            string? fault = ThriftCompactBounds.ReadPageHeader(bytes, out int length, out long uncompressed, out long compressed);
            if (fault is null)
            {
                return (length, uncompressed, compressed);
            }

            if (available < size || size >= 1 << 20)
            {
                throw new InputException(SourceName, null, column, $"row group {index}: the page header at offset {position} is damaged: {fault}");
            }
        }
    }

    // A column as users know it (messages[].content), from its path in the file (messages.list.element.content).
    private string NameOf(ColumnMetaData column)
    {
        string path = string.Join('.', column.PathInSchema);
        return names.TryGetValue(path, out string? name) ? name : path;
    }

    private static long SaturatingAdd(long a, long b) => a > long.MaxValue - b ? long.MaxValue : a + b;
}
