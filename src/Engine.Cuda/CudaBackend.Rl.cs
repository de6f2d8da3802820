using Engine.Core.Backends;
using Engine.Core.Tensors;
using Engine.Cuda.Runtime;

namespace Engine.Cuda;

/// <summary>
/// The RL and preference kernels (kernels/rl.cu). Token-wise reductions split the tokens into contiguous slices by the
/// element count alone (like <see cref="Backend.SquaredNorm"/>), reduce each slice in a block and fold the slices in
/// order on the device, so every statistic has the same bits on every run; the few scalars then come back to the host in
/// one copy, the only synchronisation of the call.
/// </summary>
public sealed unsafe partial class CudaBackend
{
    /// <summary>Threads per block of the one-thread-per-sequence GAE kernel (sequences are few; small blocks spread them).</summary>
    private const int GaeThreads = 128;

    /// <summary>Threads of the single block that computes the pairwise losses.</summary>
    private const int PairwiseThreads = 512;

    private const int PpoPartialCount = 12;
    private const int PpoResultCount = 9;
    private const int PairwiseResultCount = 8;

    /// <inheritdoc/>
    protected override void GeneralizedAdvantageEstimationCore(
        Tensor advantages, Tensor returns, Tensor rewards, Tensor values, Tensor mask, float gamma, float lambda)
    {
        int b = checked((int)rewards.Shape[0]), t = checked((int)rewards.Shape[1]);
        if (b == 0 || t == 0)
        {
            return;
        }

        Launch(Kernels.Gae, new Dim3(Dim3.Blocks(b, GaeThreads)), new Dim3(GaeThreads), 0,
            advantages, returns, rewards, values, mask, b, t, gamma, lambda);
    }

    /// <inheritdoc/>
    protected override MaskedMoments MaskedWhitenCore(Tensor values, Tensor mask, bool shiftMean, float epsilon)
    {
        long n = values.ElementCount;
        if (n == 0)
        {
            return default;
        }

        var (blocks, perBlock) = ReductionSlices(n);
        nint partials = Scratch(Aligned(blocks * 3L * sizeof(double)) + (6 * sizeof(double)));
        nint result = partials + (nint)Aligned(blocks * 3L * sizeof(double));
        Launch(Kernels.MaskedMomentsPartials, new Dim3((uint)blocks), new Dim3(ElementThreads), 0,
            KernelArg.Pointer(partials), values, mask, n, perBlock);
        Launch(Kernels.MaskedWhitenFold, new Dim3(1), new Dim3(1), 0,
            KernelArg.Pointer(result), KernelArg.Pointer(partials), blocks, epsilon, shiftMean ? 1 : 0);
        Launch(Kernels.MaskedWhitenApply, ElementGrid(n), new Dim3(ElementThreads), 0, values, mask, KernelArg.Pointer(result), n);
        double* moments = stackalloc double[3];
        ReadBack(moments, result, 3 * sizeof(double));
        return new MaskedMoments((float)moments[0], (float)moments[1], (float)moments[2]);
    }

    /// <inheritdoc/>
    protected override PairwiseLossStatistics PairwiseLossCore(
        Tensor scores, Tensor chosen, Tensor rejected, Tensor weights, Tensor margins, Tensor scoresGrad, in PairwiseLossOptions options)
    {
        int pairs = checked((int)chosen.ElementCount), responses = checked((int)scores.ElementCount);
        if (pairs == 0)
        {
            return default;
        }

        // Pair contributions [2, P] (chosen side, rejected side), then the eight result floats.
        long gradBytes = Aligned(2L * pairs * sizeof(float));
        nint pairGrad = Scratch(gradBytes + (PairwiseResultCount * sizeof(float)));
        nint result = pairGrad + (nint)gradBytes;
        bool wantGrad = !scoresGrad.IsEmpty;
        Launch(Kernels.PairwisePairs, new Dim3(1), new Dim3(PairwiseThreads), 0,
            KernelArg.Pointer(pairGrad), KernelArg.Pointer(result), scores, chosen, rejected, weights, margins, pairs, responses,
            (int)options.Type, options.LabelSmoothing, options.Beta, options.CenterCoefficient, options.GradScale, wantGrad ? 1 : 0, ErrorWord());
        if (wantGrad && responses > 0)
        {
            Launch(Kernels.PairwiseScatter, new Dim3(Dim3.Blocks(responses, ElementThreads)), new Dim3(ElementThreads), 0,
                scoresGrad, KernelArg.Pointer(pairGrad), KernelArg.Pointer(result), chosen, rejected, pairs, responses);
        }

        float* r = stackalloc float[PairwiseResultCount];
        ReadBack(r, result, PairwiseResultCount * sizeof(float));
        return new PairwiseLossStatistics(r[0], r[1], r[2], r[3], r[4], r[5], r[6]);
    }

