using Engine.Core.Backends;
using Engine.Core.Cpu;
using Engine.Core.Tensors;

namespace Engine.Cuda;

/// <summary>
/// Ops without a CUDA kernel yet run through the host: their tensors are copied to host memory, the CPU backend runs
/// the op, and the tensors are copied back. Correct and synchronous, but slow; used only by ops listed here, each of
/// which gets its own kernel in <c>kernels/</c>.
/// </summary>
public sealed unsafe partial class CudaBackend
{
    private CpuBackend? hostRoundTrip;

    /// <inheritdoc/>
    protected override void GeneralizedAdvantageEstimationCore(
        Tensor advantages, Tensor returns, Tensor rewards, Tensor values, Tensor mask, float gamma, float lambda) =>
        OnHost([advantages, returns, rewards, values, mask], (cpu, h) => cpu.GeneralizedAdvantageEstimation(h[0], h[1], h[2], h[3], h[4], gamma, lambda));

    /// <inheritdoc/>
    protected override MaskedMoments MaskedWhitenCore(Tensor values, Tensor mask, bool shiftMean, float epsilon) =>
        OnHost([values, mask], (cpu, h) => cpu.MaskedWhiten(h[0], h[1], shiftMean, epsilon));

    /// <inheritdoc/>
    protected override PairwiseLossStatistics PairwiseLossCore(
        Tensor scores, Tensor chosen, Tensor rejected, Tensor weights, Tensor margins, Tensor scoresGrad, in PairwiseLossOptions options)
    {
        var o = options;
        return OnHost([scores, chosen, rejected, weights, margins, scoresGrad], (cpu, h) => cpu.PairwiseLoss(h[0], h[1], h[2], h[3], h[4], h[5], o));
    }

