using System.Numerics.Tensors;
using System.Runtime.Intrinsics;
using Engine.Core.Backends;
using Engine.Core.Tensors;
using Tensor = Engine.Core.Tensors.Tensor;

namespace Engine.Core.Cpu;

/// <summary>
/// The CPU implementation of the kernel contract: SIMD code (TensorPrimitives and Vector512/256 with fallbacks),
/// our own register-blocked GEMM, and a persistent <see cref="WorkerPool"/>. The op families live in the partial files
/// beside this one (CpuBackend.Matmul.cs, .Norms.cs, .Activations.cs, .Embedding.cs, .Attention.cs, .Loss.cs,
/// .Optimizer.cs).
/// </summary>
public sealed unsafe partial class CpuBackend : Backend
{
    /// <summary>Elements per parallel work item for flat element-wise loops (a multiple of every vector width).</summary>
    internal const int ElementChunk = 16384;

    private readonly WorkerPool pool;

    /// <summary>Creates a CPU backend running on <paramref name="threads"/> threads (default: all cores).</summary>
    public CpuBackend(int threads = 0)
    {
        int n = threads > 0 ? threads : Environment.ProcessorCount;
        pool = new WorkerPool(n);
    }

    /// <summary>The worker pool ops run on.</summary>
    public WorkerPool Pool => pool;

    /// <summary>Number of threads used.</summary>
    public int ThreadCount => pool.ThreadCount;

    /// <inheritdoc/>
    public override Device Device => Device.Cpu;

    /// <inheritdoc/>
    public override string Description =>
        $"cpu ({ThreadCount} threads, {(Vector512.IsHardwareAccelerated ? "AVX-512" : Vector256.IsHardwareAccelerated ? "AVX2" : "128-bit SIMD")})";

    /// <inheritdoc/>
    public override DeviceBuffer Allocate(long byteLength) => new HostBuffer(byteLength);

    /// <inheritdoc/>
    public override DeviceMemoryInfo QueryMemory() => HostMemory.Query();

    /// <inheritdoc/>
    public override void Synchronize()
    {
    }

    /// <inheritdoc/>
    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            pool.Dispose();
        }

        base.Dispose(disposing);
    }

    /// <inheritdoc/>
    protected override void CopyFromHostCore(Tensor destination, ReadOnlySpan<byte> source) =>
        source.CopyTo(new Span<byte>((void*)destination.Address, checked((int)destination.ByteLength)));

    /// <inheritdoc/>
    protected override void CopyToHostCore(Tensor source, Span<byte> destination) =>
        new ReadOnlySpan<byte>((void*)source.Address, checked((int)source.ByteLength)).CopyTo(destination);

    /// <inheritdoc/>
    protected override void CopyCore(Tensor destination, Tensor source) =>
        Buffer.MemoryCopy((void*)source.Address, (void*)destination.Address, destination.ByteLength, source.ByteLength);

    /// <inheritdoc/>
    protected override void ZeroCore(Tensor tensor) =>
        System.Runtime.InteropServices.NativeMemory.Clear((void*)tensor.Address, (nuint)tensor.ByteLength);

    /// <inheritdoc/>
    protected override void FillCore(Tensor tensor, float value) => tensor.AsSpan<float>().Fill(value);

    /// <inheritdoc/>
    protected override void AddCore(Tensor output, Tensor a, Tensor b)
    {
        var s = new BinaryState { Out = output.Pointer<float>(), A = a.Pointer<float>(), B = b.Pointer<float>(), Length = output.ElementCount };
        pool.For(ChunkCount(s.Length), ref s, &AddChunk);
    }

    /// <inheritdoc/>
    protected override void AccumulateCore(Tensor destination, Tensor source)
    {
        var s = new BinaryState
        {
            Out = destination.Pointer<float>(), A = destination.Pointer<float>(), B = source.Pointer<float>(), Length = destination.ElementCount,
        };
        pool.For(ChunkCount(s.Length), ref s, &AddChunk);
    }

    /// <inheritdoc/>
    protected override void ScaleCore(Tensor tensor, float factor)
    {
        var s = new BinaryState { Out = tensor.Pointer<float>(), A = tensor.Pointer<float>(), Scalar = factor, Length = tensor.ElementCount };
        pool.For(ChunkCount(s.Length), ref s, &ScaleChunk);
    }

    /// <summary>Number of <see cref="ElementChunk"/>-sized work items covering <paramref name="length"/> elements.</summary>
    internal static int ChunkCount(long length) => checked((int)((length + ElementChunk - 1) / ElementChunk));

    /// <summary>The [start, start+count) element range of chunk <paramref name="index"/>.</summary>
    internal static (long Start, int Count) ChunkRange(long length, int index)
    {
        long start = (long)index * ElementChunk;
        return (start, (int)Math.Min(ElementChunk, length - start));
    }

    private static void AddChunk(ref BinaryState s, int index)
    {
        var (start, n) = ChunkRange(s.Length, index);
        TensorPrimitives.Add(new ReadOnlySpan<float>(s.A + start, n), new ReadOnlySpan<float>(s.B + start, n), new Span<float>(s.Out + start, n));
    }

    private static void ScaleChunk(ref BinaryState s, int index)
    {
        var (start, n) = ChunkRange(s.Length, index);
        TensorPrimitives.Multiply(new ReadOnlySpan<float>(s.A + start, n), s.Scalar, new Span<float>(s.Out + start, n));
    }

    private struct BinaryState
    {
        public float* Out;
        public float* A;
        public float* B;
        public float Scalar;
        public long Length;
    }
}