    /// <inheritdoc/>
    protected override PpoStatistics PpoLossesCore(
        Tensor logProbs,
        Tensor oldLogProbs,
        Tensor advantages,
        Tensor mask,
        Tensor values,
        Tensor oldValues,
        Tensor returns,
        Tensor entropy,
        Tensor logProbsGrad,
        Tensor valuesGrad,
        in PpoLossOptions options)
    {
        long n = logProbs.ElementCount;
        if (n == 0)
        {
            return default;
        }

        // The gradients are means over every masked-in token of the batch, so the count partials come first; each block
        // of the main pass sums them itself (in the same fixed pattern), which saves a launch and a round trip.
        var (blocks, perBlock) = ReductionSlices(n);
        long countBytes = Aligned(blocks * sizeof(double));
        long partialBytes = Aligned(blocks * PpoPartialCount * sizeof(double));
        nint counts = Scratch(countBytes + partialBytes + (PpoResultCount * sizeof(float)));
        nint partials = counts + (nint)countBytes;
        nint result = partials + (nint)partialBytes;
        Launch(Kernels.PpoCountPartials, new Dim3((uint)blocks), new Dim3(ElementThreads), 0, KernelArg.Pointer(counts), mask, n, perBlock);
        Launch(Kernels.PpoPartials, new Dim3((uint)blocks), new Dim3(ElementThreads), 0,
            KernelArg.Pointer(partials), KernelArg.Pointer(counts), logProbs, oldLogProbs, advantages, mask, values, oldValues, returns, entropy,
            logProbsGrad, valuesGrad, n, perBlock, 1f - options.ClipRange, 1f + options.ClipRange, options.ValueClipRange,
            options.PolicyGradScale, options.ValueGradScale);
        Launch(Kernels.PpoFold, new Dim3(1), new Dim3(1), 0,
            KernelArg.Pointer(result), KernelArg.Pointer(partials), blocks, values.IsEmpty ? 0 : 1, entropy.IsEmpty ? 0 : 1);
        float* r = stackalloc float[PpoResultCount];
        ReadBack(r, result, PpoResultCount * sizeof(float));
        return new PpoStatistics(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8]);
    }

    /// <inheritdoc/>
    protected override KlRewardStatistics KlShapedRewardsCore(
        Tensor rewards, Tensor kl, Tensor mask, Tensor scores, Tensor endedWithEos, float beta, float missingEosPenalty)
    {
        int b = checked((int)kl.Shape[0]), t = checked((int)kl.Shape[1]);
        if (b == 0)
        {
            return default;
        }

        long partialBytes = Aligned(b * 4L * sizeof(double));
        nint partials = Scratch(partialBytes + (4 * sizeof(float)));
        nint result = partials + (nint)partialBytes;
        Launch(Kernels.KlRewardsRows, new Dim3(Dim3.Blocks(b, RowsPerBlock)), new Dim3(ElementThreads), 0,
            rewards, KernelArg.Pointer(partials), kl, mask, scores, endedWithEos, b, t, beta, missingEosPenalty);
        Launch(Kernels.KlRewardsFold, new Dim3(1), new Dim3(ElementThreads), 0, KernelArg.Pointer(result), KernelArg.Pointer(partials), b);
        float* r = stackalloc float[4];
        ReadBack(r, result, 4 * sizeof(float));
        return new KlRewardStatistics(r[0], r[1], r[2], (int)r[3]);
    }

    /// <summary>
    /// Contiguous slices of a token reduction: at least <see cref="NormMinPerBlock"/> elements each, at most
    /// <see cref="NormBlocks"/> slices. Depends only on <paramref name="n"/>.
    /// </summary>
    internal static (int Blocks, long PerBlock) ReductionSlices(long n)
    {
        long blocks = Math.Clamp((n + NormMinPerBlock - 1) / NormMinPerBlock, 1, NormBlocks);
        long perBlock = (n + blocks - 1) / blocks;
        blocks = (n + perBlock - 1) / perBlock;
        return ((int)blocks, perBlock);
    }

    /// <summary>Copies a few bytes of device results to the host and waits for them (the call's one synchronisation).</summary>
    private void ReadBack(void* destination, nint source, int bytes)
    {
        MakeCurrent();
        api.CopyToHost(destination, source, bytes);
        Synchronize();
    }
}
