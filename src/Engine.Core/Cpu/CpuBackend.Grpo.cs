using Engine.Core.Backends;
using Tensor = Engine.Core.Tensors.Tensor;

namespace Engine.Core.Cpu;

// The GRPO family's kernels. Per-token work is small next to the model's passes, so both are scalar and in double:
// group advantages on the calling thread, the policy loss one row per work item (a sequence-level ratio needs its whole
// row), with every row's sums kept apart and folded in row order, so every result is the same for any thread count.
public sealed unsafe partial class CpuBackend
{
    /// <summary>Groups whose rewards have a standard deviation at most this are "all equal" (torch.isclose(σ, 0)'s atol).</summary>
    private const double ZeroStd = 1e-8;

    /// <inheritdoc/>
    protected override GroupAdvantageStatistics GroupAdvantagesCore(Tensor advantages, Tensor rewards, int groupSize, in GroupAdvantageOptions options)
    {
        float* r = rewards.Pointer<float>(), a = advantages.Pointer<float>();
        int total = checked((int)rewards.ElementCount), groups = total / groupSize;
        if (total == 0)
        {
            return default;
        }

        double batchStd = StandardDeviation(r, total);
        double rewardSum = 0, stdSum = 0, zero = 0;
        for (int g = 0; g < groups; g++)
        {
            float* x = r + ((long)g * groupSize);
            double sum = 0;
            for (int i = 0; i < groupSize; i++)
            {
                sum += x[i];
            }

            double groupStd = StandardDeviation(x, groupSize);
            double std = options.Scaling == RewardScaling.Batch ? batchStd : groupStd;
            double divisor = options.Scaling == RewardScaling.None ? 1.0 : std + options.Epsilon;
            for (int i = 0; i < groupSize; i++)
            {
                double baseline = options.Baseline == GroupBaseline.GroupMean ? sum / groupSize : (sum - x[i]) / (groupSize - 1);
                a[((long)g * groupSize) + i] = (float)((x[i] - baseline) / divisor);
            }

            rewardSum += sum;
            stdSum += std * groupSize;
            zero += groupStd <= ZeroStd ? 1 : 0;
        }

        return new GroupAdvantageStatistics((float)(rewardSum / total), (float)(stdSum / total), (float)(zero / groups), groups);
    }

    // The unbiased standard deviation of n ≥ 2 values, about their mean (two passes).
    private static double StandardDeviation(float* x, int n)
    {
        double sum = 0;
        for (int i = 0; i < n; i++)
        {
            sum += x[i];
        }

        double mean = sum / n, squares = 0;
        for (int i = 0; i < n; i++)
        {
            double d = x[i] - mean;
            squares += d * d;
        }

        return Math.Sqrt(squares / (n - 1));
    }

    /// <inheritdoc/>
    protected override GrpoStatistics GrpoLossCore(
        Tensor logProbs, Tensor oldLogProbs, Tensor referenceLogProbs, Tensor advantages, Tensor mask, Tensor entropy, Tensor logProbsGrad,
        in GrpoLossOptions options)
    {
        int b = checked((int)logProbs.Shape[0]);
        if (b == 0)
        {
            return default;
        }

        var rows = new GrpoRow[b];
        fixed (GrpoRow* partials = rows)
        {
            var s = new GrpoState
            {
                LogProbs = logProbs.Pointer<float>(), Old = oldLogProbs.Pointer<float>(), Reference = referenceLogProbs.Pointer<float>(),
                Advantages = advantages.Pointer<float>(), Mask = mask.Pointer<float>(), Entropy = entropy.Pointer<float>(),
                Grad = logProbsGrad.Pointer<float>(), T = checked((int)logProbs.Shape[1]), Rows = partials,
                ClipLow = 1.0 - options.EpsilonLow, ClipHigh = 1.0 + options.EpsilonHigh, Beta = options.Beta,
                Sequence = options.Level == ImportanceSamplingLevel.Sequence, GradScale = options.GradScale,
            };
            pool.For(b, ref s, &GrpoRowCount);
            double tokens = 0;
            for (int i = 0; i < b; i++)
            {
                tokens += rows[i].Count;
            }

            if (tokens == 0)
            {
                return default;
            }

            (s.LossType, s.Batch, s.Tokens, s.MaxCompletionLength, s.TokenNormalizer) = (options.LossType, b, tokens, options.MaxCompletionLength, options.TokenNormalizer);
            pool.For(b, ref s, &GrpoRowLoss);
        }

        var sum = default(GrpoRow);
        foreach (var row in rows)
        {
            sum = sum.Add(row);
        }

        double n = sum.Count;
        return new GrpoStatistics(
            (float)sum.Loss, (float)(sum.Kl / n), (float)(sum.Entropy / n), (float)(sum.Low / n), (float)(sum.High / n),
            (float)((sum.Low + sum.High) / n), (float)(sum.Ratio / n), (float)n);
    }

