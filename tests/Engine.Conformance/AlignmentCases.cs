using Engine.Core.Backends;
using Engine.Core.Tensors;

namespace Engine.Conformance;

// The alignment kernels: token log-probs (head and from-logits, forward, backward, fused), sequence sums, GAE, masked
// whitening, pairwise losses, PPO losses and KL-shaped rewards. Masked-out inputs hold NaN, so a kernel that reads
// padding fails; outputs start as NaN and gradients as random values ("adds into" is checked); the scalar statistics
// are compared one by one.
public static partial class ConformanceSuite
{
    /// <summary>Absolute floor of the scalar statistics' relative error (fractions and means that may be 0).</summary>
    private const double StatisticFloor = 1e-3;

    private static List<ConformanceResult> TokenLogProbs(BackendPair p, int seed)
    {
        var rng = new Random(seed);
        var results = new List<ConformanceResult>();

        // Narrow and wide vocabularies (the CUDA row kernels switch block size at 4096), τ ≠ 1, masked and ignored rows.
        foreach (var (n, c, v, tau) in new[] { (37, 24, 100, 1f), (70, 48, 1000, 0.7f), (9, 16, 5000, 1.3f) })
        {
            string tag = $"N={n} C={c} V={v} τ={tau}";
            var hidden = p.Upload(Random(rng, n * c, -2f, 2f), n, c);
            var weight = p.Upload(Random(rng, v * c, -2f / MathF.Sqrt(c), 2f / MathF.Sqrt(c)), v, c);
            var (targets, mask, reference) = LogProbInputs(p, rng, n, v);
            var inputs = (targets, mask, reference, tau);

            var logp = p.Poisoned(n);
            var rowStats = p.Poisoned(n, 2);
            var entropy = p.Poisoned(n);
            var kl = p.Poisoned(n, 3);
            p.Run((be, x) => be.TokenLogProbsForward(new(x(logp), x(rowStats), x(entropy), x(kl)), x(hidden), x(weight), In(x, inputs)));
            results.Add(p.Compare($"logprobs forward logp {tag}", logp, Long));
            results.Add(p.Compare($"logprobs forward row stats {tag}", rowStats, Long));
            results.Add(p.Compare($"logprobs forward entropy {tag}", entropy, Long));
            results.Add(p.Compare($"logprobs forward kl {tag}", kl, Long));

            var gLogp = p.Upload(Random(rng, n), n);
            var gEntropy = p.Upload(Random(rng, n), n);
            var gKl = p.Upload(Random(rng, n * 3), n, 3);
            var dh = p.Upload(Random(rng, n * c), n, c);
            var dw = p.Upload(Random(rng, v * c), v, c);
            p.Run((be, x) => be.TokenLogProbsBackward(x(dh), x(dw), new(x(gLogp), x(gEntropy), x(gKl)), x(hidden), x(weight), x(rowStats), In(x, inputs)));
            results.Add(p.Compare($"logprobs backward dh {tag}", dh, Long));
            results.Add(p.Compare($"logprobs backward dW {tag}", dw, Long));

            // A frozen head (no dW) with only the log-prob gradient.
            p.Run((be, x) => be.TokenLogProbsBackward(x(dh), default, new(x(gLogp)), x(hidden), x(weight), x(rowStats), In(x, inputs)));
            results.Add(p.Compare($"logprobs backward dh only {tag}", dh, Long));

            var fusedLogp = p.Poisoned(n);
            var fusedEntropy = p.Poisoned(n);
            var fusedKl = p.Poisoned(n, 3);
            var fusedDh = p.Upload(Random(rng, n * c), n, c);
            var fusedDw = p.Upload(Random(rng, v * c), v, c);
            p.Run((be, x) => be.TokenLogProbsForwardBackward(
                new(x(fusedLogp), default, x(fusedEntropy), x(fusedKl)), x(fusedDh), x(fusedDw), new(x(gLogp), x(gEntropy), x(gKl)),
                x(hidden), x(weight), In(x, inputs)));
            results.Add(p.Compare($"logprobs fused logp {tag}", fusedLogp, Long));
            results.Add(p.Compare($"logprobs fused entropy {tag}", fusedEntropy, Long));
            results.Add(p.Compare($"logprobs fused kl {tag}", fusedKl, Long));
            results.Add(p.Compare($"logprobs fused dh {tag}", fusedDh, Long));
            results.Add(p.Compare($"logprobs fused dW {tag}", fusedDw, Long));
        }

        return results;
    }

