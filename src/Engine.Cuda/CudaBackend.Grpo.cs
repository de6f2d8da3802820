using Engine.Core.Backends;
using Engine.Core.Tensors;
using Engine.Cuda.Runtime;

namespace Engine.Cuda;

/// <summary>
/// The GRPO family's kernels (kernels/grpo.cu): group advantages in one block, the policy loss a block per row with the
/// row sums folded in row order on the device; the few scalars come back in one copy, the call's one synchronisation.
/// </summary>
public sealed unsafe partial class CudaBackend
{
    /// <summary>Threads of the single block of the group-advantage kernel (a thread per group).</summary>
    private const int GroupAdvantageThreads = 256;

    /// <summary>Doubles kept per row by the GRPO loss kernels.</summary>
    private const int GrpoRowSlots = 8;

    private const int GrpoResultCount = 8;

    /// <inheritdoc/>
    protected override GroupAdvantageStatistics GroupAdvantagesCore(Tensor advantages, Tensor rewards, int groupSize, in GroupAdvantageOptions options)
    {
        int groups = checked((int)(rewards.ElementCount / groupSize));
        if (groups == 0)
        {
            return default;
        }

        long partialBytes = Aligned(groups * 3L * sizeof(double));
        nint partials = Scratch(partialBytes + (4 * sizeof(float)));
        nint result = partials + (nint)partialBytes;
        Launch(Kernels.GroupAdvantages, new Dim3(1), new Dim3(GroupAdvantageThreads), 0,
            advantages, KernelArg.Pointer(partials), KernelArg.Pointer(result), rewards, groups, groupSize, (int)options.Baseline, (int)options.Scaling,
            options.Epsilon);
        float* r = stackalloc float[4];
        ReadBack(r, result, 4 * sizeof(float));
        return new GroupAdvantageStatistics(r[0], r[1], r[2], (int)r[3]);
    }

    /// <inheritdoc/>
    protected override GrpoStatistics GrpoLossCore(
        Tensor logProbs, Tensor oldLogProbs, Tensor referenceLogProbs, Tensor advantages, Tensor mask, Tensor entropy, Tensor logProbsGrad,
        in GrpoLossOptions options)
    {
        int b = checked((int)logProbs.Shape[0]), t = checked((int)logProbs.Shape[1]);
        if (b == 0 || t == 0)
        {
            return default;
        }

        long rowBytes = Aligned(b * (long)GrpoRowSlots * sizeof(double));
        nint rows = Scratch(rowBytes + (GrpoResultCount * sizeof(float)));
        nint result = rows + (nint)rowBytes;
        Launch(Kernels.GrpoRowCount, new Dim3((uint)b), new Dim3(ElementThreads), 0, KernelArg.Pointer(rows), logProbs, oldLogProbs, mask, t);
        Launch(Kernels.GrpoRowLoss, new Dim3((uint)b), new Dim3(ElementThreads), 0,
            KernelArg.Pointer(rows), logProbs, oldLogProbs, referenceLogProbs, advantages, mask, entropy, logProbsGrad, b, t,
            options.EpsilonLow, options.EpsilonHigh, options.Beta, options.Level == ImportanceSamplingLevel.Sequence ? 1 : 0, (int)options.LossType,
            options.MaxCompletionLength, options.TokenNormalizer, options.GradScale);
        Launch(Kernels.GrpoFold, new Dim3(1), new Dim3(1), 0, KernelArg.Pointer(result), KernelArg.Pointer(rows), b);
        float* r = stackalloc float[GrpoResultCount];
        ReadBack(r, result, GrpoResultCount * sizeof(float));
        return new GrpoStatistics(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7]);
    }
}
