using Engine.Core.Backends;

namespace Engine.Conformance;

// The GRPO family's kernels: group advantages for every baseline × scaling (with groups whose rewards are all equal),
// and the policy loss for every loss type × ratio level, with and without the k3 KL term. Masked-out inputs hold NaN
// and gradients start random ("adds into" is checked).
public static partial class ConformanceSuite
{
    private static List<ConformanceResult> GroupAdvantages(BackendPair p, int seed)
    {
        var rng = new Random(seed);
        var results = new List<ConformanceResult>();
        foreach (var (groups, g) in new[] { (3, 2), (37, 8), (300, 16) })
        {
            var data = Random(rng, groups * g, -2f, 3f);
            for (int i = 0; i < g; i++)
            {
                data[i] = 1f; // the first group has no signal
            }

            var rewards = p.Upload(data, groups * g);
            foreach (var baseline in Enum.GetValues<GroupBaseline>())
            {
                foreach (var scaling in Enum.GetValues<RewardScaling>())
                {
                    string tag = $"P={groups} G={g} {baseline} {scaling}";
                    var advantages = p.Poisoned(groups * g);
                    var options = new GroupAdvantageOptions(baseline, scaling);
                    var (r, c) = p.Run((be, x) => be.GroupAdvantages(x(advantages), x(rewards), g, options));
                    results.Add(p.Compare($"group advantages {tag}", advantages, Exact));
                    results.AddRange(Statistics($"group advantages {tag}", Reduction, (r.MeanReward, c.MeanReward, "mean reward"),
                        (r.RewardStd, c.RewardStd, "reward std"), (r.ZeroStdFraction, c.ZeroStdFraction, "zero std"), (r.Groups, c.Groups, "groups")));
                }
            }
        }

        return results;
    }

    private static List<ConformanceResult> GrpoLoss(BackendPair p, int seed)
    {
        var rng = new Random(seed);
        var results = new List<ConformanceResult>();
        foreach (var (b, t, beta) in new[] { (4, 13, 0f), (24, 300, 0.04f) })
        {
            int n = b * t;
            var maskData = RaggedMask(rng, b, t);
            var oldLogp = Random(rng, n, -6f, -0.1f);
            var logpData = new float[n];
            for (int i = 0; i < n; i++)
            {
                logpData[i] = oldLogp[i] + (0.6f * ((float)rng.NextDouble() - 0.5f));
            }

            var mask = p.Upload(maskData, b, t);
            var logp = p.Upload(PoisonMasked(logpData, maskData), b, t);
            var old = p.Upload(PoisonMasked(oldLogp, maskData), b, t);
            var reference = beta > 0f ? p.Upload(PoisonMasked(Random(rng, n, -6f, -0.1f), maskData), b, t) : Both.None;
            var advantages = p.Upload(PoisonMasked(Random(rng, n, -2f, 2f), maskData), b, t);
            var entropy = p.Upload(PoisonMasked(Random(rng, n, 0f, 4f), maskData), b, t);
            foreach (var level in Enum.GetValues<ImportanceSamplingLevel>())
            {
                foreach (var type in Enum.GetValues<GrpoLossType>())
                {
                    string tag = $"B={b} T={t} β={beta} {level} {type}";
                    var dlogp = p.Upload(Random(rng, n), b, t);
                    var options = new GrpoLossOptions(0.2f, 0.28f, beta, level, type, t, type == GrpoLossType.Dapo ? 2f * n : 0f, 0.5f);
                    var (r, c) = p.Run((be, x) => be.GrpoLoss(x(logp), x(old), x(reference), x(advantages), x(mask), x(entropy), x(dlogp), options));
                    results.Add(p.Compare($"grpo dlogp {tag}", dlogp, Exact));
                    results.AddRange(Statistics($"grpo {tag}", Reduction, (r.Loss, c.Loss, "loss"), (r.Kl, c.Kl, "kl"), (r.Entropy, c.Entropy, "entropy"),
                        (r.ClipLowFraction, c.ClipLowFraction, "clip low"), (r.ClipHighFraction, c.ClipHighFraction, "clip high"),
                        (r.ClipRegionFraction, c.ClipRegionFraction, "clip region"), (r.RatioMean, c.RatioMean, "ratio"), (r.TokenCount, c.TokenCount, "tokens")));
                }
            }
        }

        return results;
    }
}
