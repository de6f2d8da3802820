using Engine.Core.Tensors;

namespace Engine.Core.Backends;

// Alignment kernels (RLHF with PPO, reward models, DPO). m is a 0/1 f32 mask of the positions that count (response
// tokens); a position with m = 0 is never read into a result, so padding may hold anything, even NaN. Masked means are
// Σ m·x / Σ m over the whole batch. Scalar statistics come back to the host as small structs.
public abstract partial class Backend
{
    /// <summary>
    /// Generalised advantage estimation over [B,T] rows, each walked from its last response position (m ≠ 0) to its
    /// first: δ_t = r_t + γ·V_next − V_t, A_t = δ_t + γλ·A_next, R_t = A_t + V_t, where "next" is the next response
    /// position and V_next = A_next = 0 after the last one (the episode is done there). advantages and returns are
    /// overwritten, with 0 at masked-out positions; a row with no response position is all 0.
    /// </summary>
    public void GeneralizedAdvantageEstimation(
        Tensor advantages, Tensor returns, Tensor rewards, Tensor values, Tensor mask, float gamma, float lambda)
    {
        RequireF32(rewards, nameof(rewards), rank: 2);
        SameShape(rewards, values, nameof(values));
        SameShape(rewards, mask, nameof(mask));
        SameShape(rewards, advantages, nameof(advantages));
        SameShape(rewards, returns, nameof(returns));
        if (!(gamma >= 0f && gamma <= 1f) || !(lambda >= 0f && lambda <= 1f))
        {
            throw new ArgumentOutOfRangeException(nameof(gamma), $"GAE needs γ and λ in [0, 1], got γ = {gamma}, λ = {lambda}");
        }

        GeneralizedAdvantageEstimationCore(advantages, returns, rewards, values, mask, gamma, lambda);
    }

    /// <summary>
    /// Masked whitening in place (TRL's masked_whiten): x ← (x − μ)/√(σ² + ε), plus μ again when
    /// <paramref name="shiftMean"/> is false, with μ = Σ m·x/Σ m and the unbiased σ² = Σ m·(x − μ)²/(Σ m − 1) over the
    /// whole batch (σ² = 0 with fewer than two tokens). Masked-out positions are set to 0; an all-masked tensor becomes 0.
    /// </summary>
    public MaskedMoments MaskedWhiten(Tensor values, Tensor mask, bool shiftMean = true, float epsilon = 1e-8f)
    {
        RequireF32(values, nameof(values));
        SameShape(values, mask, nameof(mask));
        if (!(epsilon >= 0f))
        {
            throw new ArgumentOutOfRangeException(nameof(epsilon), $"whitening ε must be 0 or more, got {epsilon}");
        }

        return MaskedWhitenCore(values, mask, shiftMean, epsilon);
    }

    /// <summary>
    /// Pairwise preference loss over scores s[R] (one per forwarded response) and pairs (c[P], l[P]) of i32 indices
    /// into s with weights w[P] (empty = all 1) and margins μ[P] (empty = 0): x_p = s_c − s_l − μ_p,
    /// L = Σ_p w_p·ℓ(x_p) / Σ_p w_p (+ c·Σ_p w_p·(s_c + s_l)² / Σ_p w_p), ℓ per <see cref="PairwiseLossOptions.Type"/>.
    /// With K-wise rankings weighted 1/C(K,2) per pair, L is the mean over prompts. When
    /// <paramref name="scoresGrad"/> is given, adds GradScale·∂L/∂s into it. Returns the loss and statistics.
    /// </summary>
    public PairwiseLossStatistics PairwiseLoss(
        Tensor scores, Tensor chosen, Tensor rejected, Tensor weights, Tensor margins, Tensor scoresGrad, in PairwiseLossOptions options)
    {
        RequireF32(scores, nameof(scores));
        RequireTokens(chosen, nameof(chosen));
        RequireTokens(rejected, nameof(rejected));
        long pairs = chosen.ElementCount;
        if (rejected.ElementCount != pairs)
        {
            throw new ArgumentException($"rejected has {rejected.ElementCount} pairs, chosen has {pairs}", nameof(rejected));
        }

        if (!weights.IsEmpty)
        {
            SameCount(chosen, weights, nameof(weights));
        }

        if (!margins.IsEmpty)
        {
            SameCount(chosen, margins, nameof(margins));
        }

        if (!scoresGrad.IsEmpty)
        {
            SameCount(scores, scoresGrad, nameof(scoresGrad));
        }

        float eps = options.LabelSmoothing;
        bool epsOk = options.Type == PairwiseLossType.Robust ? eps >= 0f && eps < 0.5f : eps >= 0f && eps <= 1f;
        if (!epsOk)
        {
            throw new ArgumentOutOfRangeException(nameof(options), $"label smoothing {eps} is out of range for the {options.Type} loss");
        }

        if (options.Type == PairwiseLossType.Ipo && !(options.Beta > 0f))
        {
            throw new ArgumentOutOfRangeException(nameof(options), $"IPO needs β > 0, got {options.Beta}");
        }

        if (!float.IsFinite(options.CenterCoefficient) || !float.IsFinite(options.GradScale))
        {
            throw new ArgumentOutOfRangeException(nameof(options), "the centring coefficient and gradient scale must be finite");
        }

        return PairwiseLossCore(scores, chosen, rejected, weights, margins, scoresGrad, options);
    }

