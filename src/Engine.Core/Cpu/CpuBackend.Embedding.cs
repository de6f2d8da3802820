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
        s.Chunks = RowChunks.Of(tokens.ElementCount, table.Shape[1]);
        CheckTokenIds(s.Tokens, s.Chunks.Rows, table.Shape[0]);
        pool.For(s.Chunks.Items, ref s, &EmbeddingForwardItem);
    }

    /// <inheritdoc/>
    protected override void EmbeddingBackwardCore(Tensor tableGrad, Tensor outputGrad, Tensor tokens)
    {
        var s = new EmbeddingState { Out = outputGrad.Pointer<float>(), Table = tableGrad.Pointer<float>(), Tokens = tokens.Pointer<int>() };
        s.Chunks = RowChunks.Of(tokens.ElementCount, tableGrad.Shape[1]);
        CheckTokenIds(s.Tokens, s.Chunks.Rows, tableGrad.Shape[0]);
        pool.For((s.Chunks.C + EmbeddingColumnBlock - 1) / EmbeddingColumnBlock, ref s, &EmbeddingBackwardItem);
    }

    /// <inheritdoc/>
    protected override void PositionEmbeddingForwardCore(Tensor x, Tensor positions, int positionOffset)
    {
        var s = new EmbeddingState { Out = x.Pointer<float>(), Table = positions.Pointer<float>() + ((long)positionOffset * x.Shape[2]) };
        s.Chunks = RowChunks.Of(x.Shape[0] * x.Shape[1], x.Shape[2]);
        s.T = x.Shape[1];
        pool.For(s.Chunks.Items, ref s, &PositionEmbeddingForwardItem);
    }

    /// <inheritdoc/>
    protected override void PositionEmbeddingBackwardCore(Tensor positionsGrad, Tensor xGrad)
    {
        var s = new EmbeddingState { Out = xGrad.Pointer<float>(), Table = positionsGrad.Pointer<float>() };

        // Work items are time steps of dwpe, each summing over the batch in order.
        s.Chunks = RowChunks.Of(xGrad.Shape[1], xGrad.Shape[2]);
        s.T = xGrad.Shape[1];
        s.B = xGrad.Shape[0];
        pool.For(s.Chunks.Items, ref s, &PositionEmbeddingBackwardItem);
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
        var (first, end) = s.Chunks.Range(item);
        for (long n = first; n < end; n++)
        {
            new ReadOnlySpan<float>(s.Table + ((long)s.Tokens[n] * s.Chunks.C), s.Chunks.C).CopyTo(new Span<float>(s.Out + (n * s.Chunks.C), s.Chunks.C));
        }
    }

    // dtable[tokens[n], block] += dout[n, block] for n in order, so repeated tokens sum the same way on any thread count
    private static void EmbeddingBackwardItem(ref EmbeddingState s, int block)
    {
        int c0 = block * EmbeddingColumnBlock;
        int width = Math.Min(EmbeddingColumnBlock, s.Chunks.C - c0);
        for (long n = 0; n < s.Chunks.Rows; n++)
        {
            var dst = new Span<float>(s.Table + ((long)s.Tokens[n] * s.Chunks.C) + c0, width);
            TensorPrimitives.Add(dst, new ReadOnlySpan<float>(s.Out + (n * s.Chunks.C) + c0, width), dst);
        }
    }

    // x is (B,T,C), wpe rows from positionOffset
    private static void PositionEmbeddingForwardItem(ref EmbeddingState s, int item)
    {
        var (first, end) = s.Chunks.Range(item);
        for (long n = first; n < end; n++)
        {
            var row = new Span<float>(s.Out + (n * s.Chunks.C), s.Chunks.C);
            TensorPrimitives.Add(row, new ReadOnlySpan<float>(s.Table + (n % s.T * s.Chunks.C), s.Chunks.C), row);
        }
    }

    // dwpe[t] += Σ_b dx[b, t] for b in order
    private static void PositionEmbeddingBackwardItem(ref EmbeddingState s, int item)
    {
        var (first, end) = s.Chunks.Range(item);
        for (long t = first; t < end; t++)
        {
            var dst = new Span<float>(s.Table + (t * s.Chunks.C), s.Chunks.C);
            for (long b = 0; b < s.B; b++)
            {
                TensorPrimitives.Add(dst, new ReadOnlySpan<float>(s.Out + (((b * s.T) + t) * s.Chunks.C), s.Chunks.C), dst);
            }
        }
    }

    private struct EmbeddingState
    {
        public float* Out;
        public float* Table;
        public int* Tokens;
        public long T;
        public long B;
        public RowChunks Chunks;
    }
}