    /// <inheritdoc/>
    protected override PpoStatistics PpoLossesCore(
        Tensor logProbs, Tensor oldLogProbs, Tensor advantages, Tensor mask, Tensor values, Tensor oldValues, Tensor returns, Tensor entropy,
        Tensor logProbsGrad, Tensor valuesGrad, in PpoLossOptions options)
    {
        var o = options;
        return OnHost(
            [logProbs, oldLogProbs, advantages, mask, values, oldValues, returns, entropy, logProbsGrad, valuesGrad],
            (cpu, h) => cpu.PpoLosses(h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7], h[8], h[9], o));
    }

    /// <inheritdoc/>
    protected override KlRewardStatistics KlShapedRewardsCore(
        Tensor rewards, Tensor kl, Tensor mask, Tensor scores, Tensor endedWithEos, float beta, float missingEosPenalty) =>
        OnHost([rewards, kl, mask, scores, endedWithEos], (cpu, h) => cpu.KlShapedRewards(h[0], h[1], h[2], h[3], h[4], beta, missingEosPenalty));

    /// <inheritdoc/>
    protected override void TokenLogProbsForwardCore(in TokenLogProbOutputs outputs, Tensor hidden, Tensor weight, in TokenLogProbInputs inputs)
    {
        var (o, i) = (outputs, inputs);
        OnHost(
            [o.LogProbs, o.RowStats, o.Entropy, o.Kl, hidden, weight, i.Targets, i.Mask, i.ReferenceLogProbs],
            (cpu, h) => cpu.TokenLogProbsForward(Outputs(h, 0), h[4], h[5], Inputs(h, 6, i.Temperature)));
    }

    /// <inheritdoc/>
    protected override void TokenLogProbsBackwardCore(
        Tensor hiddenGrad, Tensor weightGrad, in TokenLogProbGrads grads, Tensor hidden, Tensor weight, Tensor rowStats, in TokenLogProbInputs inputs)
    {
        var (g, i) = (grads, inputs);
        OnHost(
            [hiddenGrad, weightGrad, g.LogProbs, g.Entropy, g.Kl, hidden, weight, rowStats, i.Targets, i.Mask, i.ReferenceLogProbs],
            (cpu, h) => cpu.TokenLogProbsBackward(h[0], h[1], new TokenLogProbGrads(h[2], h[3], h[4]), h[5], h[6], h[7], Inputs(h, 8, i.Temperature)));
    }

    /// <inheritdoc/>
    protected override void TokenLogProbsForwardBackwardCore(
        in TokenLogProbOutputs outputs, Tensor hiddenGrad, Tensor weightGrad, in TokenLogProbGrads grads, Tensor hidden, Tensor weight,
        in TokenLogProbInputs inputs)
    {
        var (o, g, i) = (outputs, grads, inputs);
        OnHost(
            [o.LogProbs, o.RowStats, o.Entropy, o.Kl, hiddenGrad, weightGrad, g.LogProbs, g.Entropy, g.Kl, hidden, weight, i.Targets, i.Mask, i.ReferenceLogProbs],
            (cpu, h) => cpu.TokenLogProbsForwardBackward(
                Outputs(h, 0), h[4], h[5], new TokenLogProbGrads(h[6], h[7], h[8]), h[9], h[10], Inputs(h, 11, i.Temperature)));
    }

    /// <inheritdoc/>
    protected override void TokenLogProbsFromLogitsForwardCore(in TokenLogProbOutputs outputs, Tensor logits, in TokenLogProbInputs inputs)
    {
        var (o, i) = (outputs, inputs);
        OnHost(
            [o.LogProbs, o.RowStats, o.Entropy, o.Kl, logits, i.Targets, i.Mask, i.ReferenceLogProbs],
            (cpu, h) => cpu.TokenLogProbsFromLogitsForward(Outputs(h, 0), h[4], Inputs(h, 5, i.Temperature)));
    }

    /// <inheritdoc/>
    protected override void TokenLogProbsFromLogitsBackwardCore(
        Tensor logitsGrad, in TokenLogProbGrads grads, Tensor logits, Tensor rowStats, in TokenLogProbInputs inputs)
    {
        var (g, i) = (grads, inputs);
        OnHost(
            [logitsGrad, g.LogProbs, g.Entropy, g.Kl, logits, rowStats, i.Targets, i.Mask, i.ReferenceLogProbs],
            (cpu, h) => cpu.TokenLogProbsFromLogitsBackward(h[0], new TokenLogProbGrads(h[1], h[2], h[3]), h[4], h[5], Inputs(h, 6, i.Temperature)));
    }

    /// <inheritdoc/>
    protected override void SequenceSumCore(Tensor output, Tensor values, Tensor mask, bool mean) =>
        OnHost([output, values, mask], (cpu, h) => cpu.SequenceSum(h[0], h[1], h[2], mean));

    /// <inheritdoc/>
    protected override void SequenceSumBackwardCore(Tensor valuesGrad, Tensor outputGrad, Tensor mask, bool mean) =>
        OnHost([valuesGrad, outputGrad, mask], (cpu, h) => cpu.SequenceSumBackward(h[0], h[1], h[2], mean));

    private static TokenLogProbOutputs Outputs(Tensor[] h, int at) => new(h[at], h[at + 1], h[at + 2], h[at + 3]);

    private static TokenLogProbInputs Inputs(Tensor[] h, int at, float temperature) => new(h[at], h[at + 1], h[at + 2], temperature);

    private void OnHost(Tensor[] device, Action<CpuBackend, Tensor[]> op) => OnHost(device, (cpu, h) =>
    {
        op(cpu, h);
        return 0;
    });

    // Copies every non-empty tensor to host memory, runs the op there and copies every tensor back (inputs too: they
    // are unchanged, and copying all keeps the in-place and accumulate-into-gradient semantics without per-op lists).
    private TResult OnHost<TResult>(Tensor[] device, Func<CpuBackend, Tensor[], TResult> op)
    {
        var cpu = hostRoundTrip ??= new CpuBackend();
        var host = new Tensor[device.Length];
        try
        {
            for (int i = 0; i < device.Length; i++)
            {
                if (device[i].IsEmpty)
                {
                    continue;
                }

                var dims = new long[device[i].Shape.Rank];
                for (int d = 0; d < dims.Length; d++)
                {
                    dims[d] = device[i].Shape[d];
                }

                host[i] = cpu.AllocateTensor(device[i].DType, dims);
                CopyToHostCore(device[i], new Span<byte>((void*)host[i].Address, checked((int)host[i].ByteLength)));
            }

            var result = op(cpu, host);
            for (int i = 0; i < device.Length; i++)
            {
                if (!host[i].IsEmpty)
                {
                    CopyFromHostCore(device[i], new ReadOnlySpan<byte>((void*)host[i].Address, checked((int)host[i].ByteLength)));
                }
            }

            return result;
        }
        finally
        {
            foreach (var t in host)
            {
                t.Buffer?.Dispose();
            }
        }
    }
}
