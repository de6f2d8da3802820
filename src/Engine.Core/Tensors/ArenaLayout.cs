namespace Engine.Core.Tensors;

/// <summary>
/// Plans a set of tensors inside one buffer: each <c>Reserve</c> returns a byte offset, aligned to 64 bytes.
/// After planning, one buffer of <see cref="ByteLength"/> bytes is allocated and <see cref="View"/> makes the tensors.
/// </summary>
public sealed class ArenaLayout
{
    /// <summary>Alignment of every reserved region in bytes.</summary>
    public const int Alignment = 64;

    /// <summary>Total bytes needed so far.</summary>
    public long ByteLength { get; private set; }

    /// <summary>Reserves room for a tensor and returns its byte offset.</summary>
    public long Reserve(Shape shape, DType dtype)
    {
        long offset = ByteLength;
        long bytes = checked(shape.ElementCount * dtype.SizeOf());
        ByteLength = checked(offset + ((bytes + Alignment - 1) / Alignment * Alignment));
        return offset;
    }

    /// <summary>Reserves room for a tensor of the given dimensions.</summary>
    public long Reserve(DType dtype, params ReadOnlySpan<long> dims) => Reserve(new Shape(dims), dtype);

    /// <summary>The tensor at <paramref name="offset"/> inside the allocated <paramref name="buffer"/>.</summary>
    public static Tensor View(DeviceBuffer buffer, long offset, DType dtype, params ReadOnlySpan<long> dims) =>
        new(buffer, offset, new Shape(dims), dtype);
}
