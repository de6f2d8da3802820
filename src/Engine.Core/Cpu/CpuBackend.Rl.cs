using Engine.Core.Backends;
using Engine.Core.Tensors;
using Tensor = Engine.Core.Tensors.Tensor;

namespace Engine.Core.Cpu;

// Alignment kernels. Per-element math runs in double (these kernels are memory-bound, so the wider arithmetic is free
// and keeps extreme inputs such as log-ratios of ±20 or score gaps of 50 accurate). Reductions use fixed chunks of
// ElementChunk elements (or one sequence per item), each reduced into its own partial, and the partials are combined
// in chunk order on the calling thread, so every result is the same for any thread count.
public sealed unsafe partial class CpuBackend
{
    /// <summary>Partials combined per pool dispatch (they live on the caller's stack).</summary>
    private const int RlPartialsPerGroup = 256;

    /// <summary>exp(700) is finite in double; a larger log-ratio changes no fp32-representable result but would give ∞·0.</summary>
    private const double MaxLogRatio = 700.0;

    // ------------------------------------------------------------------ GAE

    /// <inheritdoc/>
    protected override void GeneralizedAdvantageEstimationCore(
        Tensor advantages, Tensor returns, Tensor rewards, Tensor values, Tensor mask, float gamma, float lambda)
    {
        var s = new GaeState
        {
            Advantages = advantages.Pointer<float>(), Returns = returns.Pointer<float>(), Rewards = rewards.Pointer<float>(),
            Values = values.Pointer<float>(), Mask = mask.Pointer<float>(), T = checked((int)rewards.Shape[1]),
            Gamma = gamma, GammaLambda = (double)gamma * lambda,
        };
        pool.For(checked((int)rewards.Shape[0]), ref s, &GaeRow);
    }

    // One sequence: rewards, values, mask, advantages, returns are rows of (B,T); the recurrence runs backwards in double.
    private static void GaeRow(ref GaeState s, int b)
    {
        long row = (long)b * s.T;
        double nextValue = 0, nextAdvantage = 0;
        for (long i = row + s.T - 1; i >= row; i--)
        {
            if (s.Mask[i] == 0f)
            {
                s.Advantages[i] = 0f;
                s.Returns[i] = 0f;
                continue;
            }

            double v = s.Values[i];
            double a = s.Rewards[i] + (s.Gamma * nextValue) - v + (s.GammaLambda * nextAdvantage);
            s.Advantages[i] = (float)a;
            s.Returns[i] = (float)(a + v);
            nextValue = v;
            nextAdvantage = a;
        }
    }

    // ------------------------------------------------------------------ whitening

    /// <inheritdoc/>
    protected override MaskedMoments MaskedWhitenCore(Tensor values, Tensor mask, bool shiftMean, float epsilon)
    {
        long length = values.ElementCount;
        int chunks = ChunkCount(length);
        Moments* partials = stackalloc Moments[RlPartialsPerGroup];
        var s = new WhitenState { X = values.Pointer<float>(), Mask = mask.Pointer<float>(), Length = length, Partials = partials };
        var total = default(Moments);
        for (int group = 0; group < chunks; group += RlPartialsPerGroup)
        {
            int count = Math.Min(RlPartialsPerGroup, chunks - group);
            s.FirstChunk = group;
            pool.For(count, ref s, &WhitenMomentsChunk);
            for (int i = 0; i < count; i++)
            {
                total = Moments.Merge(total, partials[i]);
            }
        }

        // TRL's masked_var with unbiased=True: the masked mean square deviation times n/(n − 1).
        double variance = total.Count > 1 ? total.M2 / (total.Count - 1) : 0;
        s.Mean = (float)total.Mean;
        s.Scale = (float)(1.0 / Math.Sqrt(variance + epsilon));
        s.Shift = shiftMean ? 0f : s.Mean;
        pool.For(chunks, ref s, &WhitenApplyChunk);
        return new MaskedMoments((float)total.Mean, (float)variance, (float)total.Count);
    }