    private static List<ConformanceResult> TokenLogProbsFromLogits(BackendPair p, int seed)
    {
        var rng = new Random(seed);
        var results = new List<ConformanceResult>();
        foreach (var (n, v, tau) in new[] { (45, 1000, 1f), (7, 9000, 0.8f) })
        {
            string tag = $"N={n} V={v} τ={tau}";
            var logits = p.Upload(Random(rng, n * v, -8f, 8f), n, v);
            var (targets, mask, reference) = LogProbInputs(p, rng, n, v);
            var inputs = (targets, mask, reference, tau);
            var logp = p.Poisoned(n);
            var rowStats = p.Poisoned(n, 2);
            var entropy = p.Poisoned(n);
            var kl = p.Poisoned(n, 3);
            p.Run((be, x) => be.TokenLogProbsFromLogitsForward(new(x(logp), x(rowStats), x(entropy), x(kl)), x(logits), In(x, inputs)));
            results.Add(p.Compare($"from-logits logp {tag}", logp, Reduction));
            results.Add(p.Compare($"from-logits row stats {tag}", rowStats, Reduction));
            results.Add(p.Compare($"from-logits entropy {tag}", entropy, Reduction));
            results.Add(p.Compare($"from-logits kl {tag}", kl, Reduction));

            var dlogits = p.Upload(Random(rng, n * v), n, v);
            var gLogp = p.Upload(Random(rng, n), n);
            var gEntropy = p.Upload(Random(rng, n), n);
            var gKl = p.Upload(Random(rng, n * 3), n, 3);
            p.Run((be, x) => be.TokenLogProbsFromLogitsBackward(x(dlogits), new(x(gLogp), x(gEntropy), x(gKl)), x(logits), x(rowStats), In(x, inputs)));
            results.Add(p.Compare($"from-logits dlogits {tag}", dlogits, Reduction));
        }

        return results;
    }

    private static List<ConformanceResult> SequenceSum(BackendPair p, int seed)
    {
        var rng = new Random(seed);
        var results = new List<ConformanceResult>();
        const int b = 9, t = 70;
        var maskData = RaggedMask(rng, b, t);
        var mask = p.Upload(maskData, b, t);
        var values = p.Upload(PoisonMasked(Random(rng, b * t, -3f, 3f), maskData), b, t);
        var dense = p.Upload(Random(rng, b * t, -3f, 3f), b, t);
        foreach (bool mean in new[] { false, true })
        {
            var output = p.Poisoned(b);
            p.Run((be, x) => be.SequenceSum(x(output), x(values), x(mask), mean));
            results.Add(p.Compare($"sequence sum mean={mean}", output, Reduction));

            var unmasked = p.Poisoned(b);
            p.Run((be, x) => be.SequenceSum(x(unmasked), x(dense), default, mean));
            results.Add(p.Compare($"sequence sum no mask mean={mean}", unmasked, Reduction));

            var g = p.Upload(Random(rng, b), b);
            var dv = p.Upload(Random(rng, b * t), b, t);
            p.Run((be, x) => be.SequenceSumBackward(x(dv), x(g), x(mask), mean));
            results.Add(p.Compare($"sequence sum backward mean={mean}", dv, Exact));
            p.Run((be, x) => be.SequenceSumBackward(x(dv), x(g), default, mean));
            results.Add(p.Compare($"sequence sum backward no mask mean={mean}", dv, Exact));
        }

        return results;
    }

