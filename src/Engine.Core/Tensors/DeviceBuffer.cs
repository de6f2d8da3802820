using System.Runtime.InteropServices;

namespace Engine.Core.Tensors;

/// <summary>
/// One allocation of device memory. Tensors are views into buffers; buffers are large (arenas), few, and freed
/// explicitly with <see cref="Dispose"/> (no finalizer frees device memory).
/// </summary>
public abstract class DeviceBuffer : IDisposable
{
    /// <summary>Creates the bookkeeping for a buffer of <paramref name="byteLength"/> bytes on <paramref name="device"/>.</summary>
    protected DeviceBuffer(Device device, long byteLength)
    {
        Device = device;
        ByteLength = byteLength;
    }

    /// <summary>The device the memory lives on.</summary>
    public Device Device { get; }

    /// <summary>Size in bytes.</summary>
    public long ByteLength { get; }

    /// <summary>Whether <see cref="Dispose"/> has run.</summary>
    public bool IsDisposed { get; private set; }

    /// <summary>Address of the first byte (host address for CPU buffers, device address for GPU buffers).</summary>
    public abstract nint Address { get; }

    /// <summary>Frees the memory.</summary>
    public void Dispose()
    {
        if (!IsDisposed)
        {
            IsDisposed = true;
            Free();
        }

        GC.SuppressFinalize(this);
    }

    /// <summary>Releases the underlying memory exactly once.</summary>
    protected abstract void Free();
}

/// <summary>Host memory aligned to 64 bytes (one cache line, one AVX-512 vector), zero-initialised.</summary>
public sealed unsafe class HostBuffer : DeviceBuffer
{
    private static readonly MemoryCounter Counter = new();
    private void* pointer;

    /// <summary>Allocates <paramref name="byteLength"/> zeroed bytes.</summary>
    public HostBuffer(long byteLength)
        : base(Device.Cpu, byteLength)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(byteLength);
        pointer = NativeMemory.AlignedAlloc((nuint)Math.Max(byteLength, 64), 64);
        NativeMemory.Clear(pointer, (nuint)byteLength);
        Counter.Allocated(byteLength);
    }

    /// <summary>Bytes of host buffers currently allocated by this process.</summary>
    public static long LiveBytes => Counter.LiveBytes;

    /// <summary>Largest value <see cref="LiveBytes"/> has reached.</summary>
    public static long PeakBytes => Counter.PeakBytes;

    /// <inheritdoc/>
    public override nint Address
    {
        get
        {
            ObjectDisposedException.ThrowIf(IsDisposed, this);
            return (nint)pointer;
        }
    }

    /// <inheritdoc/>
    protected override void Free()
    {
        NativeMemory.AlignedFree(pointer);
        pointer = null;
        Counter.Freed(ByteLength);
    }
}
