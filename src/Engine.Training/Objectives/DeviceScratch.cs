using Engine.Core.Backends;
using Engine.Core.Tensors;

namespace Engine.Training.Objectives;

/// <summary>
/// Named device buffers an objective reuses from step to step: each grows when a batch needs more and is otherwise
/// kept, so a steady run allocates nothing per step.
/// </summary>
internal sealed class DeviceScratch(Backend backend) : IDisposable
{
    private readonly Dictionary<string, DeviceBuffer> buffers = new(StringComparer.Ordinal);

    public Backend Backend { get; } = backend;

    /// <summary>A tensor of the given shape over the buffer named <paramref name="name"/> (contents undefined).</summary>
    public Tensor Get(string name, DType dtype, params long[] dims)
    {
        var shape = new Shape(dims);
        long bytes = Math.Max(shape.ElementCount * dtype.SizeOf(), 16);
        if (!buffers.TryGetValue(name, out var buffer) || buffer.ByteLength < bytes)
        {
            buffer?.Dispose();
            buffer = Backend.Allocate(bytes);
            buffers[name] = buffer;
        }

        return new Tensor(buffer, 0, shape, dtype);
    }

    /// <summary>A zeroed tensor.</summary>
    public Tensor Zeros(string name, params long[] dims)
    {
        var t = Get(name, DType.F32, dims);
        Backend.Zero(t);
        return t;
    }

    /// <summary>Uploads host floats into the buffer named <paramref name="name"/>.</summary>
    public Tensor Upload(string name, ReadOnlySpan<float> data, params long[] dims)
    {
        var t = Get(name, DType.F32, dims);
        Backend.CopyFromHost(t, data);
        return t;
    }

    /// <summary>Uploads host ints into the buffer named <paramref name="name"/>.</summary>
    public Tensor Upload(string name, ReadOnlySpan<int> data, params long[] dims)
    {
        var t = Get(name, DType.I32, dims);
        Backend.CopyFromHost(t, data);
        return t;
    }

    public void Dispose()
    {
        foreach (var b in buffers.Values)
        {
            b.Dispose();
        }

        buffers.Clear();
    }
}
