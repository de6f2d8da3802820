using System.Buffers.Binary;
using System.IO.MemoryMappedFiles;
using System.Numerics;
using System.Numerics.Tensors;
using System.Runtime.InteropServices;
using Engine.Core.IO;

namespace Engine.Models.Formats;

/// <summary>
/// A safetensors file opened read-only through a memory map. <see cref="Open"/> validates the whole header as strictly
/// as the reference implementation before anything else happens, so every later read is within the file.
/// Format faults throw <see cref="SafetensorsException"/>; I/O faults (missing file, permissions) keep their own types.
/// </summary>
public sealed unsafe class SafetensorsFile : IDisposable
{
    /// <summary>Largest header the reference implementation accepts, in bytes.</summary>
    public const long MaxHeaderLength = 100_000_000;

    private const int LengthPrefix = 8;

    private readonly MemoryMappedFile map;
    private readonly MemoryMappedViewAccessor view;
    private readonly Dictionary<string, TensorInfo> byName;
    private byte* data;

    private SafetensorsFile(
        string path, long fileLength, long headerLength, MemoryMappedFile map, MemoryMappedViewAccessor view,
        List<TensorInfo> tensors, Dictionary<string, string> metadata)
    {
        Path = path;
        FileLength = fileLength;
        HeaderLength = headerLength;
        this.map = map;
        this.view = view;
        Tensors = tensors;
        Metadata = metadata;
        byName = new Dictionary<string, TensorInfo>(tensors.Count, StringComparer.Ordinal);
        var names = new string[tensors.Count];
        for (int i = 0; i < tensors.Count; i++)
        {
            byName.Add(tensors[i].Name, tensors[i]);
            names[i] = tensors[i].Name;
        }

        Names = names;
        byte* pointer = null;
        view.SafeMemoryMappedViewHandle.AcquirePointer(ref pointer);
        data = pointer + view.PointerOffset + LengthPrefix + headerLength;
    }

    /// <summary>The file's path as given to <see cref="Open"/>.</summary>
    public string Path { get; }

    /// <summary>Size of the file in bytes.</summary>
    public long FileLength { get; }

    /// <summary>Size of the JSON header in bytes (the 8-byte length prefix not included).</summary>
    public long HeaderLength { get; }

    /// <summary>Size of the data section in bytes.</summary>
    public long DataLength => FileLength - LengthPrefix - HeaderLength;

    /// <summary>Every tensor, in data-offset order.</summary>
    public IReadOnlyList<TensorInfo> Tensors { get; }

    /// <summary>Tensor names, in data-offset order.</summary>
    public IReadOnlyList<string> Names { get; }

    /// <summary>The header's <c>__metadata__</c> map (empty when absent).</summary>
    public IReadOnlyDictionary<string, string> Metadata { get; }

    /// <summary>Opens and validates <paramref name="path"/>.</summary>
    /// <exception cref="SafetensorsException">The file breaks the safetensors format.</exception>
    public static SafetensorsFile Open(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        if (!BitConverter.IsLittleEndian)
        {
            throw new PlatformNotSupportedException("safetensors data is little-endian; this reader needs a little-endian host");
        }

        var stream = InputFiles.OpenRead(path, "the safetensors file", FileOptions.RandomAccess);
        MemoryMappedFile? map = null;
        MemoryMappedViewAccessor? view = null;
        try
        {
            long fileLength = stream.Length;
            if (fileLength < LengthPrefix)
            {
                throw new SafetensorsException(
                    path, null, "header length", $"the file is {fileLength} bytes, too short for the 8-byte header length");
            }

            Span<byte> prefix = stackalloc byte[LengthPrefix];
            stream.ReadExactly(prefix);
            ulong n = BinaryPrimitives.ReadUInt64LittleEndian(prefix);
            if (n > MaxHeaderLength)
            {
                throw new SafetensorsException(path, null, "header length", $"{n} bytes exceeds the limit of {MaxHeaderLength}");
            }

            long headerLength = (long)n;
            if (LengthPrefix + headerLength > fileLength)
            {
                throw new SafetensorsException(
                    path, null, "header length", $"{headerLength} bytes do not fit a file of {fileLength} bytes");
            }

            // Sized only after the two checks above, so a hostile length never drives the allocation.
            var header = new byte[headerLength];
            stream.ReadExactly(header);
            long dataLength = fileLength - LengthPrefix - headerLength;
            (List<TensorInfo> tensors, Dictionary<string, string> metadata) = SafetensorsHeader.Parse(path, header, dataLength);

            map = MemoryMappedFile.CreateFromFile(stream, null, 0, MemoryMappedFileAccess.Read, HandleInheritability.None, leaveOpen: false);
            view = map.CreateViewAccessor(0, 0, MemoryMappedFileAccess.Read);
            return new SafetensorsFile(path, fileLength, headerLength, map, view, tensors, metadata);
        }
        catch
        {
            view?.Dispose();
            map?.Dispose();
            stream.Dispose();
            throw;
        }
    }

