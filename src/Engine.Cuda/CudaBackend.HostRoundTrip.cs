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
