using System.Buffers;
using System.Text;
using System.Text.Json;
using Engine.Core.IO;

namespace Engine.Training.Data;

/// <summary>
/// Streams typed examples from a JSONL file, one line at a time: memory is bounded by the longest line accepted
/// (<see cref="DatasetOptions.MaxLineBytes"/>), not by the file. Lines must be valid UTF-8 (a leading BOM is skipped),
/// blank lines are ignored, and every fault names the file, the line and the field.
/// </summary>
public sealed class JsonlReader : IDisposable
{
    private const int ChunkBytes = 1 << 16;

    private readonly Stream stream;
    private readonly bool leaveOpen;
    private readonly DatasetOptions options;
    private readonly ExampleParser parser;
    private readonly byte[] chunk = new byte[ChunkBytes];
    private byte[] line = new byte[4096];
    private int chunkStart;
    private int chunkEnd;
    private bool endOfStream;
    private bool started;

    /// <summary>Opens <paramref name="path"/>; errors name it as given.</summary>
    public JsonlReader(string path, DatasetOptions? options = null)
        : this(InputFiles.OpenRead(path, "the dataset", FileOptions.SequentialScan), path, options, leaveOpen: false)
    {
    }

    /// <summary>Reads from <paramref name="stream"/>; <paramref name="sourceName"/> names it in errors.</summary>
    public JsonlReader(Stream stream, string sourceName, DatasetOptions? options = null, bool leaveOpen = false)
    {
        ArgumentNullException.ThrowIfNull(stream);
        ArgumentNullException.ThrowIfNull(sourceName);
        this.stream = stream;
        this.leaveOpen = leaveOpen;
        this.options = options ?? new DatasetOptions();
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(this.options.MaxLineBytes);
        SourceName = sourceName;
        parser = new ExampleParser(sourceName, this.options);
        Format = this.options.Format;
    }

    /// <summary>The name errors use.</summary>
    public string SourceName { get; }

    /// <summary>The format: as given, or once the first valid line has been read, the one detected.</summary>
    public DatasetFormat Format { get; private set; }

    /// <summary>Lines read so far (blank ones included).</summary>
    public long LinesRead { get; private set; }

    /// <summary>Examples returned so far.</summary>
    public long ExamplesRead { get; private set; }

    /// <summary>Lines skipped as malformed (only with <see cref="DatasetOptions.SkipBadLines"/>).</summary>
    public long SkippedLines { get; private set; }

    /// <summary>Reads every example in a file.</summary>
    public static IEnumerable<Example> ReadAll(string path, DatasetOptions? options = null)
    {
        using var reader = new JsonlReader(path, options);
        foreach (var example in reader.Examples())
        {
            yield return example;
        }
    }

    /// <summary>The examples, in file order; a single pass over the stream.</summary>
    /// <exception cref="DatasetException">A malformed line, unless <see cref="DatasetOptions.SkipBadLines"/> is set.</exception>
    public IEnumerable<Example> Examples()
    {
        if (started)
        {
            throw new InvalidOperationException("a JsonlReader is a single pass over its stream; open a new one to read again");
        }

        started = true;
        while (true)
        {
            var status = ReadLine(out int length);
            if (status == LineStatus.End)
            {
                yield break;
            }

            LinesRead++;
            Example? example;
            try
            {
                if (status == LineStatus.TooLong)
                {
                    throw new DatasetException(SourceName, LinesRead, null, $"line is longer than the limit of {options.MaxLineBytes} bytes");
                }

                example = Parse(line.AsMemory(0, length));
            }
            catch (DatasetException e) when (options.SkipBadLines)
            {
                if (status == LineStatus.TooLong)
                {
                    SkipRestOfLine();
                }

                SkippedLines++;
                options.OnSkippedLine?.Invoke(e);
                continue;
            }

            if (example is not null)
            {
                ExamplesRead++;
                yield return example;
            }
        }
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        if (!leaveOpen)
        {
            stream.Dispose();
        }
    }

    private Example? Parse(ReadOnlyMemory<byte> bytes)
    {
        var span = bytes.Span;
        if (LinesRead == 1 && span.StartsWith("\uFEFF"u8))
        {
            bytes = bytes[3..];
            span = bytes.Span;
        }

        if (span.TrimEnd("\r"u8).Trim(" \t"u8).IsEmpty)
        {
            return null;
        }

        int invalid = FirstInvalidUtf8(span);
        if (invalid >= 0)
        {
            throw new DatasetException(SourceName, LinesRead, null, $"invalid UTF-8 at byte {invalid + 1} of the line");
        }

        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(bytes, new JsonDocumentOptions { MaxDepth = options.MaxJsonDepth });
        }
        catch (JsonException e)
        {
            string reason = e.Message;
            int cut = reason.IndexOf(" LineNumber:", StringComparison.Ordinal);
            reason = cut > 0 ? reason[..cut] : reason;
            throw new DatasetException(SourceName, LinesRead, null, $"not valid JSON (byte {e.BytePositionInLine + 1}): {reason}", e);
        }

        using (doc)
        {
            var format = Format;
            var example = parser.ParseRecord(doc.RootElement, ref format, LinesRead);
            Format = format;
            return example;
        }
    }

    private static int FirstInvalidUtf8(ReadOnlySpan<byte> span)
    {
        if (System.Text.Unicode.Utf8.IsValid(span))
        {
            return -1;
        }

        int i = 0;
        while (i < span.Length)
        {
            if (Rune.DecodeFromUtf8(span[i..], out _, out int consumed) != OperationStatus.Done)
            {
                return i;
            }

            i += consumed;
        }

        return -1;
    }

    private enum LineStatus
    {
        Line,
        TooLong,
        End,
    }

    // Copies the next line (without its '\n') into `line`. Stops as soon as the line passes the limit, so a huge line
    // costs at most MaxLineBytes of memory and that much reading before the error.
    private LineStatus ReadLine(out int length)
    {
        length = 0;
        bool any = false;
        while (true)
        {
            if (chunkStart == chunkEnd && !Refill())
            {
                return any ? LineStatus.Line : LineStatus.End;
            }

            any = true;
            var available = chunk.AsSpan(chunkStart, chunkEnd - chunkStart);
            int newline = available.IndexOf((byte)'\n');
            int take = newline >= 0 ? newline : available.Length;
            if ((long)length + take > options.MaxLineBytes)
            {
                chunkStart += Math.Min(take, options.MaxLineBytes - length);
                return LineStatus.TooLong;
            }

            if (length + take > line.Length)
            {
                Array.Resize(ref line, (int)Math.Min(Math.Max((long)line.Length * 2, length + take), options.MaxLineBytes));
            }

            available[..take].CopyTo(line.AsSpan(length));
            length += take;
            chunkStart += newline >= 0 ? take + 1 : take;
            if (newline >= 0)
            {
                return LineStatus.Line;
            }
        }
    }

    private void SkipRestOfLine()
    {
        while (chunkStart < chunkEnd || Refill())
        {
            int newline = chunk.AsSpan(chunkStart, chunkEnd - chunkStart).IndexOf((byte)'\n');
            if (newline >= 0)
            {
                chunkStart += newline + 1;
                return;
            }

            chunkStart = chunkEnd;
        }
    }

    private bool Refill()
    {
        if (endOfStream)
        {
            return false;
        }

        chunkStart = 0;
        chunkEnd = stream.Read(chunk, 0, chunk.Length);
        endOfStream = chunkEnd == 0;
        return !endOfStream;
    }
}
