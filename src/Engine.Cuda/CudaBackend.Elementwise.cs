using Engine.Core.Tensors;
using Engine.Cuda.Runtime;

namespace Engine.Cuda;

public sealed unsafe partial class CudaBackend
{
    /// <inheritdoc/>
    protected override void CopyFromHostCore(Tensor destination, ReadOnlySpan<byte> source)
    {
        if (source.IsEmpty)
        {
            return;
        }

        MakeCurrent();
        // From pageable memory the driver stages the bytes before it returns, so the span may be reused at once.
        fixed (byte* p = source)
        {
            api.CopyToDevice(destination.Address, p, source.Length);
        }
    }

    /// <inheritdoc/>
    protected override void CopyToHostCore(Tensor source, Span<byte> destination)
    {
        MakeCurrent();
        if (!destination.IsEmpty)
        {
            fixed (byte* p = destination)
            {
                api.CopyToHost(p, source.Address, destination.Length);
            }
        }

        Synchronize();
    }

    /// <inheritdoc/>
    protected override void CopyCore(Tensor destination, Tensor source)
    {
        if (destination.ByteLength == 0 || destination.Address == source.Address)
        {
            return;
        }

        MakeCurrent();
        api.CopyOnDevice(destination.Address, source.Address, destination.ByteLength);
    }

    /// <inheritdoc/>
    protected override void ZeroCore(Tensor tensor)
    {
        if (tensor.ByteLength == 0)
        {
            return;
        }

        MakeCurrent();
        api.Memset(tensor.Address, 0, tensor.ByteLength);
    }

    /// <inheritdoc/>
    protected override void FillCore(Tensor tensor, float value)
    {
        long n = tensor.ElementCount;
        if (n > 0)
        {
            Launch(Kernels.Fill, ElementGrid(n), new Dim3(ElementThreads), 0, tensor, n, value);
        }
    }

    /// <inheritdoc/>
    protected override void AddCore(Tensor output, Tensor a, Tensor b)
    {
        long n = output.ElementCount;
        if (n > 0)
        {
            Launch(Kernels.Add, ElementGrid(n), new Dim3(ElementThreads), 0, output, a, b, n);
        }
    }

    /// <inheritdoc/>
    protected override void AccumulateCore(Tensor destination, Tensor source)
    {
        long n = destination.ElementCount;
        if (n > 0)
        {
            Launch(Kernels.Accumulate, ElementGrid(n), new Dim3(ElementThreads), 0, destination, source, n);
        }
    }

    /// <inheritdoc/>
    protected override void ScaleCore(Tensor tensor, float factor)
    {
        long n = tensor.ElementCount;
        if (n > 0)
        {
            Launch(Kernels.Scale, ElementGrid(n), new Dim3(ElementThreads), 0, tensor, n, factor);
        }
    }

    /// <inheritdoc/>
    protected override void CopyColumnsCore(Tensor destination, int destinationColumn, Tensor source, int sourceColumn, int width, bool accumulate)
    {
        long rows = destination.Shape[0], n = rows * width;
        if (n > 0)
        {
            Launch(Kernels.CopyColumns, ElementGrid(n), new Dim3(ElementThreads), 0, destination, source, rows, width,
                checked((int)destination.Shape[1]), destinationColumn, checked((int)source.Shape[1]), sourceColumn, accumulate ? 1 : 0);
        }
    }
}