    // Pass 1 of a row: its token count n_b and Σ m·δ (the sequence-level log-ratio's numerator).
    private static void GrpoRowCount(ref GrpoState s, int b)
    {
        long row = (long)b * s.T;
        double count = 0, logRatio = 0;
        for (long i = row; i < row + s.T; i++)
        {
            double m = s.Mask[i];
            if (m != 0)
            {
                count += m;
                logRatio += m * ((double)s.LogProbs[i] - s.Old[i]);
            }
        }

        s.Rows[b] = new GrpoRow { Count = count, LogRatio = logRatio };
    }

    // Pass 2 of a row: the loss, statistics and gradients. At sequence level the gradient of every token goes through
    // s_b, so the row's Σ m·∂ℓ/∂w is summed first and the gradients written in a second walk.
    private static void GrpoRowLoss(ref GrpoState s, int b)
    {
        long row = (long)b * s.T;
        var p = s.Rows[b];
        double n = Math.Max(p.Count, 1.0);
        double kappa = s.LossType switch
        {
            GrpoLossType.Grpo => 1.0 / (s.Batch * n),
            GrpoLossType.Bnpo => 1.0 / Math.Max(s.Tokens, 1.0),
            GrpoLossType.DrGrpo => 1.0 / ((double)s.Batch * s.MaxCompletionLength),
            _ => 1.0 / (s.TokenNormalizer > 0 ? s.TokenNormalizer : Math.Max(s.Tokens, 1.0)),
        };
        double sequenceRatio = Math.Exp(Math.Min(p.LogRatio / n, (double)MaxLogRatio));
        double loss = 0, ratioGrad = 0;
        for (long i = row; i < row + s.T; i++)
        {
            double m = s.Mask[i];
            if (m == 0)
            {
                continue;
            }

            double logp = s.LogProbs[i], a = s.Advantages[i];
            double w = s.Sequence ? sequenceRatio : Math.Exp(Math.Min(logp - s.Old[i], (double)MaxLogRatio));
            double clipped = Math.Clamp(w, s.ClipLow, s.ClipHigh) * a, unclipped = w * a;
            bool isClipped = clipped < unclipped;
            double kl = 0, klGrad = 0;
            if (s.Reference is not null)
            {
                double x = s.Reference[i] - logp, e = Math.Exp(Math.Min(x, (double)MaxLogRatio));
                (kl, klGrad) = (e - x - 1, 1 - e);
            }

            loss += m * (-Math.Min(unclipped, clipped) + (s.Beta * kl));
            ratioGrad += isClipped ? 0 : m * -a;
            p.Kl += m * kl;
            p.Entropy += s.Entropy is null ? 0 : m * s.Entropy[i];
            p.Low += w < s.ClipLow && a < 0 ? m : 0;
            p.High += w > s.ClipHigh && a > 0 ? m : 0;
            p.Ratio += m * w;
            if (s.Grad is not null && !s.Sequence)
            {
                s.Grad[i] += (float)(s.GradScale * kappa * m * ((isClipped ? 0 : -a * w) + (s.Beta * klGrad)));
            }
        }

        if (s.Grad is not null && s.Sequence)
        {
            // ∂s_b/∂logp_t = s_b·m_t/n_b, shared by every token of the row.
            double shared = sequenceRatio * ratioGrad / n;
            for (long i = row; i < row + s.T; i++)
            {
                double m = s.Mask[i];
                if (m != 0)
                {
                    double klGrad = s.Reference is null ? 0 : 1 - Math.Exp(Math.Min(s.Reference[i] - (double)s.LogProbs[i], (double)MaxLogRatio));
                    s.Grad[i] += (float)(s.GradScale * kappa * m * (shared + (s.Beta * klGrad)));
                }
            }
        }

        p.Loss = kappa * loss;
        s.Rows[b] = p;
    }

    private struct GrpoState
    {
        public float* LogProbs;
        public float* Old;
        public float* Reference;
        public float* Advantages;
        public float* Mask;
        public float* Entropy;
        public float* Grad;
        public GrpoRow* Rows;
        public int T;
        public int Batch;
        public int MaxCompletionLength;
        public GrpoLossType LossType;
        public bool Sequence;
        public double ClipLow;
        public double ClipHigh;
        public double Beta;
        public double GradScale;
        public double Tokens;
        public double TokenNormalizer;
    }

    // One row's sums: the token count and Σ m·δ (pass 1), then κ_b·Σ m·ℓ and the Σ m·x of each statistic (pass 2).
    private struct GrpoRow
    {
        public double Count;
        public double LogRatio;
        public double Loss;
        public double Kl;
        public double Entropy;
        public double Low;
        public double High;
        public double Ratio;

        public readonly GrpoRow Add(GrpoRow o) => new()
        {
            Count = Count + o.Count, Loss = Loss + o.Loss, Kl = Kl + o.Kl, Entropy = Entropy + o.Entropy,
            Low = Low + o.Low, High = High + o.High, Ratio = Ratio + o.Ratio,
        };
    }
}
