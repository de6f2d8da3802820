using Engine.Core.Tensors;
using Engine.Cuda.Runtime;

namespace Engine.Cuda;

public sealed partial class CudaBackend
{
    /// <inheritdoc/>
    protected override void EmbeddingForwardCore(Tensor output, Tensor tokens, Tensor table)
    {
        long n = tokens.ElementCount;
        if (n == 0 || output.ElementCount == 0)
        {
            return;
        }

        Launch(Kernels.EmbeddingForward, new Dim3(checked((uint)n)), new Dim3(ElementThreads), 0,
            output, tokens, table, checked((int)table.Shape[1]), checked((int)table.Shape[0]), ErrorWord());
    }

    /// <inheritdoc/>
    protected override void EmbeddingBackwardCore(Tensor tableGrad, Tensor outputGrad, Tensor tokens)
    {
        long n = tokens.ElementCount;
        if (n == 0 || outputGrad.ElementCount == 0)
        {
            return;
        }

        Launch(Kernels.EmbeddingBackward, new Dim3(checked((uint)n)), new Dim3(ElementThreads), 0,
            tableGrad, outputGrad, tokens, checked((int)n), checked((int)tableGrad.Shape[1]), checked((int)tableGrad.Shape[0]));
    }

    /// <inheritdoc/>
    protected override void PositionEmbeddingForwardCore(Tensor x, Tensor positions, int positionOffset)
    {
        long n = x.ElementCount;
        if (n == 0)
        {
            return;
        }

        Launch(Kernels.PositionForward, ElementGrid(n), new Dim3(ElementThreads), 0,
            x, positions, n, checked((int)x.Shape[1]), checked((int)x.Shape[2]), positionOffset);
    }

    /// <inheritdoc/>
    protected override void PositionEmbeddingBackwardCore(Tensor positionsGrad, Tensor xGrad)
    {
        long n = xGrad.Shape[1] * xGrad.Shape[2];
        if (n == 0 || xGrad.ElementCount == 0)
        {
            return;
        }

        Launch(Kernels.PositionBackward, ElementGrid(n), new Dim3(ElementThreads), 0,
            positionsGrad, xGrad, checked((int)xGrad.Shape[0]), checked((int)xGrad.Shape[1]), checked((int)xGrad.Shape[2]));
    }
}