    // Two passes over one chunk (it stays in cache): the weighted sum, then squares about the chunk's own mean.
    private static void WhitenMomentsChunk(ref WhitenState s, int index)
    {
        var (start, n) = ChunkRange(s.Length, s.FirstChunk + index);
        float* x = s.X + start, m = s.Mask + start;
        double count = 0, sum = 0;
        for (int i = 0; i < n; i++)
        {
            if (m[i] != 0f)
            {
                count += m[i];
                sum += (double)m[i] * x[i];
            }
        }

        double mean = count > 0 ? sum / count : 0, m2 = 0;
        for (int i = 0; i < n; i++)
        {
            if (m[i] != 0f)
            {
                double d = x[i] - mean;
                m2 += m[i] * d * d;
            }
        }

        s.Partials[index] = new Moments(count, mean, m2);
    }

    private static void WhitenApplyChunk(ref WhitenState s, int index)
    {
        var (start, n) = ChunkRange(s.Length, index);
        float* x = s.X + start, m = s.Mask + start;
        for (int i = 0; i < n; i++)
        {
            x[i] = m[i] != 0f ? ((x[i] - s.Mean) * s.Scale) + s.Shift : 0f;
        }
    }

    // ------------------------------------------------------------------ pairwise losses

    /// <inheritdoc/>
    protected override PairwiseLossStatistics PairwiseLossCore(
        Tensor scores, Tensor chosen, Tensor rejected, Tensor weights, Tensor margins, Tensor scoresGrad, in PairwiseLossOptions options)
    {
        float* s = scores.Pointer<float>(), w = weights.Pointer<float>(), mu = margins.Pointer<float>(), ds = scoresGrad.Pointer<float>();
        int* c = chosen.Pointer<int>(), l = rejected.Pointer<int>();
        long pairs = chosen.ElementCount, responses = scores.ElementCount;

        // Checked before anything is written, so a bad index leaves the gradient as it was.
        double weightSum = 0;
        for (long p = 0; p < pairs; p++)
        {
            if ((uint)c[p] >= responses || (uint)l[p] >= responses)
            {
                throw new ArgumentOutOfRangeException(
                    nameof(chosen), $"pair {p} = ({c[p]}, {l[p]}) indexes outside the {responses} scores");
            }

            weightSum += w is null ? 1.0 : w[p];
        }

        if (weightSum == 0)
        {
            return default;
        }

        // One ordered pass on the calling thread: P is at most a few thousand, and a serial scatter into dScores is the
        // simplest deterministic one (a response appears in several pairs of a K-wise group).
        double eps = options.LabelSmoothing, target = 1.0 / (2.0 * options.Beta), center = options.CenterCoefficient;
        double gradFactor = options.GradScale / weightSum;
        double loss = 0, penalty = 0, correct = 0, margin = 0, chosenSum = 0, rejectedSum = 0;
        for (long p = 0; p < pairs; p++)
        {
            double wp = w is null ? 1.0 : w[p];
            double sc = s[c[p]], sl = s[l[p]];
            double x = sc - sl - (mu is null ? 0.0 : mu[p]);
            var (lp, dlp) = PairLoss(options.Type, x, eps, target);
            double both = sc + sl;
            loss += wp * lp;
            penalty += wp * both * both;
            correct += x > 0 ? wp : 0;
            margin += wp * (sc - sl);
            chosenSum += wp * sc;
            rejectedSum += wp * sl;
            if (ds is not null)
            {
                double centerGrad = 2.0 * center * both;
                ds[c[p]] += (float)(gradFactor * wp * (dlp + centerGrad));
                ds[l[p]] += (float)(gradFactor * wp * (centerGrad - dlp));
            }
        }

        double centerTerm = center * penalty / weightSum;
        return new PairwiseLossStatistics(
            (float)((loss / weightSum) + centerTerm), (float)centerTerm, (float)(correct / weightSum), (float)(margin / weightSum),
            (float)(chosenSum / weightSum), (float)(rejectedSum / weightSum), (float)weightSum);
    }

