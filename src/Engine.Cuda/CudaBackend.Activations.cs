using Engine.Core.Tensors;
using Engine.Cuda.Runtime;

namespace Engine.Cuda;

public sealed partial class CudaBackend
{
    /// <inheritdoc/>
    protected override void GeluForwardCore(Tensor output, Tensor input)
    {
        long n = input.ElementCount;
        if (n > 0)
        {
            Launch(Kernels.GeluForward, ElementGrid(n), new Dim3(ElementThreads), 0, output, input, n);
        }
    }

    /// <inheritdoc/>
    protected override void GeluBackwardCore(Tensor inputGrad, Tensor outputGrad, Tensor input)
    {
        long n = input.ElementCount;
        if (n > 0)
        {
            Launch(Kernels.GeluBackward, ElementGrid(n), new Dim3(ElementThreads), 0, inputGrad, outputGrad, input, n);
        }
    }

    /// <inheritdoc/>
    protected override void SwiGluForwardCore(Tensor output, Tensor input)
    {
        long n = output.ElementCount;
        if (n > 0)
        {
            Launch(Kernels.SwiGluForward, ElementGrid(n), new Dim3(ElementThreads), 0, output, input, n, checked((int)output.Shape.Last));
        }
    }

    /// <inheritdoc/>
    protected override void SwiGluBackwardCore(Tensor inputGrad, Tensor outputGrad, Tensor input)
    {
        long n = outputGrad.ElementCount;
        if (n > 0)
        {
            Launch(Kernels.SwiGluBackward, ElementGrid(n), new Dim3(ElementThreads), 0,
                inputGrad, outputGrad, input, n, checked((int)outputGrad.Shape.Last));
        }
    }

    /// <inheritdoc/>
    protected override void DropoutForwardCore(Tensor output, Tensor input, float probability, ulong seed, ulong offset)
    {
        if (probability == 0f)
        {
            CopyCore(output, input);
            return;
        }

        Dropout(output, input, probability, seed, offset, accumulate: false);
    }

    /// <inheritdoc/>
    protected override void DropoutBackwardCore(Tensor inputGrad, Tensor outputGrad, float probability, ulong seed, ulong offset)
    {
        if (probability == 0f)
        {
            AccumulateCore(inputGrad, outputGrad);
            return;
        }

        Dropout(inputGrad, outputGrad, probability, seed, offset, accumulate: true);
    }

    /// <summary>
    /// Keeps element i when the 24-bit hash k of (seed, offset + i) satisfies k ≥ ⌈p·2²⁴⌉, which is exactly
    /// <c>DropoutStream.Uniform(seed, offset + i) ≥ p</c> (the CPU backend uses the same integer threshold).
    /// </summary>
    private void Dropout(Tensor output, Tensor input, float probability, ulong seed, ulong offset, bool accumulate)
    {
        long n = input.ElementCount;
        if (n == 0)
        {
            return;
        }

        uint threshold = (uint)Math.Ceiling(probability * 16777216.0);
        float scale = 1f / (1f - probability);
        Launch(Kernels.Dropout, ElementGrid(n), new Dim3(ElementThreads), 0, output, input, n, seed, offset, threshold, scale, accumulate ? 1 : 0);
    }
}
