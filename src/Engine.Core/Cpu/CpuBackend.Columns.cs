using System.Numerics.Tensors;
using Tensor = Engine.Core.Tensors.Tensor;

namespace Engine.Core.Cpu;

public sealed unsafe partial class CpuBackend
{
    /// <inheritdoc/>
    protected override void CopyColumnsCore(Tensor destination, int destinationColumn, Tensor source, int sourceColumn, int width, bool accumulate)
    {
        long rows = destination.Shape[0];
        if (rows == 0 || width == 0)
        {
            return;
        }

        var s = new ColumnState
        {
            Dst = destination.Pointer<float>() + destinationColumn, Src = source.Pointer<float>() + sourceColumn,
            DstStride = destination.Shape[1], SrcStride = source.Shape[1], Width = width, Rows = rows, Accumulate = accumulate,
            RowsPerItem = Math.Max(1, ElementChunk / width),
        };
        pool.For(checked((int)((rows + s.RowsPerItem - 1) / s.RowsPerItem)), ref s, &CopyColumnsItem);
    }

    private static void CopyColumnsItem(ref ColumnState s, int index)
    {
        long first = (long)index * s.RowsPerItem, end = Math.Min(s.Rows, first + s.RowsPerItem);
        for (long n = first; n < end; n++)
        {
            var src = new ReadOnlySpan<float>(s.Src + (n * s.SrcStride), s.Width);
            var dst = new Span<float>(s.Dst + (n * s.DstStride), s.Width);
            if (s.Accumulate)
            {
                TensorPrimitives.Add(dst, src, dst);
            }
            else
            {
                src.CopyTo(dst);
            }
        }
    }

    private struct ColumnState
    {
        public float* Dst;
        public float* Src;
        public long DstStride;
        public long SrcStride;
        public int Width;
        public long Rows;
        public int RowsPerItem;
        public bool Accumulate;
    }
}
