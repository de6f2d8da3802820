using Engine.Core.Backends;
using Tensor = Engine.Core.Tensors.Tensor;

namespace Engine.Core.Cpu;

// The preference loss family, scalar in double on the calling thread like the pairwise loss: P is at most a few
// thousand, and a serial scatter into the log-prob gradient in pair order (chosen side, then rejected side) is the order
// the CUDA gather reproduces.
public sealed unsafe partial class CpuBackend
{
    /// <inheritdoc/>
    protected override PreferenceLossStatistics PreferenceLossCore(
        Tensor policy, Tensor reference, Tensor lengths, Tensor chosen, Tensor rejected, Tensor weights, Tensor policyGrad,
        in PreferenceLossOptions options)
    {
        float* a = policy.Pointer<float>(), r = reference.Pointer<float>(), n = lengths.Pointer<float>();
        float* w = weights.Pointer<float>(), g = policyGrad.Pointer<float>();
        int* c = chosen.Pointer<int>(), l = rejected.Pointer<int>();
        int pairs = checked((int)chosen.ElementCount), rows = checked((int)policy.ElementCount);
        bool kto = options.Type == PreferenceLossType.Kto;

        // Checked before anything is written, so a bad index leaves the gradient as it was.
        double weightSum = 0, nllWeight = 0;
        for (int p = 0; p < pairs; p++)
        {
            if (!PreferencePair.ValidIndices(c[p], l[p], rows, kto))
            {
                throw new ArgumentOutOfRangeException(nameof(chosen), $"pair {p} = ({c[p]}, {l[p]}) indexes outside the {rows} responses");
            }

            double wp = w is null ? 1.0 : w[p];
            weightSum += wp;
            nllWeight += c[p] >= 0 ? wp * n[c[p]] : 0;
        }

        if (weightSum == 0)
        {
            return default;
        }

        int[]? partner = options.Type == PreferenceLossType.Aot ? AotPartners(a, r, c, l, pairs) : null;
        double gradFactor = options.GradScale / weightSum;
        double nllFactor = nllWeight > 0 ? options.GradScale * options.NllWeight / nllWeight : 0;
        double loss = 0, nll = 0, ratio = 0, odds = 0;
        for (int p = 0; p < pairs; p++)
        {
            double wp = w is null ? 1.0 : w[p];
            var inputs = PreferencePair.Inputs(a, r, n, c[p], l[p]);
            if (partner is not null)
            {
                int q = partner[p];
                inputs = PreferencePair.WithReferenceDifference(inputs, r is null ? 0.0 : (double)r[c[q]] - r[l[q]]);
            }

            var t = PreferencePair.Loss(options, inputs);
            loss += wp * t.Loss;
            ratio += wp * t.LogOddsRatio;
            odds += wp * t.LogOdds;
            nll -= c[p] >= 0 ? wp * inputs.A : 0;
            if (g is not null)
            {
                if (c[p] >= 0)
                {
                    g[c[p]] += (float)((gradFactor * wp * t.GradA) - (nllFactor * wp));
                }

                if (l[p] >= 0)
                {
                    g[l[p]] += (float)(gradFactor * wp * t.GradB);
                }
            }
        }

        double pairLoss = loss / weightSum, nllMean = nllWeight > 0 ? nll / nllWeight : 0;
        return new PreferenceLossStatistics(
            (float)(pairLoss + (options.NllWeight * nllMean)), (float)pairLoss, (float)nllMean, (float)(ratio / weightSum),
            (float)(odds / weightSum), (float)weightSum);
    }

    // AOT pairs the i-th smallest policy difference a − b with the i-th smallest reference difference (ties by pair
    // order): partner[p] is the pair whose reference difference has p's policy rank.
    private static int[] AotPartners(float* a, float* r, int* c, int* l, int pairs)
    {
        var policyOrder = new int[pairs];
        var referenceOrder = new int[pairs];
        var policyDiff = new double[pairs];
        var referenceDiff = new double[pairs];
        for (int p = 0; p < pairs; p++)
        {
            policyOrder[p] = referenceOrder[p] = p;
            policyDiff[p] = (double)a[c[p]] - a[l[p]];
            referenceDiff[p] = r is null ? 0.0 : (double)r[c[p]] - r[l[p]];
        }

        Array.Sort(policyOrder, (x, y) => policyDiff[x] != policyDiff[y] ? policyDiff[x].CompareTo(policyDiff[y]) : x.CompareTo(y));
        Array.Sort(referenceOrder, (x, y) => referenceDiff[x] != referenceDiff[y] ? referenceDiff[x].CompareTo(referenceDiff[y]) : x.CompareTo(y));
        var partner = new int[pairs];
        for (int i = 0; i < pairs; i++)
        {
            partner[policyOrder[i]] = referenceOrder[i];
        }

        return partner;
    }
}