    // ℓ(x) and dℓ/dx, finite for every finite x: softplus(z) = max(z, 0) + log1p(e^−|z|) and σ from e^−|x|.
    private static (double Loss, double Grad) PairLoss(PairwiseLossType type, double x, double eps, double ipoTarget)
    {
        switch (type)
        {
            case PairwiseLossType.Sigmoid:
            case PairwiseLossType.Robust:
            {
                // −logσ(x) = softplus(−x), −logσ(−x) = softplus(x); d softplus(−x)/dx = −σ(−x).
                double e = Math.Exp(-Math.Abs(x)), log1p = Math.Log(1.0 + e);
                double softplusNeg = Math.Max(-x, 0) + log1p, softplusPos = Math.Max(x, 0) + log1p;
                double big = 1.0 / (1.0 + e), small = e / (1.0 + e);
                double sigmaPos = x >= 0 ? big : small, sigmaNeg = x >= 0 ? small : big;

                return type == PairwiseLossType.Sigmoid
                    ? (((1 - eps) * softplusNeg) + (eps * softplusPos), (-(1 - eps) * sigmaNeg) + (eps * sigmaPos))
                    : ((((1 - eps) * softplusNeg) - (eps * softplusPos)) / (1 - (2 * eps)), (-((1 - eps) * sigmaNeg) - (eps * sigmaPos)) / (1 - (2 * eps)));
            }

            case PairwiseLossType.Hinge:
                return 1 - x > 0 ? (1 - x, -1.0) : (0.0, 0.0);
            default:
            {
                double d = x - ipoTarget;
                return (d * d, 2 * d);
            }
        }
    }

    // ------------------------------------------------------------------ PPO

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
        long length = logProbs.ElementCount;
        int chunks = ChunkCount(length);
        PpoPartial* partials = stackalloc PpoPartial[RlPartialsPerGroup];
        var s = new PpoState
        {
            LogProbs = logProbs.Pointer<float>(), OldLogProbs = oldLogProbs.Pointer<float>(), Advantages = advantages.Pointer<float>(),
            Mask = mask.Pointer<float>(), Values = values.Pointer<float>(), OldValues = oldValues.Pointer<float>(),
            Returns = returns.Pointer<float>(), Entropy = entropy.Pointer<float>(), LogProbsGrad = logProbsGrad.Pointer<float>(),
            ValuesGrad = valuesGrad.Pointer<float>(), Length = length, Partials = partials,
            ClipLow = 1.0 - options.ClipRange, ClipHigh = 1.0 + options.ClipRange, ValueClip = options.ValueClipRange,
        };

        // The gradients are means over every masked-in token of the batch, so the count comes first.
        double tokens = 0;
        for (int group = 0; group < chunks; group += RlPartialsPerGroup)
        {
            int count = Math.Min(RlPartialsPerGroup, chunks - group);
            s.FirstChunk = group;
            pool.For(count, ref s, &PpoCountChunk);
            for (int i = 0; i < count; i++)
            {
                tokens += partials[i].Count;
            }
        }

        if (tokens == 0)
        {
            return default;
        }

        s.PolicyGradFactor = options.PolicyGradScale / tokens;
        s.ValueGradFactor = options.ValueGradScale / tokens;
        var total = default(PpoPartial);
        for (int group = 0; group < chunks; group += RlPartialsPerGroup)
        {
            int count = Math.Min(RlPartialsPerGroup, chunks - group);
            s.FirstChunk = group;
            pool.For(count, ref s, &PpoChunk);
            for (int i = 0; i < count; i++)
            {
                total = PpoPartial.Merge(total, partials[i]);
            }
        }

