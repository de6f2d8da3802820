using System.Runtime.Intrinsics;
using Engine.Core.Backends;
using Engine.Core.Cpu.Attention;
using Engine.Core.Tensors;

namespace Engine.Core.Cpu;

public sealed unsafe partial class CpuBackend
{
    /// <inheritdoc/>
    protected override void RopeForwardCore(Tensor qkv, Tensor table, AttentionShape shape, int positionOffset) =>
        Rope(qkv, table, shape, positionOffset, inverse: false);

    /// <inheritdoc/>
    protected override void RopeBackwardCore(Tensor qkvGrad, Tensor table, AttentionShape shape, int positionOffset) =>
        Rope(qkvGrad, table, shape, positionOffset, inverse: true);

    /// <inheritdoc/>
    protected override void AttentionForwardCore(Tensor output, Tensor logSumExp, Tensor qkv, AttentionShape shape, Tensor positionIds)
    {
        var s = AttentionState(qkv, shape, positionIds);
        s.Out = output.Pointer<float>();
        s.Lse = logSumExp.Pointer<float>();
        if (Vector512.IsHardwareAccelerated)
        {
            AttentionKernels.Plan<Lanes512>(ref s);
            pool.For(AttentionKernels.ForwardItems(s), ref s, &AttentionKernels.ForwardItem<Lanes512>);
        }
        else
        {
            AttentionKernels.Plan<Lanes256>(ref s);
            pool.For(AttentionKernels.ForwardItems(s), ref s, &AttentionKernels.ForwardItem<Lanes256>);
        }
    }

    /// <inheritdoc/>
    protected override void AttentionBackwardCore(
        Tensor qkvGrad, Tensor outputGrad, Tensor qkv, Tensor output, Tensor logSumExp, AttentionShape shape, Tensor positionIds)
    {
        var s = AttentionState(qkv, shape, positionIds);
        s.Out = output.Pointer<float>();
        s.Lse = logSumExp.Pointer<float>();
        s.QkvGrad = qkvGrad.Pointer<float>();
        s.OutGrad = outputGrad.Pointer<float>();
        if (Vector512.IsHardwareAccelerated)
        {
            AttentionKernels.Plan<Lanes512>(ref s);
            pool.For(AttentionKernels.BackwardItems(s), ref s, &AttentionKernels.BackwardItem<Lanes512>);
        }
        else
        {
            AttentionKernels.Plan<Lanes256>(ref s);
            pool.For(AttentionKernels.BackwardItems(s), ref s, &AttentionKernels.BackwardItem<Lanes256>);
        }
    }

    /// <inheritdoc/>
    protected override void KvCacheWriteCore(Tensor kCache, Tensor vCache, Tensor qkv, Tensor positions, AttentionShape shape)
    {
        var s = DecodeState(default, qkv, kCache, vCache, positions, shape);
        pool.For(s.B * shape.NumKvHeads, ref s, &DecodeKernels.WriteItem);
    }

    /// <inheritdoc/>
    protected override void AttentionDecodeCore(Tensor output, Tensor qkv, Tensor kCache, Tensor vCache, Tensor positions, AttentionShape shape)
    {
        var s = DecodeState(output, qkv, kCache, vCache, positions, shape);
        pool.For(s.B * shape.NumKvHeads, ref s, &DecodeKernels.Item);
    }

    private static DecodeKernels.State DecodeState(Tensor output, Tensor qkv, Tensor kCache, Tensor vCache, Tensor positions, AttentionShape shape)
    {
        int b = checked((int)qkv.Shape[0]), tq = checked((int)qkv.Shape[1]), maxT = checked((int)kCache.Shape[2]);
        if (maxT > DecodeKernels.MaxCacheLength)
        {
            throw new NotSupportedException($"CPU decode attention supports caches up to {DecodeKernels.MaxCacheLength} positions, got {maxT}");
        }

        int* pos = positions.Pointer<int>();
        for (int i = 0; i < b; i++)
        {
            if (pos[i] < 0 || pos[i] + tq > maxT)
            {
                throw new ArgumentOutOfRangeException(nameof(positions), $"sequence {i} at position {pos[i]} cannot take {tq} more tokens in a cache of {maxT}");
            }
        }

        var s = new DecodeKernels.State
        {
            Qkv = qkv.Pointer<float>(),
            Out = output.Pointer<float>(),
            KCache = kCache.Pointer<float>(),
            VCache = vCache.Pointer<float>(),
            Positions = pos,
            B = b,
            Tq = tq,
            NH = shape.NumHeads,
            NKV = shape.NumKvHeads,
            HS = shape.HeadSize,
            MaxT = maxT,
            Scale = 1f / MathF.Sqrt(shape.HeadSize),
        };
        return s;
    }

    private static AttentionKernels.State AttentionState(Tensor qkv, AttentionShape shape, Tensor positionIds)
    {
        if (shape.HeadSize > AttentionKernels.MaxHeadSize)
        {
            throw new NotSupportedException(
                $"CPU attention keeps per-tile scratch on the stack and supports head sizes up to {AttentionKernels.MaxHeadSize}, got {shape.HeadSize}");
        }

        var s = new AttentionKernels.State
        {
            Qkv = qkv.Pointer<float>(),
            Positions = positionIds.IsEmpty ? null : positionIds.Pointer<int>(),
            B = checked((int)qkv.Shape[0]),
            T = checked((int)qkv.Shape[1]),
            NH = shape.NumHeads,
            NKV = shape.NumKvHeads,
            HS = shape.HeadSize,
        };
        return s;
    }

    private void Rope(Tensor qkv, Tensor table, AttentionShape shape, int positionOffset, bool inverse)
    {
        if (shape.HeadSize % 2 != 0)
        {
            throw new ArgumentException($"RoPE needs an even head size, got {shape.HeadSize}", nameof(shape));
        }

        int rotated = shape.NumHeads + shape.NumKvHeads;
        var s = new RopeKernels.State
        {
            Qkv = qkv.Pointer<float>(),
            Table = table.Pointer<float>(),
            Rows = qkv.Shape[0] * qkv.Shape[1],
            T = checked((int)qkv.Shape[1]),
            RotatedHeads = rotated,
            HeadSize = shape.HeadSize,
            QkvChannels = shape.QkvChannels,
            PositionOffset = positionOffset,
            RowsPerItem = RopeKernels.RowsPerItem(rotated, shape.HeadSize),
            Inverse = inverse,
        };
        pool.For(checked((int)((s.Rows + s.RowsPerItem - 1) / s.RowsPerItem)), ref s, &RopeKernels.Item);
    }
}
