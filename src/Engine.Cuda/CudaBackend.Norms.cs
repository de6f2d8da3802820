using Engine.Core.Tensors;
using Engine.Cuda.Runtime;

namespace Engine.Cuda;

public sealed partial class CudaBackend
{
    /// <summary>Rows per block of the warp-per-row kernels (8 warps).</summary>
    private const int RowsPerBlock = ElementThreads / 32;

    /// <inheritdoc/>
    protected override void LayerNormForwardCore(Tensor output, Tensor mean, Tensor rstd, Tensor input, Tensor weight, Tensor bias, float epsilon)
    {
        var (n, c) = RowShape(input);
        if (n == 0 || c == 0)
        {
            return;
        }

        Launch(Kernels.LayerNormForward, new Dim3(Dim3.Blocks(n, RowsPerBlock)), new Dim3(ElementThreads), 0,
            output, mean, rstd, input, weight, bias, n, c, epsilon);
    }

    /// <inheritdoc/>
    protected override void LayerNormBackwardCore(
        Tensor inputGrad, Tensor weightGrad, Tensor biasGrad, Tensor outputGrad, Tensor input, Tensor weight, Tensor mean, Tensor rstd)
    {
        var (n, c) = RowShape(input);
        if (n == 0 || c == 0)
        {
            return;
        }

        if (!inputGrad.IsEmpty)
        {
            Launch(Kernels.LayerNormBackwardInput, new Dim3(Dim3.Blocks(n, RowsPerBlock)), new Dim3(ElementThreads), 0,
                inputGrad, outputGrad, input, weight, mean, rstd, n, c);
        }

        if (weightGrad.IsEmpty && biasGrad.IsEmpty)
        {
            return;
        }

        var (segments, perSegment) = Segments(n, c);
        long vector = (long)segments * c;
        nint partials = Scratch(2 * vector * sizeof(float));
        nint weightPartials = weightGrad.IsEmpty ? 0 : partials;
        nint biasPartials = biasGrad.IsEmpty ? 0 : partials + (nint)(vector * sizeof(float));
        Launch(Kernels.LayerNormBackwardPartials, new Dim3(Dim3.Blocks(c, 32), (uint)segments), new Dim3(32, 8), 0,
            KernelArg.Pointer(weightPartials), KernelArg.Pointer(biasPartials), outputGrad, input, mean, rstd, n, c, perSegment);
        if (!weightGrad.IsEmpty)
        {
            Fold(weightGrad.Address, weightPartials, segments, c);
        }

        if (!biasGrad.IsEmpty)
        {
            Fold(biasGrad.Address, biasPartials, segments, c);
        }
    }

    /// <inheritdoc/>
    protected override void RmsNormForwardCore(Tensor output, Tensor rstd, Tensor input, Tensor weight, float epsilon)
    {
        var (n, c) = RowShape(input);
        if (n == 0 || c == 0)
        {
            return;
        }

        Launch(Kernels.RmsNormForward, new Dim3(Dim3.Blocks(n, RowsPerBlock)), new Dim3(ElementThreads), 0,
            output, rstd, input, weight, n, c, epsilon);
    }

    /// <inheritdoc/>
    protected override void RmsNormBackwardCore(Tensor inputGrad, Tensor weightGrad, Tensor outputGrad, Tensor input, Tensor weight, Tensor rstd)
    {
        var (n, c) = RowShape(input);
        if (n == 0 || c == 0)
        {
            return;
        }

        if (!inputGrad.IsEmpty)
        {
            Launch(Kernels.RmsNormBackwardInput, new Dim3(Dim3.Blocks(n, RowsPerBlock)), new Dim3(ElementThreads), 0,
                inputGrad, outputGrad, input, weight, rstd, n, c);
        }

        if (!weightGrad.IsEmpty)
        {
            var (segments, perSegment) = Segments(n, c);
            nint partials = Scratch((long)segments * c * sizeof(float));
            Launch(Kernels.RmsNormBackwardPartials, new Dim3(Dim3.Blocks(c, 32), (uint)segments), new Dim3(32, 8), 0,
                KernelArg.Pointer(partials), outputGrad, input, rstd, n, c, perSegment);
            Fold(weightGrad.Address, partials, segments, c);
        }
    }

    private static (int N, int C) RowShape(Tensor t) => (checked((int)t.Shape.Rows), checked((int)t.Shape.Last));
}
