using Engine.Core.Tensors;

namespace Engine.Core.Backends;

// Critic-free RL (the GRPO family): group-relative advantages and the clipped surrogate with its normalisations. The
// exact formulas, and the paper or library each one matches, are in docs/grpo.md.
public abstract partial class Backend
{
    /// <summary>
    /// Advantages of R = P·G rewards in P consecutive groups of G completions (G ≥ 2):
    /// A_i = (r_i − b_i)/(σ + ε), or r_i − b_i without scaling, where b_i is the group mean μ_g (GRPO) or the mean of the
    /// other G − 1 rewards (RLOO) and σ the unbiased standard deviation of the group or of the batch. advantages [R] is
    /// overwritten. Returns TRL's reward statistics.
    /// </summary>
    public GroupAdvantageStatistics GroupAdvantages(Tensor advantages, Tensor rewards, int groupSize, in GroupAdvantageOptions options)
    {
        RequireF32(rewards, nameof(rewards));
        SameCount(rewards, advantages, nameof(advantages));
        RequireF32(advantages, nameof(advantages));
        if (groupSize < 2 || rewards.ElementCount % groupSize != 0)
        {
            throw new ArgumentOutOfRangeException(nameof(groupSize), $"groups of {groupSize} (at least 2) must divide the {rewards.ElementCount} rewards");
        }

        if (!Enum.IsDefined(options.Baseline) || !Enum.IsDefined(options.Scaling) || !(options.Epsilon >= 0f && float.IsFinite(options.Epsilon)))
        {
            throw new ArgumentOutOfRangeException(nameof(options), $"unknown baseline or scaling, or ε not finite and ≥ 0: {options}");
        }

        return GroupAdvantagesCore(advantages, rewards, groupSize, options);
    }

    /// <summary>
    /// The GRPO-family policy loss over [B,T] rows (TRL's GRPOTrainer): with δ_t = logp_t − logp_old_t, the ratio
    /// w_t = exp(δ_t) (token level) or w_t = s_b = exp(Σ_t m·δ_t / max(n_b, 1)) (sequence level, GSPO), n_b = Σ_t m,
    /// ℓ_t = −min(w_t·A_t, clip(w_t, 1 − ε_low, 1 + ε_high)·A_t) + β·k3_t with k3_t = exp(r_t − logp_t) − (r_t − logp_t) − 1,
    /// and L = Σ_b κ_b·Σ_t m·ℓ_t with κ_b = 1/(B·max(n_b, 1)) (grpo), 1/max(Σ m, 1) (bnpo), 1/(B·L_max) (dr_grpo) or
    /// 1/N (dapo, N = TokenNormalizer or Σ m). Exponents are capped at 88 so w stays finite in fp32. referenceLogProbs
    /// (needed when β &gt; 0) and entropy are optional. Adds GradScale·∂L/∂logp into <paramref name="logProbsGrad"/>
    /// (may be empty). Returns the loss and the clip, KL and entropy statistics.
    /// </summary>
    public GrpoStatistics GrpoLoss(
        Tensor logProbs, Tensor oldLogProbs, Tensor referenceLogProbs, Tensor advantages, Tensor mask, Tensor entropy, Tensor logProbsGrad,
        in GrpoLossOptions options)
    {
        RequireF32(logProbs, nameof(logProbs), rank: 2);
        foreach (var (t, name) in new[] { (oldLogProbs, nameof(oldLogProbs)), (advantages, nameof(advantages)), (mask, nameof(mask)) })
        {
            SameShape(logProbs, t, name);
        }

        foreach (var (t, name) in new[] { (referenceLogProbs, nameof(referenceLogProbs)), (entropy, nameof(entropy)), (logProbsGrad, nameof(logProbsGrad)) })
        {
            if (!t.IsEmpty)
            {
                SameShape(logProbs, t, name);
            }
        }

        if (!(options.EpsilonLow >= 0f && options.EpsilonLow < 1f) || !(options.EpsilonHigh >= 0f && float.IsFinite(options.EpsilonHigh)))
        {
            throw new ArgumentOutOfRangeException(nameof(options), $"ε_low must be in [0, 1) and ε_high finite and ≥ 0, got {options.EpsilonLow} and {options.EpsilonHigh}");
        }

        if (!(options.Beta >= 0f && float.IsFinite(options.Beta)) || (options.Beta > 0f && referenceLogProbs.IsEmpty))
        {
            throw new ArgumentOutOfRangeException(nameof(options), $"β must be finite and ≥ 0, and β > 0 needs reference log-probs (β = {options.Beta})");
        }

        if (!Enum.IsDefined(options.Level) || !Enum.IsDefined(options.LossType) || options.MaxCompletionLength < 1
            || !(options.TokenNormalizer >= 0f && float.IsFinite(options.TokenNormalizer)) || !float.IsFinite(options.GradScale))
        {
            throw new ArgumentOutOfRangeException(nameof(options), $"invalid GRPO loss options {options}");
        }

        return GrpoLossCore(logProbs, oldLogProbs, referenceLogProbs, advantages, mask, entropy, logProbsGrad, options);
    }

#pragma warning disable CS1591 // The Core methods are documented by their public counterparts above.
    protected abstract GroupAdvantageStatistics GroupAdvantagesCore(Tensor advantages, Tensor rewards, int groupSize, in GroupAdvantageOptions options);
    protected abstract GrpoStatistics GrpoLossCore(
        Tensor logProbs, Tensor oldLogProbs, Tensor referenceLogProbs, Tensor advantages, Tensor mask, Tensor entropy, Tensor logProbsGrad,
        in GrpoLossOptions options);
#pragma warning restore CS1591
}
