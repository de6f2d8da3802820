using System.Buffers;
using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Text.Encodings.Web;
using System.Text.Json;

namespace Engine.Models.Formats;

/// <summary>
/// Collects named F32, BF16, F16 and I32 tensors plus string metadata and writes them as one safetensors file.
/// <see cref="Save"/> writes a temporary file beside the target and renames it over the target, so a crash leaves
/// either the old file or the complete new one, never a truncated one.
/// </summary>
public sealed class SafetensorsWriter
{
    private readonly List<Entry> entries = [];
    private readonly HashSet<string> names = new(StringComparer.Ordinal);

    /// <summary>The <c>__metadata__</c> map written into the header.</summary>
    public IDictionary<string, string> Metadata { get; } = new Dictionary<string, string>(StringComparer.Ordinal);

    /// <summary>Number of tensors added.</summary>
    public int Count => entries.Count;

    /// <summary>Adds a float32 tensor; the data is copied.</summary>
    public void AddF32(string name, ReadOnlySpan<float> data, params ReadOnlySpan<long> shape) =>
        Add(name, SafetensorsDType.F32, shape, data.Length, MemoryMarshal.AsBytes(data).ToArray());

    /// <summary>Adds a tensor stored as bfloat16, rounding <paramref name="data"/> to nearest even.</summary>
    public void AddBf16(string name, ReadOnlySpan<float> data, params ReadOnlySpan<long> shape)
    {
        var bits = new ushort[data.Length];
        Bf16.FromSingle(data, bits);
        Add(name, SafetensorsDType.BF16, shape, data.Length, MemoryMarshal.AsBytes(bits.AsSpan()).ToArray());
    }

    /// <summary>Adds a tensor stored as IEEE half precision, rounding <paramref name="data"/> to nearest even.</summary>
    public void AddF16(string name, ReadOnlySpan<float> data, params ReadOnlySpan<long> shape)
    {
        var halves = new Half[data.Length];
        System.Numerics.Tensors.TensorPrimitives.ConvertToHalf(data, halves);
        Add(name, SafetensorsDType.F16, shape, data.Length, MemoryMarshal.AsBytes(halves.AsSpan()).ToArray());
    }

    /// <summary>Adds a tensor of bfloat16 bit patterns as they are.</summary>
    public void AddBf16Bits(string name, ReadOnlySpan<ushort> bits, params ReadOnlySpan<long> shape) =>
        Add(name, SafetensorsDType.BF16, shape, bits.Length, MemoryMarshal.AsBytes(bits).ToArray());

    /// <summary>Adds an int32 tensor; the data is copied.</summary>
    public void AddI32(string name, ReadOnlySpan<int> data, params ReadOnlySpan<long> shape) =>
        Add(name, SafetensorsDType.I32, shape, data.Length, MemoryMarshal.AsBytes(data).ToArray());

    /// <summary>Writes the file, replacing <paramref name="path"/> atomically.</summary>
    public void Save(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);

        // Larger elements first (stable within a size), as the reference writer does, so every tensor's data starts
        // at a multiple of its element size once the header is padded to 8 bytes.
        List<Entry> ordered = [.. entries.OrderByDescending(static e => e.DType.SizeOf())];
        byte[] header = Header(ordered);

        string full = System.IO.Path.GetFullPath(path);
        string temp = $"{full}.{Guid.NewGuid():N}.tmp";
        try
        {
            using (var stream = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 16))
            {
                Span<byte> prefix = stackalloc byte[8];
                BinaryPrimitives.WriteUInt64LittleEndian(prefix, (ulong)header.Length);
                stream.Write(prefix);
                stream.Write(header);
                foreach (Entry e in ordered)
                {
                    stream.Write(e.Data);
                }

                stream.Flush(flushToDisk: true);
            }

            File.Move(temp, full, overwrite: true);
        }
        catch
        {
            File.Delete(temp);
            throw;
        }
    }

    private void Add(string name, SafetensorsDType dtype, ReadOnlySpan<long> shape, int length, byte[] data)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        if (name == SafetensorsHeader.MetadataKey)
        {
            throw new ArgumentException($"'{name}' is reserved for the metadata map", nameof(name));
        }

        long elements = 1;
        foreach (long d in shape)
        {
            ArgumentOutOfRangeException.ThrowIfNegative(d, nameof(shape));
            elements = checked(elements * d);
        }

        if (elements != length)
        {
            throw new ArgumentException($"tensor '{name}': shape [{string.Join(", ", shape.ToArray())}] has {elements} elements, data {length}", nameof(shape));
        }

        if (!names.Add(name))
        {
            throw new ArgumentException($"tensor '{name}' was already added", nameof(name));
        }

        entries.Add(new Entry(name, dtype, shape.ToArray(), data));
    }

    private byte[] Header(List<Entry> ordered)
    {
        var buffer = new ArrayBufferWriter<byte>();
        var options = new JsonWriterOptions { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };
        using (var json = new Utf8JsonWriter(buffer, options))
        {
            json.WriteStartObject();
            if (Metadata.Count > 0)
            {
                json.WriteStartObject(SafetensorsHeader.MetadataKey);
                foreach ((string key, string value) in Metadata)
                {
                    json.WriteString(key, value);
                }

                json.WriteEndObject();
            }

            long offset = 0;
            foreach (Entry e in ordered)
            {
                json.WriteStartObject(e.Name);
                json.WriteString("dtype", e.DType.HeaderName());
                json.WriteStartArray("shape");
                foreach (long d in e.Shape)
                {
                    json.WriteNumberValue(d);
                }

                json.WriteEndArray();
                json.WriteStartArray("data_offsets");
                json.WriteNumberValue(offset);
                offset += e.Data.Length;
                json.WriteNumberValue(offset);
                json.WriteEndArray();
                json.WriteEndObject();
            }

            json.WriteEndObject();
        }

        int padded = (buffer.WrittenCount + 7) / 8 * 8;
        var header = new byte[padded];
        buffer.WrittenSpan.CopyTo(header);
        header.AsSpan(buffer.WrittenCount).Fill((byte)' ');
        return header;
    }

    private sealed record Entry(string Name, SafetensorsDType DType, long[] Shape, byte[] Data);
}