        bool withValues = s.Values is not null;
        double ev = withValues && total.Returns.M2 > 0 ? 1.0 - (total.Residuals.M2 / total.Returns.M2) : 0.0;
        return new PpoStatistics(
            (float)(total.Policy / tokens),
            (float)(0.5 * total.Value / tokens),
            (float)(total.Clipped / tokens),
            (float)(0.5 * total.SquaredLogRatio / tokens),
            s.Entropy is null ? 0f : (float)(total.Entropy / tokens),
            (float)ev,
            (float)(total.ValueClipped / tokens),
            (float)(total.Ratio / tokens),
            (float)tokens);
    }

    private static void PpoCountChunk(ref PpoState s, int index)
    {
        var (start, n) = ChunkRange(s.Length, s.FirstChunk + index);
        float* m = s.Mask + start;
        double count = 0;
        for (int i = 0; i < n; i++)
        {
            if (m[i] != 0f)
            {
                count += m[i];
            }
        }

        s.Partials[index] = new PpoPartial { Count = count };
    }

    // One chunk of the flat token arrays: losses and statistics into its partial, gradients added in place.
    private static void PpoChunk(ref PpoState s, int index)
    {
        var (start, n) = ChunkRange(s.Length, s.FirstChunk + index);
        var p = default(PpoPartial);
        double returnSum = 0, residualSum = 0;
        for (long i = start; i < start + n; i++)
        {
            float mf = s.Mask[i];
            if (mf == 0f)
            {
                continue;
            }

            double m = mf;
            p.Count += m;
            double logRatio = (double)s.LogProbs[i] - s.OldLogProbs[i];
            double ratio = Math.Exp(Math.Min(logRatio, MaxLogRatio));
            double a = s.Advantages[i];
            double unclipped = -a * ratio;
            double clippedTerm = -a * Math.Clamp(ratio, s.ClipLow, s.ClipHigh);
            bool clipped = clippedTerm > unclipped;
            p.Policy += m * (clipped ? clippedTerm : unclipped);
            p.Clipped += clipped ? m : 0;
            p.SquaredLogRatio += m * logRatio * logRatio;
            p.Ratio += m * ratio;
            if (s.LogProbsGrad is not null && !clipped)
            {
                // d(−A·ρ)/dlogp = −A·ρ; the clipped branch is flat in logp wherever it is the larger one.
                s.LogProbsGrad[i] += (float)(s.PolicyGradFactor * m * unclipped);
            }

            if (s.Entropy is not null)
            {
                p.Entropy += m * s.Entropy[i];
            }

            if (s.Values is not null)
            {
                double v = s.Values[i], old = s.OldValues[i], r = s.Returns[i];
                double vClipped = Math.Clamp(v, old - s.ValueClip, old + s.ValueClip);
                double lossUnclipped = (v - r) * (v - r), lossClipped = (vClipped - r) * (vClipped - r);
                bool valueClipped = lossClipped > lossUnclipped;
                p.Value += m * (valueClipped ? lossClipped : lossUnclipped);
                p.ValueClipped += valueClipped ? m : 0;
                returnSum += m * r;
                residualSum += m * (r - v);
                if (s.ValuesGrad is not null && !valueClipped)
                {
                    s.ValuesGrad[i] += (float)(s.ValueGradFactor * m * (v - r));
                }
            }
        }

        if (s.Values is not null && p.Count > 0)
        {
            // Second pass over the chunk (still in cache) for squares about the chunk means: no cancellation.
            double returnMean = returnSum / p.Count, residualMean = residualSum / p.Count, returnM2 = 0, residualM2 = 0;
            for (long i = start; i < start + n; i++)
            {
                float mf = s.Mask[i];
                if (mf != 0f)
                {
                    double r = s.Returns[i], dr = r - returnMean, dd = r - s.Values[i] - residualMean;
                    returnM2 += mf * dr * dr;
                    residualM2 += mf * dd * dd;
                }
            }

            p.Returns = new Moments(p.Count, returnMean, returnM2);
            p.Residuals = new Moments(p.Count, residualMean, residualM2);
        }

        s.Partials[index] = p;
    }

    // ------------------------------------------------------------------ KL-shaped rewards

    /// <inheritdoc/>
    protected override KlRewardStatistics KlShapedRewardsCore(
        Tensor rewards, Tensor kl, Tensor mask, Tensor scores, Tensor endedWithEos, float beta, float missingEosPenalty)
    {
        int batch = checked((int)kl.Shape[0]);
        KlPartial* partials = stackalloc KlPartial[RlPartialsPerGroup];
        var s = new KlRewardState
        {
            Rewards = rewards.Pointer<float>(), Kl = kl.Pointer<float>(), Mask = mask.Pointer<float>(), Scores = scores.Pointer<float>(),
            Ended = endedWithEos.Pointer<int>(), T = checked((int)kl.Shape[1]), Beta = beta, Penalty = missingEosPenalty, Partials = partials,
        };
        double sequences = 0, klSum = 0, scoreSum = 0, missing = 0;
        for (int group = 0; group < batch; group += RlPartialsPerGroup)
        {
            int count = Math.Min(RlPartialsPerGroup, batch - group);
            s.FirstRow = group;
            pool.For(count, ref s, &KlRewardRow);
            for (int i = 0; i < count; i++)
            {
                sequences += partials[i].Present;
                klSum += partials[i].Kl;
                scoreSum += partials[i].Score;
                missing += partials[i].Missing;
            }
        }

        return sequences == 0
            ? default
            : new KlRewardStatistics((float)(klSum / sequences), (float)(scoreSum / sequences), (float)(missing / sequences), (int)sequences);
    }

    // One sequence: rewards, kl and mask are rows of (B,T), scores and endedWithEos are (B).
    private static void KlRewardRow(ref KlRewardState s, int index)
    {
        int b = s.FirstRow + index;
        long row = (long)b * s.T;
        float* r = s.Rewards + row, kl = s.Kl + row, m = s.Mask + row;
        int last = -1;
        double klSum = 0;
        for (int t = 0; t < s.T; t++)
        {
            if (m[t] == 0f)
            {
                r[t] = 0f;
                continue;
            }

            r[t] = (float)(-s.Beta * kl[t]);
            klSum += m[t] * (double)kl[t];
            last = t;
        }

        if (last < 0)
        {
            s.Partials[index] = default;
            return;
        }

        bool missing = s.Ended is not null && s.Ended[b] == 0;
        double score = s.Scores[b] + (missing ? (double)s.Penalty : 0.0);
        r[last] = (float)((-s.Beta * kl[last]) + score);
        s.Partials[index] = new KlPartial { Present = 1, Kl = klSum, Score = score, Missing = missing ? 1 : 0 };
    }

    // ------------------------------------------------------------------ state

    /// <summary>Count, mean and sum of squared deviations of a weighted sample; merged exactly (Chan et al.).</summary>
    private readonly struct Moments(double count, double mean, double m2)
    {
        public readonly double Count = count;
        public readonly double Mean = mean;
        public readonly double M2 = m2;

        public static Moments Merge(Moments a, Moments b)
        {
            if (b.Count == 0)
            {
                return a;
            }

            if (a.Count == 0)
            {
                return b;
            }

            double n = a.Count + b.Count, delta = b.Mean - a.Mean;
            return new Moments(n, a.Mean + (delta * b.Count / n), a.M2 + b.M2 + (delta * delta * a.Count * b.Count / n));
        }
    }

    private struct GaeState
    {
        public float* Advantages;
        public float* Returns;
        public float* Rewards;
        public float* Values;
        public float* Mask;
        public int T;
        public double Gamma;
        public double GammaLambda;
    }

    private struct WhitenState
    {
        public float* X;
        public float* Mask;
        public long Length;
        public Moments* Partials;
        public int FirstChunk;
        public float Mean;
        public float Scale;
        public float Shift;
    }

    private struct PpoPartial
    {
        public double Count;
        public double Policy;
        public double Clipped;
        public double SquaredLogRatio;
        public double Ratio;
        public double Entropy;
        public double Value;
        public double ValueClipped;
        public Moments Returns;
        public Moments Residuals;

        public static PpoPartial Merge(PpoPartial a, PpoPartial b) => new()
        {
            Count = a.Count + b.Count, Policy = a.Policy + b.Policy, Clipped = a.Clipped + b.Clipped,
            SquaredLogRatio = a.SquaredLogRatio + b.SquaredLogRatio, Ratio = a.Ratio + b.Ratio, Entropy = a.Entropy + b.Entropy,
            Value = a.Value + b.Value, ValueClipped = a.ValueClipped + b.ValueClipped,
            Returns = Moments.Merge(a.Returns, b.Returns), Residuals = Moments.Merge(a.Residuals, b.Residuals),
        };
    }

    private struct PpoState
    {
        public float* LogProbs;
        public float* OldLogProbs;
        public float* Advantages;
        public float* Mask;
        public float* Values;
        public float* OldValues;
        public float* Returns;
        public float* Entropy;
        public float* LogProbsGrad;
        public float* ValuesGrad;
        public long Length;
        public PpoPartial* Partials;
        public int FirstChunk;
        public double ClipLow;
        public double ClipHigh;
        public double ValueClip;
        public double PolicyGradFactor;
        public double ValueGradFactor;
    }

    private struct KlPartial
    {
        public double Present;
        public double Kl;
        public double Score;
        public double Missing;
    }

    private struct KlRewardState
    {
        public float* Rewards;
        public float* Kl;
        public float* Mask;
        public float* Scores;
        public int* Ended;
        public int T;
        public int FirstRow;
        public double Beta;
        public double Penalty;
        public KlPartial* Partials;
    }
}
