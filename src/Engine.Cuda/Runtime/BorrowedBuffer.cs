using Engine.Core.Tensors;

namespace Engine.Cuda.Runtime;

/// <summary>A view of memory owned elsewhere (device memory, or the emulator's host memory), for calling ops on a raw range.</summary>
internal sealed class BorrowedBuffer(Device device, nint address, long byteLength) : DeviceBuffer(device, byteLength)
{
    /// <inheritdoc/>
    public override nint Address => address;

    /// <inheritdoc/>
    protected override void Free()
    {
    }
}
