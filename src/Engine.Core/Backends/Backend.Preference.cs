using Engine.Core.Tensors;

namespace Engine.Core.Backends;

// The preference-optimisation loss family (DPO's variants, SimPO, CPO, ORPO, APO, BCO, NCA, EXO, SPPO, AOT, KTO) over
// per-response sequence log-probs; the log-probs themselves come from the fused token log-prob kernel.
public abstract partial class Backend
{
    /// <summary>
    /// Preference loss over per-response sequence log-probs a[R] (policy), a_ref[R] (reference; empty = 0) and
    /// response lengths n[R] (f32, &gt; 0), with pairs (c[P], l[P]) of i32 indices into them and weights w[P] (empty = 1):
    /// L = Σ_p w_p·ℓ_p / Σ_p w_p + α·(−Σ_p w_p·a_c,p)/(Σ_p w_p·n_c,p), ℓ per <see cref="PreferenceLossOptions.Type"/>.
    /// KTO pairs have one side −1 (desirable (c, −1), undesirable (−1, l)). When <paramref name="policyGrad"/> is given,
    /// adds GradScale·∂L/∂a into it. Returns the loss and statistics.
    /// </summary>
    public PreferenceLossStatistics PreferenceLoss(
        Tensor policy, Tensor reference, Tensor lengths, Tensor chosen, Tensor rejected, Tensor weights, Tensor policyGrad,
        in PreferenceLossOptions options)
    {
        RequireF32(policy, nameof(policy));
        SameCount(policy, lengths, nameof(lengths));
        RequireF32(lengths, nameof(lengths));
        if (!reference.IsEmpty)
        {
            SameCount(policy, reference, nameof(reference));
        }

        RequireTokens(chosen, nameof(chosen));
        RequireTokens(rejected, nameof(rejected));
        if (rejected.ElementCount != chosen.ElementCount)
        {
            throw new ArgumentException($"rejected has {rejected.ElementCount} pairs, chosen has {chosen.ElementCount}", nameof(rejected));
        }

        if (!weights.IsEmpty)
        {
            SameCount(chosen, weights, nameof(weights));
        }

        if (!policyGrad.IsEmpty)
        {
            SameCount(policy, policyGrad, nameof(policyGrad));
        }

        CheckPreferenceOptions(options);
        return PreferenceLossCore(policy, reference, lengths, chosen, rejected, weights, policyGrad, options);
    }

    private static void CheckPreferenceOptions(in PreferenceLossOptions o)
    {
        if (!Enum.IsDefined(o.Type))
        {
            throw new ArgumentOutOfRangeException(nameof(o), $"unknown preference loss {(int)o.Type}");
        }

        if (!(o.Beta > 0f && float.IsFinite(o.Beta)))
        {
            throw new ArgumentOutOfRangeException(nameof(o), $"β must be positive and finite, got {o.Beta}");
        }

        float eps = o.LabelSmoothing;
        bool epsOk = o.Type switch
        {
            PreferenceLossType.Robust => eps is >= 0f and < 0.5f,
            PreferenceLossType.ExoPair => eps is > 0f and < 1f,
            _ => eps is >= 0f and <= 1f,
        };
        if (!epsOk)
        {
            throw new ArgumentOutOfRangeException(nameof(o), $"label smoothing {eps} is out of range for the {o.Type} loss");
        }

        if (!float.IsFinite(o.Gamma) || !float.IsFinite(o.Baseline) || !(o.NllWeight >= 0f && float.IsFinite(o.NllWeight))
            || !(o.DesirableWeight >= 0f && float.IsFinite(o.DesirableWeight)) || !(o.UndesirableWeight >= 0f && float.IsFinite(o.UndesirableWeight))
            || !float.IsFinite(o.GradScale))
        {
            throw new ArgumentOutOfRangeException(nameof(o), $"γ, the baseline and the gradient scale must be finite, the NLL and KTO weights finite and ≥ 0: {o}");
        }
    }

#pragma warning disable CS1591 // Documented by the public counterpart above.
    protected abstract PreferenceLossStatistics PreferenceLossCore(
        Tensor policy, Tensor reference, Tensor lengths, Tensor chosen, Tensor rejected, Tensor weights, Tensor policyGrad,
        in PreferenceLossOptions options);
#pragma warning restore CS1591
}