    /// <summary>Whether the file holds a tensor called <paramref name="name"/>.</summary>
    public bool Contains(string name) => byName.ContainsKey(name);

    /// <summary>The entry for <paramref name="name"/>, if present.</summary>
    public bool TryGetTensor(string name, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out TensorInfo? info) =>
        byName.TryGetValue(name, out info);

    /// <summary>The entry for <paramref name="name"/>.</summary>
    /// <exception cref="SafetensorsException">The file has no such tensor.</exception>
    public TensorInfo GetTensor(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        return byName.TryGetValue(name, out TensorInfo? info)
            ? info
            : throw new SafetensorsException(Path, name, "name", "no tensor of that name in the file");
    }

    /// <summary>
    /// Reads tensor <paramref name="name"/> as float32 into <paramref name="destination"/> (exactly its element count),
    /// converting from F32, BF16 (exact: a bit shift) or F16 (exact, via <see cref="Half"/>).
    /// </summary>
    /// <exception cref="SafetensorsException">No such tensor, or it is stored in another dtype.</exception>
    public void ReadF32(string name, Span<float> destination)
    {
        TensorInfo info = GetTensor(name);
        ReadOnlySpan<byte> bytes = Bytes(info, destination.Length);
        switch (info.DType)
        {
            case SafetensorsDType.F32:
                bytes.CopyTo(MemoryMarshal.AsBytes(destination));
                break;
            case SafetensorsDType.BF16:
                Bf16.ToSingle(MemoryMarshal.Cast<byte, ushort>(bytes), destination);
                break;
            case SafetensorsDType.F16:
                TensorPrimitives.ConvertToSingle(MemoryMarshal.Cast<byte, Half>(bytes), destination);
                break;
            default:
                throw new SafetensorsException(Path, name, "dtype", $"{info.DType.HeaderName()} cannot be read as float32 (F32, BF16, F16 can)");
        }
    }

    /// <summary>Reads tensor <paramref name="name"/> as a new float32 array.</summary>
    public float[] ReadF32(string name)
    {
        var result = new float[ElementCount(GetTensor(name))];
        ReadF32(name, result);
        return result;
    }

    /// <summary>Reads I32 tensor <paramref name="name"/> into <paramref name="destination"/> (exactly its element count).</summary>
    /// <exception cref="SafetensorsException">No such tensor, or it is not I32.</exception>
    public void ReadI32(string name, Span<int> destination)
    {
        TensorInfo info = GetTensor(name);
        ReadOnlySpan<byte> bytes = Bytes(info, destination.Length);
        if (info.DType != SafetensorsDType.I32)
        {
            throw new SafetensorsException(Path, name, "dtype", $"{info.DType.HeaderName()} cannot be read as int32 (only I32 can)");
        }

        bytes.CopyTo(MemoryMarshal.AsBytes(destination));
    }

    /// <summary>Reads I32 tensor <paramref name="name"/> as a new array.</summary>
    public int[] ReadI32(string name)
    {
        var result = new int[ElementCount(GetTensor(name))];
        ReadI32(name, result);
        return result;
    }

    /// <summary>Copies the stored bytes of tensor <paramref name="name"/>, whatever its dtype, into <paramref name="destination"/>.</summary>
    public void ReadBytes(string name, Span<byte> destination)
    {
        TensorInfo info = GetTensor(name);
        if (destination.Length != info.ByteLength)
        {
            throw new ArgumentException($"destination of {destination.Length} bytes does not match {info} ({info.ByteLength} bytes)", nameof(destination));
        }

        RawBytes(info).CopyTo(destination);
    }

    /// <summary>Unmaps the file.</summary>
    public void Dispose()
    {
        if (data != null)
        {
            data = null;
            view.SafeMemoryMappedViewHandle.ReleasePointer();
        }

        view.Dispose();
        map.Dispose();
    }

