using Engine.Core.Backends;
using Engine.Core.Tensors;
using Engine.Cuda.Runtime;

namespace Engine.Cuda;

public sealed partial class CudaBackend
{
    /// <summary>Largest head size the attention kernels serve (their register tiles are sized per head-size class).</summary>
    public const int MaxAttentionHeadSize = 256;

    // Tile geometry of kernels/attention.cu: 128 threads own 16 rows and stream 32 rows per tile; shared rows are HS+1 wide.
    private const int AttentionThreads = 128;
    private const int AttentionRows = 16;
    private const int AttentionCols = 32;
    private const int AttentionScoreStride = 33;

    /// <inheritdoc/>
    protected override void RopeForwardCore(Tensor qkv, Tensor table, AttentionShape shape, int positionOffset) =>
        Rope(qkv, table, shape, positionOffset, inverse: false);

    /// <inheritdoc/>
    protected override void RopeBackwardCore(Tensor qkvGrad, Tensor table, AttentionShape shape, int positionOffset) =>
        Rope(qkvGrad, table, shape, positionOffset, inverse: true);

    /// <inheritdoc/>
    protected override void AttentionForwardCore(Tensor output, Tensor logSumExp, Tensor qkv, AttentionShape shape, Tensor positionIds)
    {
        int b = checked((int)qkv.Shape[0]), t = checked((int)qkv.Shape[1]);
        if (b == 0 || t == 0)
        {
            return;
        }

        int hs = shape.HeadSize, cls = HeadClass(hs);
        int shared = (((AttentionRows + (2 * AttentionCols)) * (hs + 1)) + (AttentionRows * AttentionScoreStride)) * sizeof(float);
        Launch(
            Kernels.AttentionForward[cls],
            new Dim3(Dim3.Blocks(t, AttentionRows), (uint)shape.NumHeads, (uint)b),
            new Dim3(AttentionThreads),
            shared,
            output, logSumExp, qkv, positionIds, t, shape.NumHeads, shape.NumKvHeads, hs, 1f / MathF.Sqrt(hs));
    }

    /// <inheritdoc/>
    protected override void AttentionBackwardCore(
        Tensor qkvGrad, Tensor outputGrad, Tensor qkv, Tensor output, Tensor logSumExp, AttentionShape shape, Tensor positionIds)
    {
        int b = checked((int)qkv.Shape[0]), t = checked((int)qkv.Shape[1]);
        if (b == 0 || t == 0)
        {
            return;
        }

        int hs = shape.HeadSize, cls = HeadClass(hs);
        float scale = 1f / MathF.Sqrt(hs);

        // delta[b,h,t] = dout·out per query row, the softmax-Jacobian term both gradient kernels need.
        long rows = (long)b * t * shape.NumHeads;
        var delta = KernelArg.Pointer(Scratch(rows * sizeof(float)));
        Launch(Kernels.AttentionDelta, new Dim3(Dim3.Blocks(rows, RowsPerBlock)), new Dim3(ElementThreads), 0,
            delta, outputGrad, output, rows, t, shape.NumHeads, hs);

        int dqShared = (((2 * AttentionRows) + (2 * AttentionCols)) * (hs + 1) + (AttentionRows * AttentionScoreStride)) * sizeof(float);
        Launch(
            Kernels.AttentionBackwardDq[cls],
            new Dim3(Dim3.Blocks(t, AttentionRows), (uint)shape.NumHeads, (uint)b),
            new Dim3(AttentionThreads),
            dqShared,
            qkvGrad, outputGrad, qkv, logSumExp, delta, positionIds, t, shape.NumHeads, shape.NumKvHeads, hs, scale);

        int dkdvShared = ((((2 * AttentionRows) + (2 * AttentionCols)) * (hs + 1)) + (2 * AttentionRows * AttentionScoreStride) + (2 * AttentionCols)) * sizeof(float);
        Launch(
            Kernels.AttentionBackwardDkDv[cls],
            new Dim3(Dim3.Blocks(t, AttentionRows), (uint)shape.NumKvHeads, (uint)b),
            new Dim3(AttentionThreads),
            dkdvShared,
            qkvGrad, outputGrad, qkv, logSumExp, delta, positionIds, t, shape.NumHeads, shape.NumKvHeads, hs, scale);
    }

    /// <inheritdoc/>
    protected override void KvCacheWriteCore(Tensor kCache, Tensor vCache, Tensor qkv, Tensor positions, AttentionShape shape)
    {
        int tq = checked((int)qkv.Shape[1]), maxT = checked((int)kCache.Shape[2]);
        long n = qkv.Shape[0] * tq * shape.NumKvHeads * shape.HeadSize;
        if (n == 0)
        {
            return;
        }

        Launch(Kernels.DecodeAppend, ElementGrid(n), new Dim3(ElementThreads), 0,
            kCache, vCache, qkv, positions, n, tq, shape.NumHeads, shape.NumKvHeads, shape.HeadSize, maxT);
    }

    /// <inheritdoc/>
    protected override void AttentionDecodeCore(Tensor output, Tensor qkv, Tensor kCache, Tensor vCache, Tensor positions, AttentionShape shape)
    {
        int b = checked((int)qkv.Shape[0]), tq = checked((int)qkv.Shape[1]), maxT = checked((int)kCache.Shape[2]);
        if (b == 0 || tq == 0)
        {
            return;
        }

        int hs = shape.HeadSize;
        long n = (long)b * tq * shape.NumKvHeads * hs;
        Launch(Kernels.DecodeAppend, ElementGrid(n), new Dim3(ElementThreads), 0,
            kCache, vCache, qkv, positions, n, tq, shape.NumHeads, shape.NumKvHeads, hs, maxT);

        // Shared memory holds q, a reduction scratch and one score per cached position.
        int shared = (hs + 32 + maxT) * sizeof(float);
        Launch(
            Kernels.AttentionDecode,
            new Dim3((uint)tq, (uint)shape.NumHeads, (uint)b),
            new Dim3(AttentionThreads),
            shared,
            output, qkv, kCache, vCache, positions, tq, shape.NumHeads, shape.NumKvHeads, hs, maxT, 1f / MathF.Sqrt(hs));
    }

    private static int HeadClass(int headSize)
    {
        for (int i = 0; i < Kernels.AttentionHeadClasses.Length; i++)
        {
            if (headSize <= Kernels.AttentionHeadClasses[i])
            {
                return i;
            }
        }

        throw new NotSupportedException($"CUDA attention supports head sizes up to {MaxAttentionHeadSize}, got {headSize}");
    }

    private void Rope(Tensor qkv, Tensor table, AttentionShape shape, int positionOffset, bool inverse)
    {
        long rows = qkv.Shape[0] * qkv.Shape[1];
        int rotated = shape.NumHeads + shape.NumKvHeads;
        long n = rows * rotated * (shape.HeadSize / 2);
        if (n == 0)
        {
            return;
        }

        Launch(Kernels.Rope, ElementGrid(n), new Dim3(ElementThreads), 0,
            qkv, table, n, checked((int)qkv.Shape[1]), rotated, shape.HeadSize, shape.QkvChannels, positionOffset, inverse ? 1 : 0);
    }
}