    private static List<ConformanceResult> Gae(BackendPair p, int seed)
    {
        var rng = new Random(seed);
        var results = new List<ConformanceResult>();
        foreach (var (b, t, gamma, lambda) in new[] { (7, 33, 1f, 0.95f), (40, 129, 0.99f, 0.9f) })
        {
            var maskData = RaggedMask(rng, b, t);
            var mask = p.Upload(maskData, b, t);
            var rewards = p.Upload(PoisonMasked(Random(rng, b * t, -1f, 1f), maskData), b, t);
            var values = p.Upload(PoisonMasked(Random(rng, b * t, -2f, 2f), maskData), b, t);
            var advantages = p.Poisoned(b, t);
            var returns = p.Poisoned(b, t);
            p.Run((be, x) => be.GeneralizedAdvantageEstimation(x(advantages), x(returns), x(rewards), x(values), x(mask), gamma, lambda));
            results.Add(p.Compare($"gae advantages B={b} T={t}", advantages, Exact));
            results.Add(p.Compare($"gae returns B={b} T={t}", returns, Exact));
        }

        return results;
    }

    private static List<ConformanceResult> MaskedWhiten(BackendPair p, int seed)
    {
        var rng = new Random(seed);
        var results = new List<ConformanceResult>();

        // One token, a short ragged batch, and enough tokens for many reduction slices.
        foreach (var (b, t) in new[] { (2, 1), (13, 57), (64, 1601) })
        {
            var maskData = RaggedMask(rng, b, t);
            if (b * t == 2)
            {
                maskData = [0f, 1f];
            }

            var mask = p.Upload(maskData, b, t);
            foreach (bool shiftMean in new[] { true, false })
            {
                var values = p.Upload(PoisonMasked(Random(rng, b * t, -2f, 5f), maskData), b, t);
                var (r, c) = p.Run((be, x) => be.MaskedWhiten(x(values), x(mask), shiftMean));
                string tag = $"B={b} T={t} shift={shiftMean}";
                results.Add(p.Compare($"whiten values {tag}", values, Reduction));
                results.Add(BackendPair.CompareScalar($"whiten mean {tag}", r.Mean, c.Mean, Reduction, StatisticFloor));
                results.Add(BackendPair.CompareScalar($"whiten variance {tag}", r.Variance, c.Variance, Reduction, StatisticFloor));
                results.Add(BackendPair.CompareScalar($"whiten count {tag}", r.Count, c.Count, 0));
            }
        }

        return results;
    }

    private static List<ConformanceResult> PairwiseLoss(BackendPair p, int seed)
    {
        var rng = new Random(seed);
        var results = new List<ConformanceResult>();

        // Responses appear in several pairs (K-wise groups), some on both sides, so the gradient gather adds many terms.
        const int responses = 40, pairs = 90;
        var chosenIds = new int[pairs];
        var rejectedIds = new int[pairs];
        for (int i = 0; i < pairs; i++)
        {
            chosenIds[i] = rng.Next(responses);
            rejectedIds[i] = rng.Next(responses);
        }

        var scores = p.Upload(Random(rng, responses, -3f, 3f), responses);
        var chosen = p.Upload(chosenIds, pairs);
        var rejected = p.Upload(rejectedIds, pairs);
        var weights = p.Upload(Random(rng, pairs, 0f, 1f), pairs);
        var margins = p.Upload(Random(rng, pairs, 0f, 0.5f), pairs);
        var cases = new (string Tag, PairwiseLossOptions Options, bool Weighted)[]
        {
            ("sigmoid", new PairwiseLossOptions(), false),
            ("sigmoid ε=0.1 centred", new PairwiseLossOptions(PairwiseLossType.Sigmoid, 0.1f, CenterCoefficient: 0.01f, GradScale: 0.5f), true),
            ("robust ε=0.2", new PairwiseLossOptions(PairwiseLossType.Robust, 0.2f), true),
            ("hinge", new PairwiseLossOptions(PairwiseLossType.Hinge), true),
            ("ipo β=0.5", new PairwiseLossOptions(PairwiseLossType.Ipo, Beta: 0.5f), false),
        };
        foreach (var (tag, options, weighted) in cases)
        {
            var w = weighted ? weights : Both.None;
            var mu = weighted ? margins : Both.None;
            var grad = p.Upload(Random(rng, responses), responses);
            var (r, c) = p.Run((be, x) => be.PairwiseLoss(x(scores), x(chosen), x(rejected), x(w), x(mu), x(grad), options));
            results.Add(p.Compare($"pairwise {tag} dscores", grad, Reduction));
            results.AddRange(Statistics($"pairwise {tag}", Reduction, (r.Loss, c.Loss, "loss"), (r.CenterPenalty, c.CenterPenalty, "centre"),
                (r.Accuracy, c.Accuracy, "accuracy"), (r.Margin, c.Margin, "margin"), (r.ChosenScore, c.ChosenScore, "chosen"),
                (r.RejectedScore, c.RejectedScore, "rejected"), (r.WeightSum, c.WeightSum, "weight sum")));
        }

        // Statistics only (no gradient asked for).
        var (rs, cs) = p.Run((be, x) => be.PairwiseLoss(x(scores), x(chosen), x(rejected), default, default, default, new PairwiseLossOptions()));
        results.Add(BackendPair.CompareScalar("pairwise no gradient loss", rs.Loss, cs.Loss, Reduction, StatisticFloor));
        return results;
    }

