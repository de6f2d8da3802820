using Engine.Core.Tensors;

namespace Engine.Cuda;

/// <summary>
/// Device memory from <c>cuMemAlloc</c> (or the emulator's host memory), zeroed on the backend's stream when allocated, freed by <see cref="DeviceBuffer.Dispose"/>
/// only (no finalizer: device memory is released explicitly or with the context). Live and peak byte counters make
/// leaks visible in tests.
/// </summary>
public sealed class CudaBuffer : DeviceBuffer
{
    private static readonly MemoryCounter Counter = new();
    private readonly CudaBackend owner;
    private nint pointer;

    internal CudaBuffer(CudaBackend owner, long byteLength)
        : base(owner.Device, byteLength)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(byteLength);
        this.owner = owner;
        if (byteLength > 0)
        {
            owner.MakeCurrent();
            pointer = owner.Api.Allocate(byteLength);
        }

        Counter.Allocated(byteLength);
    }

    /// <summary>Bytes of CUDA buffers currently allocated by this process.</summary>
    public static long LiveBytes => Counter.LiveBytes;

    /// <summary>Largest value <see cref="LiveBytes"/> has reached.</summary>
    public static long PeakBytes => Counter.PeakBytes;

    /// <summary>The device address (0 for an empty buffer).</summary>
    public override nint Address
    {
        get
        {
            ObjectDisposedException.ThrowIf(IsDisposed, this);
            return pointer;
        }
    }

    /// <inheritdoc/>
    protected override void Free()
    {
        // After the backend released its context the memory went with it; freeing again would fail.
        if (pointer != 0 && !owner.IsDisposed)
        {
            owner.MakeCurrent();
            owner.Api.Free(pointer);
        }

        pointer = default;
        Counter.Freed(ByteLength);
    }
}
