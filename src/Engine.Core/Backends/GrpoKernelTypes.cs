namespace Engine.Core.Backends;

/// <summary>The baseline subtracted from each completion's reward by <see cref="Backend.GroupAdvantages"/>.</summary>
public enum GroupBaseline
{
    /// <summary>GRPO (Shao et al. 2024): the mean reward of the completion's group, itself included.</summary>
    GroupMean,

    /// <summary>RLOO (Ahmadian et al. 2024): the mean reward of the other G − 1 completions of the group.</summary>
    LeaveOneOut,
}

/// <summary>What <see cref="Backend.GroupAdvantages"/> divides the centred rewards by (TRL's <c>scale_rewards</c>).</summary>
public enum RewardScaling
{
    /// <summary>The unbiased standard deviation of the completion's group, plus ε (GRPO).</summary>
    Group,

    /// <summary>The unbiased standard deviation of every reward of the batch, plus ε.</summary>
    Batch,

    /// <summary>Nothing (Dr. GRPO: the division biases towards groups that are almost solved or almost failed).</summary>
    None,
}

/// <summary>Settings of <see cref="Backend.GroupAdvantages"/>.</summary>
/// <param name="Baseline">Group mean (GRPO) or leave-one-out mean (RLOO).</param>
/// <param name="Scaling">The standard deviation divided by, if any.</param>
/// <param name="Epsilon">Added to the standard deviation before dividing (TRL: 1e-4).</param>
public readonly record struct GroupAdvantageOptions(
    GroupBaseline Baseline = GroupBaseline.GroupMean,
    RewardScaling Scaling = RewardScaling.Group,
    float Epsilon = 1e-4f);

/// <summary>Scalars of one <see cref="Backend.GroupAdvantages"/> call (TRL's metric names in brackets).</summary>
/// <param name="MeanReward">The mean reward of the batch (<c>reward</c>).</param>
/// <param name="RewardStd">The mean over completions of the standard deviation that scaled it: the group's for group and none, the batch's for batch (<c>reward_std</c>).</param>
/// <param name="ZeroStdFraction">Fraction of groups whose rewards are all equal (σ_g ≤ 1e-8): no learning signal (<c>frac_reward_zero_std</c>).</param>
/// <param name="Groups">Groups in the batch.</param>
public readonly record struct GroupAdvantageStatistics(float MeanReward, float RewardStd, float ZeroStdFraction, int Groups);

/// <summary>The ratio π/π_old of <see cref="Backend.GrpoLoss"/>.</summary>
public enum ImportanceSamplingLevel
{
    /// <summary>One ratio per token, w_t = exp(logp_t − logp_old_t) (GRPO, DAPO).</summary>
    Token,

    /// <summary>One ratio per sequence, s = exp(mean_t(logp_t − logp_old_t)) (GSPO, Zheng et al. 2025).</summary>
    Sequence,
}

/// <summary>How <see cref="Backend.GrpoLoss"/> normalises the summed per-token losses (TRL's <c>loss_type</c>).</summary>
public enum GrpoLossType
{
    /// <summary>The mean over each sequence's tokens, then over the sequences (GRPO as published).</summary>
    Grpo,

    /// <summary>The mean over every token of the call (TRL's bnpo: the call is one micro-batch).</summary>
    Bnpo,

    /// <summary>The sum over tokens divided by B·max_completion_length (Dr. GRPO, Liu et al. 2025).</summary>
    DrGrpo,

    /// <summary>The sum over tokens divided by the tokens of the whole optimizer batch (DAPO, Yu et al. 2025).</summary>
    Dapo,
}

/// <summary>Settings of <see cref="Backend.GrpoLoss"/>.</summary>
/// <param name="EpsilonLow">ε_low: the ratio is clipped below at 1 − ε_low.</param>
/// <param name="EpsilonHigh">ε_high: the ratio is clipped above at 1 + ε_high (DAPO's clip-higher when larger than ε_low).</param>
/// <param name="Beta">β of the k3 KL term to the reference (0 = none; reference log-probs are then only used for the statistic).</param>
/// <param name="Level">Token or sequence importance ratios.</param>
/// <param name="LossType">The normalisation of the summed per-token losses.</param>
/// <param name="MaxCompletionLength">L of Dr. GRPO's divisor B·L.</param>
/// <param name="TokenNormalizer">DAPO's divisor: the tokens of the whole optimizer batch (0 = the tokens of this call).</param>
/// <param name="GradScale">Factor on ∂L/∂logp added into dlogp (a micro-batch's share of its optimizer batch).</param>
public readonly record struct GrpoLossOptions(
    float EpsilonLow = 0.2f,
    float EpsilonHigh = 0.2f,
    float Beta = 0f,
    ImportanceSamplingLevel Level = ImportanceSamplingLevel.Token,
    GrpoLossType LossType = GrpoLossType.Grpo,
    int MaxCompletionLength = 256,
    float TokenNormalizer = 0f,
    float GradScale = 1f);

/// <summary>
/// Scalars of one <see cref="Backend.GrpoLoss"/> call; the means are over the masked-in tokens of the call
/// (Σ m·x / Σ m, TRL's masked_batch_mean), all 0 without tokens.
/// </summary>
/// <param name="Loss">L, the normalised loss whose gradient (times GradScale) was added.</param>
/// <param name="Kl">Mean k3 KL to the reference (0 without reference log-probs).</param>
/// <param name="Entropy">Mean entropy (0 without an entropy tensor).</param>
/// <param name="ClipLowFraction">Tokens with w &lt; 1 − ε_low and A &lt; 0 (<c>clip_ratio/low_mean</c>).</param>
/// <param name="ClipHighFraction">Tokens with w &gt; 1 + ε_high and A &gt; 0 (<c>clip_ratio/high_mean</c>).</param>
/// <param name="ClipRegionFraction">Tokens clipped either way (<c>clip_ratio/region_mean</c>).</param>
/// <param name="RatioMean">Mean importance ratio w.</param>
/// <param name="TokenCount">Σ m.</param>
public readonly record struct GrpoStatistics(
    float Loss, float Kl, float Entropy, float ClipLowFraction, float ClipHighFraction, float ClipRegionFraction, float RatioMean, float TokenCount);
