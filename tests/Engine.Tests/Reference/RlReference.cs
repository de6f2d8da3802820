using Engine.Core.Backends;

namespace Engine.Tests.Reference;

/// <summary>
/// Plain double-precision definitions of the alignment kernels, written for reading: whole-batch loops, no chunks, no
/// threads. Positions with m = 0 are skipped entirely. Gradients are returned alone (tests add what the gradient held).
/// </summary>
public static class RlReference
{
    /// <summary>GAE over rows of (B,T): each row's response positions, walked from the last (after it V = A = 0).</summary>
    public static (double[] Advantages, double[] Returns) Gae(float[] rewards, float[] values, float[] mask, int b, int t, double gamma, double lambda)
    {
        var adv = new double[b * t];
        var ret = new double[b * t];
        for (int row = 0; row < b; row++)
        {
            var positions = Enumerable.Range(row * t, t).Where(i => mask[i] != 0f).ToArray();
            double nextValue = 0, nextAdvantage = 0;
            for (int k = positions.Length - 1; k >= 0; k--)
            {
                int i = positions[k];
                double delta = rewards[i] + (gamma * nextValue) - values[i];
                adv[i] = delta + (gamma * lambda * nextAdvantage);
                ret[i] = adv[i] + values[i];
                nextValue = values[i];
                nextAdvantage = adv[i];
            }
        }

        return (adv, ret);
    }

    /// <summary>TRL's masked_whiten (unbiased variance; 0 with fewer than two tokens), masked-out positions set to 0.</summary>
    public static (double[] Out, double Mean, double Variance, double Count) Whiten(float[] x, float[] mask, bool shiftMean, double epsilon = 1e-8f)
    {
        double count = 0, sum = 0;
        for (int i = 0; i < x.Length; i++)
        {
            if (mask[i] != 0f)
            {
                count += mask[i];
                sum += mask[i] * (double)x[i];
            }
        }

        double mean = count > 0 ? sum / count : 0, m2 = 0;
        for (int i = 0; i < x.Length; i++)
        {
            if (mask[i] != 0f)
            {
                m2 += mask[i] * (x[i] - mean) * (x[i] - mean);
            }
        }

        double variance = count > 1 ? m2 / (count - 1) : 0;
        double scale = 1 / Math.Sqrt(variance + epsilon);
        var y = new double[x.Length];
        for (int i = 0; i < x.Length; i++)
        {
            y[i] = mask[i] != 0f ? ((x[i] - mean) * scale) + (shiftMean ? 0 : mean) : 0;
        }

        return (y, mean, variance, count);
    }

    /// <summary>log σ(x), stable for any finite x.</summary>
    public static double LogSigmoid(double x) => x >= 0 ? -Math.Log(1 + Math.Exp(-x)) : x - Math.Log(1 + Math.Exp(x));

    /// <summary>σ(x).</summary>
    public static double Sigmoid(double x) => x >= 0 ? 1 / (1 + Math.Exp(-x)) : Math.Exp(x) / (1 + Math.Exp(x));

    /// <summary>Per-pair loss ℓ(x) and dℓ/dx.</summary>
    public static (double Loss, double Grad) PairLoss(PairwiseLossOptions o, double x)
    {
        double eps = o.LabelSmoothing;
        return o.Type switch
        {
            PairwiseLossType.Sigmoid => ((-(1 - eps) * LogSigmoid(x)) - (eps * LogSigmoid(-x)), (-(1 - eps) * Sigmoid(-x)) + (eps * Sigmoid(x))),
            PairwiseLossType.Robust => (
                ((-(1 - eps) * LogSigmoid(x)) + (eps * LogSigmoid(-x))) / (1 - (2 * eps)),
                ((-(1 - eps) * Sigmoid(-x)) - (eps * Sigmoid(x))) / (1 - (2 * eps))),
            PairwiseLossType.Hinge => (Math.Max(0, 1 - x), 1 - x > 0 ? -1 : 0),
            _ => (Math.Pow(x - (1 / (2.0 * o.Beta)), 2), 2 * (x - (1 / (2.0 * o.Beta)))),
        };
    }

    /// <summary>Result of <see cref="Pairwise"/>: the statistics in the kernel's order, and ∂L/∂s (GradScale applied).</summary>
    public sealed record PairwiseResult(double Loss, double Center, double Accuracy, double Margin, double Chosen, double Rejected, double WeightSum, double[] Grad);

    /// <summary>Weighted pairwise loss with optional centring term; every mean is Σ w·x / Σ w.</summary>
    public static PairwiseResult Pairwise(float[] s, int[] c, int[] l, float[]? w, float[]? mu, PairwiseLossOptions o)
    {
        int pairs = c.Length;
        double wsum = 0;
        for (int p = 0; p < pairs; p++)
        {
            wsum += w?[p] ?? 1.0;
        }

        var grad = new double[s.Length];
        if (wsum == 0)
        {
            return new PairwiseResult(0, 0, 0, 0, 0, 0, 0, grad);
        }

        double loss = 0, center = 0, acc = 0, margin = 0, chosen = 0, rejected = 0;
        for (int p = 0; p < pairs; p++)
        {
            double wp = w?[p] ?? 1.0, sc = s[c[p]], sl = s[l[p]];
            double x = sc - sl - (mu?[p] ?? 0.0);
            var (lp, dlp) = PairLoss(o, x);
            loss += wp * lp / wsum;
            center += o.CenterCoefficient * wp * (sc + sl) * (sc + sl) / wsum;
            acc += x > 0 ? wp / wsum : 0;
            margin += wp * (sc - sl) / wsum;
            chosen += wp * sc / wsum;
            rejected += wp * sl / wsum;
            double dCenter = 2 * o.CenterCoefficient * (sc + sl);
            grad[c[p]] += o.GradScale * wp / wsum * (dlp + dCenter);
            grad[l[p]] += o.GradScale * wp / wsum * (dCenter - dlp);
        }

        return new PairwiseResult(loss + center, center, acc, margin, chosen, rejected, wsum, grad);
    }