    private static List<ConformanceResult> PpoLosses(BackendPair p, int seed)
    {
        var rng = new Random(seed);
        var results = new List<ConformanceResult>();
        foreach (var (b, t, withValues) in new[] { (3, 11, true), (48, 600, true), (20, 301, false) })
        {
            int n = b * t;
            string tag = $"B={b} T={t} values={withValues}";
            var maskData = RaggedMask(rng, b, t);
            var mask = p.Upload(maskData, b, t);
            var oldLogp = Random(rng, n, -6f, -0.1f);
            var logpData = new float[n];
            for (int i = 0; i < n; i++)
            {
                // Ratios spread over both sides of the clip range, so both branches and their gradients are exercised.
                logpData[i] = oldLogp[i] + (0.6f * ((float)rng.NextDouble() - 0.5f));
            }

            var logp = p.Upload(PoisonMasked(logpData, maskData), b, t);
            var old = p.Upload(PoisonMasked(oldLogp, maskData), b, t);
            var advantages = p.Upload(PoisonMasked(Random(rng, n, -2f, 2f), maskData), b, t);
            var entropy = p.Upload(PoisonMasked(Random(rng, n, 0f, 4f), maskData), b, t);
            var values = withValues ? p.Upload(PoisonMasked(Random(rng, n, -1f, 1f), maskData), b, t) : Both.None;
            var oldValues = withValues ? p.Upload(PoisonMasked(Random(rng, n, -1f, 1f), maskData), b, t) : Both.None;
            var returns = withValues ? p.Upload(PoisonMasked(Random(rng, n, -1.5f, 1.5f), maskData), b, t) : Both.None;
            var dlogp = p.Upload(Random(rng, n), b, t);
            var dvalues = withValues ? p.Upload(Random(rng, n), b, t) : Both.None;
            var options = new PpoLossOptions(0.2f, 0.3f, 0.5f, 0.25f);
            var (r, c) = p.Run((be, x) => be.PpoLosses(
                x(logp), x(old), x(advantages), x(mask), x(values), x(oldValues), x(returns), x(entropy), x(dlogp), x(dvalues), options));
            results.Add(p.Compare($"ppo dlogp {tag}", dlogp, Exact));
            if (withValues)
            {
                results.Add(p.Compare($"ppo dvalues {tag}", dvalues, Exact));
            }

            results.AddRange(Statistics($"ppo {tag}", Reduction, (r.PolicyLoss, c.PolicyLoss, "policy loss"), (r.ValueLoss, c.ValueLoss, "value loss"),
                (r.ClipFraction, c.ClipFraction, "clip fraction"), (r.ApproxKl, c.ApproxKl, "approx KL"), (r.Entropy, c.Entropy, "entropy"),
                (r.ExplainedVariance, c.ExplainedVariance, "explained variance"), (r.ValueClipFraction, c.ValueClipFraction, "value clip fraction"),
                (r.RatioMean, c.RatioMean, "ratio mean"), (r.TokenCount, c.TokenCount, "tokens")));
        }

        return results;
    }

