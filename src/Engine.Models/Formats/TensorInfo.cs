namespace Engine.Models.Formats;

/// <summary>One tensor entry of a validated safetensors header.</summary>
public sealed class TensorInfo
{
    internal TensorInfo(string name, SafetensorsDType dtype, long[] shape, long elementCount, long dataBegin, long dataEnd)
    {
        Name = name;
        DType = dtype;
        Shape = shape;
        ElementCount = elementCount;
        DataBegin = dataBegin;
        DataEnd = dataEnd;
    }

    /// <summary>The tensor's name in the header.</summary>
    public string Name { get; }

    /// <summary>Element type as stored.</summary>
    public SafetensorsDType DType { get; }

    /// <summary>Dimensions, outermost first (any rank; empty for a scalar).</summary>
    public IReadOnlyList<long> Shape { get; }

    /// <summary>Product of the dimensions (1 for a scalar).</summary>
    public long ElementCount { get; }

    /// <summary>Start of the data, in bytes from the start of the data section (<c>data_offsets[0]</c>).</summary>
    public long DataBegin { get; }

    /// <summary>End of the data, exclusive, in bytes from the start of the data section (<c>data_offsets[1]</c>).</summary>
    public long DataEnd { get; }

    /// <summary>Size of the data in bytes.</summary>
    public long ByteLength => DataEnd - DataBegin;

    /// <summary>Formats as <c>name F32 [2, 3] @0..24</c>.</summary>
    public override string ToString() =>
        $"{Name} {DType.HeaderName()} [{string.Join(", ", Shape)}] @{DataBegin}..{DataEnd}";
}