    /// <summary>
    /// PPO clipped policy and value losses over N tokens (any shape, same element count everywhere),
    /// ρ = exp(min(logp − logp_old, 88)) (the cap keeps ρ finite in fp32, e^88 ≈ 1.7e38, so A = 0 never meets ρ = ∞):
    /// L = masked_mean(max(−A·ρ, −A·clip(ρ, 1−ε, 1+ε))), L_V = ½·masked_mean(max((V − R)², (clip(V, V_old ± ε_v) − R)²)).
    /// Adds PolicyGradScale·∂L/∂logp into <paramref name="logProbsGrad"/> and ValueGradScale·∂L_V/∂V into
    /// <paramref name="valuesGrad"/> (either may be empty). values, oldValues and returns are given together or not at
    /// all (policy-only); entropy is optional and only averaged. Returns the losses and statistics.
    /// </summary>
    public PpoStatistics PpoLosses(
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
        RequireF32(logProbs, nameof(logProbs));
        SameCount(logProbs, oldLogProbs, nameof(oldLogProbs));
        SameCount(logProbs, advantages, nameof(advantages));
        SameCount(logProbs, mask, nameof(mask));
        bool withValues = !values.IsEmpty;
        if (withValues != !oldValues.IsEmpty || withValues != !returns.IsEmpty)
        {
            throw new ArgumentException("values, oldValues and returns must be given together (or all be empty)");
        }

        if (withValues)
        {
            SameCount(logProbs, values, nameof(values));
            SameCount(logProbs, oldValues, nameof(oldValues));
            SameCount(logProbs, returns, nameof(returns));
        }
        else if (!valuesGrad.IsEmpty)
        {
            throw new ArgumentException("a value gradient needs values", nameof(valuesGrad));
        }

        if (!entropy.IsEmpty)
        {
            SameCount(logProbs, entropy, nameof(entropy));
        }

        if (!logProbsGrad.IsEmpty)
        {
            SameCount(logProbs, logProbsGrad, nameof(logProbsGrad));
        }

        if (!valuesGrad.IsEmpty)
        {
            SameCount(logProbs, valuesGrad, nameof(valuesGrad));
        }

        if (!(options.ClipRange >= 0f) || !(options.ValueClipRange >= 0f))
        {
            throw new ArgumentOutOfRangeException(nameof(options), $"clip ranges must be 0 or more, got {options}");
        }

        if (!float.IsFinite(options.PolicyGradScale) || !float.IsFinite(options.ValueGradScale))
        {
            throw new ArgumentOutOfRangeException(nameof(options), "gradient scales must be finite");
        }

        return PpoLossesCore(logProbs, oldLogProbs, advantages, mask, values, oldValues, returns, entropy, logProbsGrad, valuesGrad, options);
    }

    /// <summary>
    /// KL-shaped PPO rewards over [B,T]: r_t = −β·KL_t at every response position (m ≠ 0) and 0 elsewhere, plus the
    /// sequence score s_b on the last response position, plus <paramref name="missingEosPenalty"/> (usually negative)
    /// when endedWithEos[b] (i32, nonzero = ended with EOS; empty = no penalty) is 0. Overwrites rewards.
    /// </summary>
    public KlRewardStatistics KlShapedRewards(
        Tensor rewards, Tensor kl, Tensor mask, Tensor scores, Tensor endedWithEos, float beta, float missingEosPenalty = 0f)
    {
        RequireF32(kl, nameof(kl), rank: 2);
        SameShape(kl, mask, nameof(mask));
        SameShape(kl, rewards, nameof(rewards));
        long b = kl.Shape[0];
        RequireF32(scores, nameof(scores));
        RequireDims(scores, nameof(scores), b);
        if (!endedWithEos.IsEmpty)
        {
            RequireTokens(endedWithEos, nameof(endedWithEos));
            RequireDims(endedWithEos, nameof(endedWithEos), b);
        }

        if (!float.IsFinite(beta) || !float.IsFinite(missingEosPenalty))
        {
            throw new ArgumentOutOfRangeException(nameof(beta), $"β ({beta}) and the missing-EOS penalty ({missingEosPenalty}) must be finite");
        }

        return KlShapedRewardsCore(rewards, kl, mask, scores, endedWithEos, beta, missingEosPenalty);
    }

#pragma warning disable CS1591 // The Core methods are documented by their public counterparts above.
    protected abstract void GeneralizedAdvantageEstimationCore(
        Tensor advantages, Tensor returns, Tensor rewards, Tensor values, Tensor mask, float gamma, float lambda);
    protected abstract MaskedMoments MaskedWhitenCore(Tensor values, Tensor mask, bool shiftMean, float epsilon);
    protected abstract PairwiseLossStatistics PairwiseLossCore(
        Tensor scores, Tensor chosen, Tensor rejected, Tensor weights, Tensor margins, Tensor scoresGrad, in PairwiseLossOptions options);
    protected abstract PpoStatistics PpoLossesCore(
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
        in PpoLossOptions options);
    protected abstract KlRewardStatistics KlShapedRewardsCore(
        Tensor rewards, Tensor kl, Tensor mask, Tensor scores, Tensor endedWithEos, float beta, float missingEosPenalty);
#pragma warning restore CS1591
}
