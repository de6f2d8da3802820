using System.Numerics.Tensors;
using Engine.Core.Tensors;
using Tensor = Engine.Core.Tensors.Tensor;

namespace Engine.Core.Cpu;

public sealed unsafe partial class CpuBackend
{
    /// <summary>Columns per work item of the embedding backward: 64 floats, four cache lines.</summary>
    private const int EmbeddingColumnBlock = 64;

    /// <inheritdoc/>
    protected override void EmbeddingForwardCore(Tensor output, Tensor tokens, Tensor table)
    {
        var s = new EmbeddingState { Out = output.Pointer<float>(), Table = table.Pointer<float>(), Tokens = tokens.Pointer<int>() };
        s.SetShape(tokens.ElementCount, table.Shape[1]);
        CheckTokenIds(s.Tokens, s.Rows, table.Shape[0]);
        pool.For(s.Items, ref s, &EmbeddingForwardItem);
    }

    /// <inheritdoc/>
    protected override void EmbeddingBackwardCore(Tensor tableGrad, Tensor outputGrad, Tensor tokens)
    {
        var s = new EmbeddingState { Out = outputGrad.Pointer<float>(), Table = tableGrad.Pointer<float>(), Tokens = tokens.Pointer<int>() };
        s.SetShape(tokens.ElementCount, tableGrad.Shape[1]);
        CheckTokenIds(s.Tokens, s.Rows, tableGrad.Shape[0]);
        pool.For((s.C + EmbeddingColumnBlock - 1) / EmbeddingColumnBlock, ref s, &EmbeddingBackwardItem);
    }

    /// <inheritdoc/>
    protected override void PositionEmbeddingForwardCore(Tensor x, Tensor positions, int positionOffset)
    {
        var s = new EmbeddingState { Out = x.Pointer<float>(), Table = positions.Pointer<float>() + ((long)positionOffset * x.Shape[2]) };
        s.SetShape(x.Shape[0] * x.Shape[1], x.Shape[2]);
        s.T = x.Shape[1];
        pool.For(s.Items, ref s, &PositionEmbeddingForwardItem);
    }

    /// <inheritdoc/>
    protected override void PositionEmbeddingBackwardCore(Tensor positionsGrad, Tensor xGrad)
    {
        var s = new EmbeddingState { Out = xGrad.Pointer<float>(), Table = positionsGrad.Pointer<float>() };

        // Work items are time steps of dwpe, each summing over the batch in order.
        s.SetShape(xGrad.Shape[1], xGrad.Shape[2]);
        s.T = xGrad.Shape[1];
        s.B = xGrad.Shape[0];
        pool.For(s.Items, ref s, &PositionEmbeddingBackwardItem);
    }

    // Checked up front, on the calling thread, so a bad id throws before anything is written.
    private static void CheckTokenIds(int* tokens, long n, long vocab)
    {
        for (long i = 0; i < n; i++)
        {
            if ((uint)tokens[i] >= (ulong)vocab)
            {
                throw new ArgumentOutOfRangeException(
                    nameof(tokens), tokens[i], $"token id {tokens[i]} at position {i} is outside the vocabulary [0, {vocab})");
            }
        }
    }

    // out is (N,C), tokens (N), table (V,C)
    private static void EmbeddingForwardItem(ref EmbeddingState s, int item)
    {
        var (first, end) = s.RowRange(item);
        for (long n = first; n < end; n++)
        {
            new ReadOnlySpan<float>(s.Table + ((long)s.Tokens[n] * s.C), s.C).CopyTo(new Span<float>(s.Out + (n * s.C), s.C));
        }
    }

    // dtable[tokens[n], block] += dout[n, block] for n in order, so repeated tokens sum the same way on any thread count
    private static void EmbeddingBackwardItem(ref EmbeddingState s, int block)
    {
        int c0 = block * EmbeddingColumnBlock;
        int width = Math.Min(EmbeddingColumnBlock, s.C - c0);
        for (long n = 0; n < s.Rows; n++)
        {
            var dst = new Span<float>(s.Table + ((long)s.Tokens[n] * s.C) + c0, width);
            TensorPrimitives.Add(dst, new ReadOnlySpan<float>(s.Out + (n * s.C) + c0, width), dst);
        }
    }

    // x is (B,T,C), wpe rows from positionOffset
    private static void PositionEmbeddingForwardItem(ref EmbeddingState s, int item)
    {
        var (first, end) = s.RowRange(item);
        for (long n = first; n < end; n++)
        {
            var row = new Span<float>(s.Out + (n * s.C), s.C);
            TensorPrimitives.Add(row, new ReadOnlySpan<float>(s.Table + (n % s.T * s.C), s.C), row);
        }
    }

    // dwpe[t] += Σ_b dx[b, t] for b in order
    private static void PositionEmbeddingBackwardItem(ref EmbeddingState s, int item)
    {
        var (first, end) = s.RowRange(item);
        for (long t = first; t < end; t++)
        {
            var dst = new Span<float>(s.Table + (t * s.C), s.C);
            for (long b = 0; b < s.B; b++)
            {
                TensorPrimitives.Add(dst, new ReadOnlySpan<float>(s.Out + (((b * s.T) + t) * s.C), s.C), dst);
            }
        }
    }

    private struct EmbeddingState
    {
        public float* Out;
        public float* Table;
        public int* Tokens;
        public long Rows;
        public long T;
        public long B;
        public int C;
        public int RowsPerItem;
        public int Items;

        public void SetShape(long rows, long c)
        {
            Rows = rows;
            C = checked((int)c);
            RowsPerItem = CpuBackend.RowsPerItem(C);
            Items = C == 0 ? 0 : checked((int)((Rows + RowsPerItem - 1) / RowsPerItem));
        }

        public readonly (long First, long End) RowRange(int item)
        {
            long first = (long)item * RowsPerItem;
            return (first, Math.Min(Rows, first + RowsPerItem));
        }
    }
}
