using System.Numerics;
using System.Runtime.CompilerServices;
using Engine.Core.Backends;
using Engine.Core.Tensors;
using Tensor = Engine.Core.Tensors.Tensor;

namespace Engine.Core.Cpu;

// Alignment kernels. The token-wise kernels (whitening, PPO, KL rewards) run on fp32 SIMD vectors (Vector<T>) so they
// keep up with memory; their sums stay in fp32 lanes for short blocks and in double beyond (LaneSum). The recurrences
// (GAE) and the per-pair losses are scalar and run in double. Reductions use fixed chunks of ElementChunk elements (or
// one sequence per item), each reduced into its own partial, and the partials are combined in chunk order on the
// calling thread, so every result is the same for any thread count.
public sealed unsafe partial class CpuBackend
{
    /// <summary>Partials combined per pool dispatch (they live on the caller's stack).</summary>
    private const int RlPartialsPerGroup = 256;

    /// <summary>
    /// Largest log-ratio exponentiated: e^88 ≈ 1.7e38 is the last power of e below the fp32 maximum, so ρ stays finite
    /// and A = 0 never meets ρ = ∞ (which would give NaN). Any larger true ratio is beyond fp32 anyway.
    /// </summary>
    private const float MaxLogRatio = 88f;

    /// <summary>Vectors summed in fp32 lanes before the lanes are folded into a double (see <see cref="LaneSum"/>).</summary>
    private const int LaneBlockVectors = 64;

    /// <summary>x where the mask lane is nonzero, else 0, so NaN or ∞ in padding never reaches a result.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector<float> Counted(Vector<float> mask, Vector<float> x) =>
        Vector.ConditionalSelect(Vector.Equals(mask, Vector<float>.Zero), Vector<float>.Zero, x);

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
            double a = (s.Rewards[i] + (s.Gamma * nextValue) - v) + (s.GammaLambda * nextAdvantage);
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
        var count = new LaneSum();
        var sum = new LaneSum();
        int full = n - (n % Vector<float>.Count), i = 0;
        for (; i < full; i += Vector<float>.Count)
        {
            var mv = Vector.Load(m + i);
            var xv = Counted(mv, Vector.Load(x + i));
            count.Add(mv, i);
            sum.Add(mv * xv, i);
        }

        double countTotal = count.Total, sumTotal = sum.Total;
        for (; i < n; i++)
        {
            if (m[i] != 0f)
            {
                countTotal += m[i];
                sumTotal += (double)m[i] * x[i];
            }
        }

        double mean = countTotal > 0 ? sumTotal / countTotal : 0;
        var squares = new LaneSum();
        var center = new Vector<float>((float)mean);
        for (i = 0; i < full; i += Vector<float>.Count)
        {
            var mv = Vector.Load(m + i);
            var d = Counted(mv, Vector.Load(x + i) - center);
            squares.Add(mv * d * d, i);
        }

        double m2 = squares.Total;
        for (; i < n; i++)
        {
            if (m[i] != 0f)
            {
                double d = x[i] - mean;
                m2 += m[i] * d * d;
            }
        }