    private int ElementCount(TensorInfo info) =>
        info.ElementCount <= Array.MaxLength
            ? (int)info.ElementCount
            : throw new SafetensorsException(Path, info.Name, "shape", $"{info.ElementCount} elements do not fit one array");

    private ReadOnlySpan<byte> Bytes(TensorInfo info, int destinationLength)
    {
        if (destinationLength != info.ElementCount)
        {
            throw new ArgumentException(
                $"destination of {destinationLength} elements does not match {info} ({info.ElementCount} elements)");
        }

        return RawBytes(info);
    }

    private ReadOnlySpan<byte> RawBytes(TensorInfo info)
    {
        ObjectDisposedException.ThrowIf(data == null, this);
        if (info.ByteLength > int.MaxValue)
        {
            throw new SafetensorsException(Path, info.Name, "data_offsets", $"{info.ByteLength} bytes exceed one read of {int.MaxValue}");
        }

        return new ReadOnlySpan<byte>(data + info.DataBegin, (int)info.ByteLength);
    }
}

/// <summary>bfloat16 ↔ float32 conversions.</summary>
public static class Bf16
{
    /// <summary>Widens bfloat16 bit patterns to float32 (exact: the bits become the upper half).</summary>
    public static void ToSingle(ReadOnlySpan<ushort> source, Span<float> destination)
    {
        if (destination.Length != source.Length)
        {
            throw new ArgumentException($"destination has {destination.Length} elements, source {source.Length}", nameof(destination));
        }

        Span<uint> bits = MemoryMarshal.Cast<float, uint>(destination);
        int i = 0;
        if (Vector.IsHardwareAccelerated)
        {
            for (; i <= source.Length - Vector<ushort>.Count; i += Vector<ushort>.Count)
            {
                Vector.Widen(new Vector<ushort>(source[i..]), out Vector<uint> low, out Vector<uint> high);
                (low << 16).CopyTo(bits[i..]);
                (high << 16).CopyTo(bits[(i + Vector<uint>.Count)..]);
            }
        }

        for (; i < source.Length; i++)
        {
            bits[i] = (uint)source[i] << 16;
        }
    }

    /// <summary>Rounds float32 values to bfloat16 bit patterns, to nearest even (as PyTorch does); NaN stays NaN.</summary>
    public static void FromSingle(ReadOnlySpan<float> source, Span<ushort> destination)
    {
        if (destination.Length != source.Length)
        {
            throw new ArgumentException($"destination has {destination.Length} elements, source {source.Length}", nameof(destination));
        }

        ReadOnlySpan<uint> bits = MemoryMarshal.Cast<float, uint>(source);
        int i = 0;
        if (Vector.IsHardwareAccelerated)
        {
            for (; i <= source.Length - Vector<ushort>.Count; i += Vector<ushort>.Count)
            {
                var low = Round(new Vector<uint>(bits[i..]));
                var high = Round(new Vector<uint>(bits[(i + Vector<uint>.Count)..]));
                Vector.Narrow(low, high).CopyTo(destination[i..]);
            }
        }

        for (; i < source.Length; i++)
        {
            destination[i] = FromSingle(source[i]);
        }
    }

    // The vector form of FromSingle(float): round to nearest even, and a NaN keeps its sign and upper payload, quietened.
    private static Vector<uint> Round(Vector<uint> bits)
    {
        var rounded = (bits + new Vector<uint>(0x7FFFu) + ((bits >> 16) & Vector<uint>.One)) >> 16;
        var nan = Vector.GreaterThan(bits & new Vector<uint>(0x7FFFFFFFu), new Vector<uint>(0x7F800000u));
        return Vector.ConditionalSelect(nan, (bits >> 16) | new Vector<uint>(0x0040u), rounded);
    }

    /// <summary>Rounds one float32 to a bfloat16 bit pattern, to nearest even; NaN stays a (quiet) NaN.</summary>
    public static ushort FromSingle(float value)
    {
        uint bits = BitConverter.SingleToUInt32Bits(value);
        if (float.IsNaN(value))
        {
            // Truncation could clear every mantissa bit and turn the NaN into an infinity.
            return (ushort)((bits >> 16) | 0x0040);
        }

        uint roundingBias = 0x7FFFu + ((bits >> 16) & 1u);
        return (ushort)((bits + roundingBias) >> 16);
    }

    /// <summary>The float32 value of one bfloat16 bit pattern.</summary>
    public static float ToSingle(ushort bits) => BitConverter.UInt32BitsToSingle((uint)bits << 16);
}
