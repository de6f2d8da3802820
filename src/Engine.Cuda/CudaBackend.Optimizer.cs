using Engine.Core.Backends;
using Engine.Core.Tensors;
using Engine.Cuda.Runtime;

namespace Engine.Cuda;

public sealed unsafe partial class CudaBackend
{
    /// <summary>Most blocks of the first squared-norm pass (their double partials are folded by one block).</summary>
    private const long NormBlocks = 1024;

    /// <summary>Fewest elements per block of the first squared-norm pass.</summary>
    private const long NormMinPerBlock = 4096;

    /// <inheritdoc/>
    protected override void AdamWCore(Tensor parameters, Tensor gradients, Tensor firstMoment, Tensor secondMoment, in AdamWParameters hyper)
    {
        long n = parameters.ElementCount;
        if (n == 0)
        {
            return;
        }

        // The scalars are formed as torch.optim.AdamW (and the CPU backend) form them: in double, then used in float.
        double bc1 = 1.0 - Math.Pow(hyper.Beta1, hyper.Step);
        double bc2 = 1.0 - Math.Pow(hyper.Beta2, hyper.Step);
        float decay = (float)(1.0 - ((double)hyper.LearningRate * hyper.WeightDecay));
        float stepSize = (float)(hyper.LearningRate / bc1);
        float bc2Sqrt = (float)Math.Sqrt(bc2);
        Launch(Kernels.AdamW, ElementGrid(n), new Dim3(ElementThreads), 0,
            parameters, gradients, firstMoment, secondMoment, n,
            hyper.GradScale, 1f - hyper.Beta1, hyper.Beta2, 1f - hyper.Beta2, decay, stepSize, bc2Sqrt, hyper.Epsilon);
    }

    /// <inheritdoc/>
    protected override double SquaredNormCore(Tensor tensor)
    {
        long n = tensor.ElementCount;
        if (n == 0)
        {
            return 0;
        }

        // Two passes with a split fixed by n alone: the sum has the same bits on every run and every GPU.
        long blocks = Math.Clamp((n + NormMinPerBlock - 1) / NormMinPerBlock, 1, NormBlocks);
        long perBlock = (n + blocks - 1) / blocks;
        blocks = (n + perBlock - 1) / perBlock;
        nint partials = Scratch((blocks + 1) * sizeof(double));
        nint result = partials + (nint)(blocks * sizeof(double));
        Launch(Kernels.SquaredNormPartials, new Dim3((uint)blocks), new Dim3(ElementThreads), 0,
            KernelArg.Pointer(partials), tensor, n, perBlock);
        Launch(Kernels.SquaredNormFold, new Dim3(1), new Dim3(ElementThreads), 0,
            KernelArg.Pointer(result), KernelArg.Pointer(partials), (int)blocks);
        double sum;
        api.CopyToHost(&sum, result, sizeof(double));
        Synchronize();
        return sum;
    }
}
