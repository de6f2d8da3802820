using System.Runtime.CompilerServices;

namespace Engine.Core.Tensors;

/// <summary>
/// A view of a contiguous, row-major region of a <see cref="DeviceBuffer"/>: buffer, byte offset, shape and dtype.
/// A value type, so making views never allocates. The default value is the empty tensor (<see cref="IsEmpty"/>),
/// used for optional arguments such as a missing bias.
/// </summary>
public readonly struct Tensor
{
    /// <summary>Creates a view; checks that it lies inside the buffer.</summary>
    public Tensor(DeviceBuffer buffer, long byteOffset, Shape shape, DType dtype)
    {
        ArgumentNullException.ThrowIfNull(buffer);
        long bytes = checked(shape.ElementCount * dtype.SizeOf());
        if (byteOffset < 0 || byteOffset + bytes > buffer.ByteLength)
        {
            throw new ArgumentOutOfRangeException(
                nameof(byteOffset),
                $"view of {bytes} bytes at offset {byteOffset} does not fit a buffer of {buffer.ByteLength} bytes");
        }

        Buffer = buffer;
        ByteOffset = byteOffset;
        Shape = shape;
        DType = dtype;
    }

    /// <summary>The buffer viewed (null for the empty tensor).</summary>
    public DeviceBuffer? Buffer { get; }

    /// <summary>Offset of the first element in bytes.</summary>
    public long ByteOffset { get; }

    /// <summary>Shape of the view.</summary>
    public Shape Shape { get; }

    /// <summary>Element type.</summary>
    public DType DType { get; }

    /// <summary>True for the default (absent) tensor.</summary>
    public bool IsEmpty => Buffer is null;

    /// <summary>Device of the buffer.</summary>
    public Device Device => Buffer?.Device ?? Device.Cpu;

    /// <summary>Number of elements.</summary>
    public long ElementCount => Shape.ElementCount;

    /// <summary>Size in bytes.</summary>
    public long ByteLength => ElementCount * DType.SizeOf();

    /// <summary>Address of the first element (host or device address).</summary>
    public nint Address => Buffer is null ? 0 : Buffer.Address + (nint)ByteOffset;

    /// <summary>Same memory, another shape with the same element count.</summary>
    public Tensor Reshape(params ReadOnlySpan<long> dims)
    {
        var shape = new Shape(dims);
        if (shape.ElementCount != ElementCount)
        {
            throw new ArgumentException($"cannot reshape {Shape} ({ElementCount} elements) to {shape}");
        }

        return new Tensor(RequireBuffer(), ByteOffset, shape, DType);
    }

    /// <summary>A contiguous sub-view starting <paramref name="elementOffset"/> elements in, with the given shape.</summary>
    public Tensor Slice(long elementOffset, params ReadOnlySpan<long> dims)
    {
        var shape = new Shape(dims);
        if (elementOffset < 0 || elementOffset + shape.ElementCount > ElementCount)
        {
            throw new ArgumentOutOfRangeException(
                nameof(elementOffset),
                $"slice of {shape} at element {elementOffset} exceeds a tensor of {ElementCount} elements");
        }

        return new Tensor(RequireBuffer(), ByteOffset + (elementOffset * DType.SizeOf()), shape, DType);
    }

    /// <summary>Rows <paramref name="start"/> .. start+count of the tensor viewed as [rows, last].</summary>
    public Tensor Rows(long start, long count)
    {
        long last = Shape.Last;
        return Slice(start * last, count, last);
    }

    /// <summary>The elements as a span; host tensors only.</summary>
    public unsafe Span<T> AsSpan<T>()
        where T : unmanaged
    {
        CheckHost<T>();
        return new Span<T>((void*)Address, checked((int)ElementCount));
    }

    /// <summary>Typed pointer to the first element; host tensors only (null for the empty tensor).</summary>
    public unsafe T* Pointer<T>()
        where T : unmanaged
    {
        if (IsEmpty)
        {
            return null;
        }

        CheckHost<T>();
        return (T*)Address;
    }

    /// <inheritdoc/>
    public override string ToString() => IsEmpty ? "Tensor(empty)" : $"Tensor({DType.Name()}{Shape} on {Device})";

    private DeviceBuffer RequireBuffer() =>
        Buffer ?? throw new InvalidOperationException("the empty tensor has no memory");

    private void CheckHost<T>()
        where T : unmanaged
    {
        if (RequireBuffer().Device.Kind != DeviceKind.Cpu)
        {
            throw new InvalidOperationException($"{this} is not in host memory");
        }

        if (Unsafe.SizeOf<T>() != DType.SizeOf())
        {
            throw new InvalidOperationException($"{typeof(T).Name} does not match dtype {DType.Name()}");
        }
    }
}