    private static List<ConformanceResult> KlRewards(BackendPair p, int seed)
    {
        var rng = new Random(seed);
        var results = new List<ConformanceResult>();
        foreach (var (b, t, withEos) in new[] { (9, 50, true), (33, 257, false) })
        {
            string tag = $"B={b} T={t} eos={withEos}";
            var maskData = RaggedMask(rng, b, t);
            var mask = p.Upload(maskData, b, t);
            var kl = p.Upload(PoisonMasked(Random(rng, b * t, -0.5f, 2f), maskData), b, t);
            var scores = p.Upload(Random(rng, b, -3f, 3f), b);
            var ended = withEos ? p.Upload([.. Enumerable.Range(0, b).Select(_ => rng.Next(2))], b) : Both.None;
            var rewards = p.Poisoned(b, t);
            var (r, c) = p.Run((be, x) => be.KlShapedRewards(x(rewards), x(kl), x(mask), x(scores), x(ended), 0.05f, -1f));
            results.Add(p.Compare($"kl rewards {tag}", rewards, Exact));
            results.AddRange(Statistics($"kl rewards {tag}", Reduction, (r.MeanSequenceKl, c.MeanSequenceKl, "mean KL"),
                (r.MeanScore, c.MeanScore, "mean score"), (r.MissingEosFraction, c.MissingEosFraction, "missing EOS"), (r.Sequences, c.Sequences, "sequences")));
        }

        return results;
    }

    private static IEnumerable<ConformanceResult> Statistics(string prefix, double tolerance, params (double Reference, double Candidate, string Name)[] values) =>
        values.Select(v => BackendPair.CompareScalar($"{prefix} {v.Name}", v.Reference, v.Candidate, tolerance, StatisticFloor));

    /// <summary>Targets with every 5th row ignored (−1), a mask dropping every 7th row and weighting every 11th by ½, references near 0.</summary>
    private static (Both Targets, Both Mask, Both Reference) LogProbInputs(BackendPair p, Random rng, int n, int v)
    {
        var ids = new int[n];
        var m = new float[n];
        for (int i = 0; i < n; i++)
        {
            ids[i] = i % 5 == 3 ? -1 : rng.Next(v);
            m[i] = i % 7 == 6 ? 0f : i % 11 == 10 ? 0.5f : 1f;
        }

        // Reference log-probs around the typical log-prob of a random head (−ln V), so the KL estimators stay moderate.
        var reference = Random(rng, n, -MathF.Log(v) - 1f, -MathF.Log(v) + 1f);
        return (p.Upload(ids, n), p.Upload(m, n), p.Upload(reference, n));
    }

    private static TokenLogProbInputs In(Func<Both, Tensor> x, (Both Targets, Both Mask, Both Reference, float Tau) inputs) =>
        new(x(inputs.Targets), x(inputs.Mask), x(inputs.Reference), inputs.Tau);

    /// <summary>A (B,T) mask of prompt 0s, a contiguous response of 1s and padding 0s; row 0 has no response, row 1 one token.</summary>
    private static float[] RaggedMask(Random rng, int b, int t)
    {
        var m = new float[b * t];
        for (int row = 1; row < b; row++)
        {
            int start = rng.Next(t);
            int length = row == 1 ? 1 : 1 + rng.Next(t - start);
            for (int k = start; k < start + length; k++)
            {
                m[(row * t) + k] = 1f;
            }
        }

        return m;
    }

    /// <summary>x with NaN wherever the mask is 0: kernels must never read those positions into a result.</summary>
    private static float[] PoisonMasked(float[] x, float[] mask) => [.. x.Select((v, i) => mask[i] == 0f ? float.NaN : v)];
}