        s.Partials[index] = new Moments(countTotal, mean, m2);
    }

    private static void WhitenApplyChunk(ref WhitenState s, int index)
    {
        var (start, n) = ChunkRange(s.Length, index);
        float* x = s.X + start, m = s.Mask + start;
        var mean = new Vector<float>(s.Mean);
        var scale = new Vector<float>(s.Scale);
        var shift = new Vector<float>(s.Shift);
        int full = n - (n % Vector<float>.Count), i = 0;
        for (; i < full; i += Vector<float>.Count)
        {
            var mv = Vector.Load(m + i);
            Vector.Store(Counted(mv, ((Vector.Load(x + i) - mean) * scale) + shift), x + i);
        }

        for (; i < n; i++)
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
    internal static (double Loss, double Grad) PairLoss(PairwiseLossType type, double x, double eps, double ipoTarget)
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
            ClipLow = 1f - options.ClipRange, ClipHigh = 1f + options.ClipRange, ValueClip = options.ValueClipRange,
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

        s.PolicyGradFactor = (float)(options.PolicyGradScale / tokens);
        s.ValueGradFactor = (float)(options.ValueGradScale / tokens);
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
        var count = new LaneSum();
        int full = n - (n % Vector<float>.Count), i = 0;
        for (; i < full; i += Vector<float>.Count)
        {
            count.Add(Vector.Load(m + i), i);
        }

        double total = count.Total;
        for (; i < n; i++)
        {
            total += m[i];
        }

        s.Partials[index] = new PpoPartial { Count = total };
    }

    // One chunk of the flat token arrays: losses and statistics into its partial, gradients added in place. Whole
    // vectors run in place; the last partial vector runs on a zero-padded copy (padding has m = 0), so one code path
    // computes every token.
    private static void PpoChunk(ref PpoState s, int index)
    {
        var (start, n) = ChunkRange(s.Length, s.FirstChunk + index);
        int full = n - (n % Vector<float>.Count);
        var at = PpoPointers.At(ref s, start);
        var sums = new PpoSums();
        PpoVectors(ref s, ref sums, at, full);
        int tail = n - full;
        float* scratch = stackalloc float[PpoPointers.Arrays * Vector<float>.Count];
        PpoPointers padded = default;
        if (tail > 0)
        {
            padded = PpoPointers.Pad(at.Offset(full), scratch, tail);
            PpoVectors(ref s, ref sums, padded, Vector<float>.Count, full);
            padded.CopyGradientsTo(at.Offset(full), tail);
        }

        var p = sums.ToPartial();
        if (s.Values is not null && p.Count > 0)
        {
            // Second pass over the chunk (still in cache) for squares about the chunk means: no cancellation.
            double returnMean = sums.ReturnSum.Total / p.Count, residualMean = sums.ResidualSum.Total / p.Count;
            var returnM2 = new LaneSum();
            var residualM2 = new LaneSum();
            PpoSquares(ref returnM2, ref residualM2, at, full, (float)returnMean, (float)residualMean, 0);
            if (tail > 0)
            {
                PpoSquares(ref returnM2, ref residualM2, padded, Vector<float>.Count, (float)returnMean, (float)residualMean, full);
            }

            p.Returns = new Moments(p.Count, returnMean, returnM2.Total);
            p.Residuals = new Moments(p.Count, residualMean, residualM2.Total);
        }

        s.Partials[index] = p;
    }

    // n tokens (a multiple of the vector width) from x; first is the offset of x[0] in its chunk (for block flushes).
    private static void PpoVectors(ref PpoState s, ref PpoSums sums, PpoPointers x, int n, int first = 0)
    {
        var zero = Vector<float>.Zero;
        var low = new Vector<float>(s.ClipLow);
        var high = new Vector<float>(s.ClipHigh);
        var valueClip = new Vector<float>(s.ValueClip);
        var maxLogRatio = new Vector<float>(MaxLogRatio);
        var policyFactor = new Vector<float>(s.PolicyGradFactor);
        var valueFactor = new Vector<float>(s.ValueGradFactor);
        for (int i = 0; i < n; i += Vector<float>.Count)
        {
            int k = first + i;
            var m = Vector.Load(x.Mask + i);
            var counted = ~Vector.Equals(m, zero);
            sums.Count.Add(m, k);
            var logRatio = Vector.ConditionalSelect(counted, Vector.Load(x.LogProbs + i) - Vector.Load(x.OldLogProbs + i), zero);
            var ratio = Vector.Exp(Vector.Min(logRatio, maxLogRatio));
            var a = Vector.ConditionalSelect(counted, Vector.Load(x.Advantages + i), zero);
            var unclipped = -a * ratio;
            var clippedTerm = -a * Vector.Min(Vector.Max(ratio, low), high);
            var clipped = Vector.GreaterThan(clippedTerm, unclipped);
            sums.Policy.Add(m * Vector.ConditionalSelect(clipped, clippedTerm, unclipped), k);
            sums.Clipped.Add(Vector.ConditionalSelect(clipped, m, zero), k);
            sums.SquaredLogRatio.Add(m * logRatio * logRatio, k);
            sums.Ratio.Add(m * ratio, k);
            if (x.LogProbsGrad is not null)
            {
                // d(−A·ρ)/dlogp = −A·ρ; the clipped branch is flat in logp wherever it is the larger one.
                var g = Vector.Load(x.LogProbsGrad + i);
                var update = g + (policyFactor * m * unclipped);
                Vector.Store(Vector.ConditionalSelect(counted & ~clipped, update, g), x.LogProbsGrad + i);
            }

            if (x.Entropy is not null)
            {
                sums.Entropy.Add(m * Counted(m, Vector.Load(x.Entropy + i)), k);
            }

            if (x.Values is not null)
            {
                var v = Counted(m, Vector.Load(x.Values + i));
                var old = Counted(m, Vector.Load(x.OldValues + i));
                var r = Counted(m, Vector.Load(x.Returns + i));
                var vClipped = Vector.Min(Vector.Max(v, old - valueClip), old + valueClip);
                var lossUnclipped = (v - r) * (v - r);
                var lossClipped = (vClipped - r) * (vClipped - r);
                var valueClipped = Vector.GreaterThan(lossClipped, lossUnclipped);
                sums.Value.Add(m * Vector.Max(lossClipped, lossUnclipped), k);
                sums.ValueClipped.Add(Vector.ConditionalSelect(valueClipped, m, zero), k);
                sums.ReturnSum.Add(m * r, k);
                sums.ResidualSum.Add(m * (r - v), k);
                if (x.ValuesGrad is not null)
                {
                    var g = Vector.Load(x.ValuesGrad + i);
                    var update = g + (valueFactor * m * (v - r));
                    Vector.Store(Vector.ConditionalSelect(counted & ~valueClipped, update, g), x.ValuesGrad + i);
                }
            }
        }
    }

    private static void PpoSquares(ref LaneSum returnM2, ref LaneSum residualM2, PpoPointers x, int n, float returnMean, float residualMean, int first)
    {
        var rc = new Vector<float>(returnMean);
        var dc = new Vector<float>(residualMean);
        for (int i = 0; i < n; i += Vector<float>.Count)
        {
            var m = Vector.Load(x.Mask + i);
            var r = Counted(m, Vector.Load(x.Returns + i));
            var v = Counted(m, Vector.Load(x.Values + i));
            var dr = r - rc;
            var dd = r - v - dc;
            returnM2.Add(m * dr * dr, first + i);
            residualM2.Add(m * dd * dd, first + i);
        }
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
        var negBeta = new Vector<float>((float)-s.Beta);
        var klSum = new LaneSum();
        int full = s.T - (s.T % Vector<float>.Count), t = 0;
        for (; t < full; t += Vector<float>.Count)
        {
            var mv = Vector.Load(m + t);
            var kv = Counted(mv, Vector.Load(kl + t));
            Vector.Store(Counted(mv, negBeta * kv), r + t);
            klSum.Add(mv * kv, t);
        }

        double klTotal = klSum.Total;
        for (; t < s.T; t++)
        {
            float kt = m[t] != 0f ? kl[t] : 0f;
            r[t] = m[t] != 0f ? (float)-s.Beta * kt : 0f;
            klTotal += m[t] * (double)kt;
        }

        int last = s.T - 1;
        while (last >= 0 && m[last] == 0f)
        {
            last--;
        }

        if (last < 0)
        {
            s.Partials[index] = default;
            return;
        }

        bool missing = s.Ended is not null && s.Ended[b] == 0;
        double score = s.Scores[b] + (missing ? (double)s.Penalty : 0.0);
        r[last] = (float)(r[last] + score);
        s.Partials[index] = new KlPartial { Present = 1, Kl = klTotal, Score = score, Missing = missing ? 1 : 0 };
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
        public float ClipLow;
        public float ClipHigh;
        public float ValueClip;
        public float PolicyGradFactor;
        public float ValueGradFactor;
    }

    /// <summary>The PPO arrays from one token on; absent tensors stay null.</summary>
    private struct PpoPointers
    {
        public const int Arrays = 10;

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

        public static PpoPointers At(ref PpoState s, long start)
        {
            static float* Add(float* p, long o) => p is null ? null : p + o;
            return new PpoPointers
            {
                LogProbs = Add(s.LogProbs, start), OldLogProbs = Add(s.OldLogProbs, start), Advantages = Add(s.Advantages, start),
                Mask = Add(s.Mask, start), Values = Add(s.Values, start), OldValues = Add(s.OldValues, start), Returns = Add(s.Returns, start),
                Entropy = Add(s.Entropy, start), LogProbsGrad = Add(s.LogProbsGrad, start), ValuesGrad = Add(s.ValuesGrad, start),
            };
        }

        public readonly PpoPointers Offset(int i)
        {
            static float* Add(float* p, int o) => p is null ? null : p + o;
            return new PpoPointers
            {
                LogProbs = Add(LogProbs, i), OldLogProbs = Add(OldLogProbs, i), Advantages = Add(Advantages, i), Mask = Add(Mask, i),
                Values = Add(Values, i), OldValues = Add(OldValues, i), Returns = Add(Returns, i), Entropy = Add(Entropy, i),
                LogProbsGrad = Add(LogProbsGrad, i), ValuesGrad = Add(ValuesGrad, i),
            };
        }

        // A copy of the first n tokens into zeroed scratch of Arrays vectors (mask 0 beyond n).
        public static PpoPointers Pad(PpoPointers x, float* scratch, int n)
        {
            int w = Vector<float>.Count;
            new Span<float>(scratch, Arrays * w).Clear();
            float* Copy(float* p, int slot)
            {
                if (p is null)
                {
                    return null;
                }

                float* d = scratch + (slot * w);
                new ReadOnlySpan<float>(p, n).CopyTo(new Span<float>(d, n));
                return d;
            }

            return new PpoPointers
            {
                LogProbs = Copy(x.LogProbs, 0), OldLogProbs = Copy(x.OldLogProbs, 1), Advantages = Copy(x.Advantages, 2), Mask = Copy(x.Mask, 3),
                Values = Copy(x.Values, 4), OldValues = Copy(x.OldValues, 5), Returns = Copy(x.Returns, 6), Entropy = Copy(x.Entropy, 7),
                LogProbsGrad = Copy(x.LogProbsGrad, 8), ValuesGrad = Copy(x.ValuesGrad, 9),
            };
        }

        public readonly void CopyGradientsTo(PpoPointers x, int n)
        {
            if (LogProbsGrad is not null)
            {
                new ReadOnlySpan<float>(LogProbsGrad, n).CopyTo(new Span<float>(x.LogProbsGrad, n));
            }

            if (ValuesGrad is not null)
            {
                new ReadOnlySpan<float>(ValuesGrad, n).CopyTo(new Span<float>(x.ValuesGrad, n));
            }
        }
    }

    /// <summary>The running sums of one PPO chunk.</summary>
    private struct PpoSums
    {
        public LaneSum Count;
        public LaneSum Policy;
        public LaneSum Clipped;
        public LaneSum SquaredLogRatio;
        public LaneSum Ratio;
        public LaneSum Entropy;
        public LaneSum Value;
        public LaneSum ValueClipped;
        public LaneSum ReturnSum;
        public LaneSum ResidualSum;

        public readonly PpoPartial ToPartial() => new()
        {
            Count = Count.Total, Policy = Policy.Total, Clipped = Clipped.Total, SquaredLogRatio = SquaredLogRatio.Total, Ratio = Ratio.Total,
            Entropy = Entropy.Total, Value = Value.Total, ValueClipped = ValueClipped.Total,
        };
    }

    /// <summary>
    /// A sum kept in fp32 vector lanes for blocks of <see cref="LaneBlockVectors"/> vectors and in double across blocks,
    /// which bounds the fp32 rounding to short runs while the loop stays vectorised.
    /// </summary>
    private struct LaneSum
    {
        private Vector<float> lanes;
        private double total;

        public readonly double Total => total + Vector.Sum(lanes);

        /// <summary>Adds v; <paramref name="offset"/> is the element offset of v in its chunk (it times the flushes).</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public void Add(Vector<float> v, int offset)
        {
            lanes += v;
            if ((((offset / Vector<float>.Count) + 1) % LaneBlockVectors) == 0)
            {
                total += Vector.Sum(lanes);
                lanes = Vector<float>.Zero;
            }
        }
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