    /// <summary>Result of <see cref="Ppo"/>: the statistics in the kernel's order, and both gradients (scales applied).</summary>
    public sealed record PpoResult(
        double PolicyLoss, double ValueLoss, double ClipFraction, double ApproxKl, double Entropy, double ExplainedVariance,
        double ValueClipFraction, double RatioMean, double TokenCount, double[] LogProbsGrad, double[] ValuesGrad);

    /// <summary>PPO clipped losses over N tokens; values/oldValues/returns null for policy-only, entropy optional.</summary>
    public static PpoResult Ppo(
        float[] logp, float[] oldLogp, float[] adv, float[] mask, float[]? values, float[]? oldValues, float[]? returns, float[]? entropy, PpoLossOptions o)
    {
        int n = logp.Length;
        var dlogp = new double[n];
        var dv = new double[n];
        double count = 0;
        for (int i = 0; i < n; i++)
        {
            count += mask[i] != 0f ? mask[i] : 0;
        }

        if (count == 0)
        {
            return new PpoResult(0, 0, 0, 0, 0, 0, 0, 0, 0, dlogp, dv);
        }

        double pol = 0, clip = 0, kl = 0, ent = 0, vl = 0, vclip = 0, ratioSum = 0, rSum = 0, dSum = 0;
        for (int i = 0; i < n; i++)
        {
            if (mask[i] == 0f)
            {
                continue;
            }

            double m = mask[i];
            double lr = (double)logp[i] - oldLogp[i], ratio = Math.Exp(lr), a = adv[i];
            double u = -a * ratio, cl = -a * Math.Clamp(ratio, 1 - (double)o.ClipRange, 1 + (double)o.ClipRange);
            pol += m * Math.Max(u, cl);
            clip += cl > u ? m : 0;
            dlogp[i] = cl > u ? 0 : o.PolicyGradScale * m * u / count;
            kl += m * lr * lr;
            ratioSum += m * ratio;
            ent += entropy is null ? 0 : m * entropy[i];
            if (values is not null)
            {
                double v = values[i], r = returns![i], vo = oldValues![i];
                double vc = Math.Clamp(v, vo - o.ValueClipRange, vo + o.ValueClipRange);
                double l1 = (v - r) * (v - r), l2 = (vc - r) * (vc - r);
                vl += m * Math.Max(l1, l2);
                vclip += l2 > l1 ? m : 0;
                dv[i] = l2 > l1 ? 0 : o.ValueGradScale * m * (v - r) / count;
                rSum += m * r;
                dSum += m * (r - v);
            }
        }

        double ev = 0;
        if (values is not null)
        {
            double rMean = rSum / count, dMean = dSum / count, rVar = 0, dVar = 0;
            for (int i = 0; i < n; i++)
            {
                if (mask[i] != 0f)
                {
                    rVar += mask[i] * Math.Pow(returns![i] - rMean, 2);
                    dVar += mask[i] * Math.Pow(returns![i] - values[i] - dMean, 2);
                }
            }

            ev = rVar > 0 ? 1 - (dVar / rVar) : 0;
        }

        return new PpoResult(
            pol / count, 0.5 * vl / count, clip / count, 0.5 * kl / count, ent / count, ev, vclip / count, ratioSum / count, count, dlogp, dv);
    }

    /// <summary>KL-shaped rewards over (B,T) and their statistics over sequences that have a response token.</summary>
    public static (double[] Rewards, double MeanKl, double MeanScore, double MissingFraction, int Sequences) KlRewards(
        float[] kl, float[] mask, float[] scores, int[]? ended, int b, int t, double beta, double penalty)
    {
        var r = new double[b * t];
        double klSum = 0, scoreSum = 0, missing = 0;
        int sequences = 0;
        for (int row = 0; row < b; row++)
        {
            int last = -1;
            double seqKl = 0;
            for (int k = 0; k < t; k++)
            {
                int i = (row * t) + k;
                if (mask[i] != 0f)
                {
                    r[i] = -beta * kl[i];
                    seqKl += mask[i] * kl[i];
                    last = i;
                }
            }

            if (last < 0)
            {
                continue;
            }

            bool miss = ended is not null && ended[row] == 0;
            double score = scores[row] + (miss ? penalty : 0);
            r[last] += score;
            sequences++;
            klSum += seqKl;
            scoreSum += score;
            missing += miss ? 1 : 0;
        }

        return sequences == 0 ? (r, 0, 0, 0, 0) : (r, klSum / sequences, scoreSum / sequences, missing / sequences, sequences);
    }
}
