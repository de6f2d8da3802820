using Engine.Core.Backends;

namespace Engine.Conformance;

public static partial class ConformanceSuite
{
    private static List<ConformanceResult> PreferenceLoss(BackendPair p, int seed)
    {
        var rng = new Random(seed);
        var results = new List<ConformanceResult>();

        // Responses in several pairs (K-wise groups), some on both sides; log-probs of 1–30 tokens at −0.1…−3 nats each.
        const int responses = 40, pairs = 90;
        var chosenIds = new int[pairs];
        var rejectedIds = new int[pairs];
        var ktoChosen = new int[responses];
        var ktoRejected = new int[responses];
        for (int i = 0; i < pairs; i++)
        {
            chosenIds[i] = rng.Next(responses);
            rejectedIds[i] = (chosenIds[i] + 1 + rng.Next(responses - 1)) % responses;
        }

        for (int r = 0; r < responses; r++)
        {
            bool desirable = rng.Next(2) == 0;
            ktoChosen[r] = desirable ? r : -1;
            ktoRejected[r] = desirable ? -1 : r;
        }

        var lengthData = new float[responses];
        var policyData = new float[responses];
        for (int r = 0; r < responses; r++)
        {
            lengthData[r] = 1 + rng.Next(30);
            policyData[r] = lengthData[r] * (-0.1f - (2.9f * (float)rng.NextDouble()));
        }

        var policy = p.Upload(policyData, responses);
        var reference = p.Upload(policyData.Select(x => x + (0.5f * ((float)rng.NextDouble() - 0.5f))).ToArray(), responses);
        var lengths = p.Upload(lengthData, responses);
        var chosen = p.Upload(chosenIds, pairs);
        var rejected = p.Upload(rejectedIds, pairs);
        var weights = p.Upload(Random(rng, pairs, 0f, 1f), pairs);
        var ktoC = p.Upload(ktoChosen, responses);
        var ktoL = p.Upload(ktoRejected, responses);
        foreach (var type in Enum.GetValues<PreferenceLossType>())
        {
            bool kto = type == PreferenceLossType.Kto;
            var options = new PreferenceLossOptions(
                type, 0.5f, Gamma: 0.3f, LabelSmoothing: type == PreferenceLossType.ExoPair ? 1e-3f : type == PreferenceLossType.Robust ? 0.1f : 0f,
                Baseline: 0.2f, NllWeight: type is PreferenceLossType.Cpo or PreferenceLossType.Orpo or PreferenceLossType.Sft ? 1f : 0f,
                DesirableWeight: 1.3f, UndesirableWeight: 0.7f, GradScale: 0.5f);
            var c = kto ? ktoC : chosen;
            var l = kto ? ktoL : rejected;
            var w = kto || type == PreferenceLossType.Aot ? Both.None : weights;
            var grad = p.Upload(Random(rng, responses), responses);
            var (rs, cs) = p.Run((be, x) => be.PreferenceLoss(x(policy), x(reference), x(lengths), x(c), x(l), x(w), x(grad), options));
            results.Add(p.Compare($"preference {type} dlogp", grad, Reduction));
            results.AddRange(Statistics($"preference {type}", Reduction, (rs.Loss, cs.Loss, "loss"), (rs.PairLoss, cs.PairLoss, "pair loss"),
                (rs.Nll, cs.Nll, "nll"), (rs.LogOddsRatio, cs.LogOddsRatio, "log-odds ratio"), (rs.LogOdds, cs.LogOdds, "log-odds"),
                (rs.WeightSum, cs.WeightSum, "weight sum")));
        }

        // Reference-free, no gradient asked for.
        var (r0, c0) = p.Run((be, x) => be.PreferenceLoss(
            x(policy), default, x(lengths), x(chosen), x(rejected), default, default, new PreferenceLossOptions(PreferenceLossType.Simpo, 2f, 0.5f)));
        results.Add(BackendPair.CompareScalar("preference simpo no gradient loss", r0.Loss, c0.Loss, Reduction, StatisticFloor));
        return results;
    }
}
