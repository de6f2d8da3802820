namespace Engine.Core.Backends;

/// <summary>The per-pair loss of <see cref="Backend.PairwiseLoss"/>, a function of x = s_c − s_l − μ.</summary>
public enum PairwiseLossType
{
    /// <summary>Bradley–Terry / DPO: ℓ = −(1−ε)·logσ(x) − ε·logσ(−x) (conservative label smoothing ε).</summary>
    Sigmoid,

    /// <summary>Robust DPO (Chowdhury et al. 2024): ℓ = (−(1−ε)·logσ(x) + ε·logσ(−x)) / (1 − 2ε), ε &lt; ½.</summary>
    Robust,

    /// <summary>SLiC hinge: ℓ = max(0, 1 − x); the subgradient at x = 1 is 0 (as ReLU's in PyTorch).</summary>
    Hinge,

    /// <summary>IPO (Azar et al. 2023): ℓ = (x − 1/(2β))², with scores the length-normalised log-ratios (not times β).</summary>
    Ipo,
}

/// <summary>Settings of <see cref="Backend.PairwiseLoss"/>.</summary>
/// <param name="Type">Per-pair loss ℓ(x).</param>
/// <param name="LabelSmoothing">ε of the sigmoid and robust losses (0 = none); must be in [0, ½) for robust, [0, 1] for sigmoid.</param>
/// <param name="Beta">β of IPO, whose target margin is 1/(2β); unused by the other types.</param>
/// <param name="CenterCoefficient">c of the reward-model centring term c·mean_w((s_c + s_l)²) (TRL's center_rewards_coefficient; 0 = off).</param>
/// <param name="GradScale">Factor on every gradient added into dScores (loss scaling, 1/accumulation steps).</param>
public readonly record struct PairwiseLossOptions(
    PairwiseLossType Type = PairwiseLossType.Sigmoid,
    float LabelSmoothing = 0f,
    float Beta = 0.1f,
    float CenterCoefficient = 0f,
    float GradScale = 1f);

/// <summary>
/// Scalars of one pairwise-loss call. Every mean is weighted by the pair weights w_p and divided by W = Σ w_p;
/// all are 0 when W = 0.
/// </summary>
/// <param name="Loss">Σ_p w_p·ℓ_p / W plus the centring term when enabled: the value whose gradient was added.</param>
/// <param name="CenterPenalty">The centring term alone, c·Σ_p w_p·(s_c + s_l)² / W (0 when c = 0).</param>
/// <param name="Accuracy">Weighted fraction of pairs with x = s_c − s_l − μ strictly greater than 0 (a tie counts as wrong).</param>
/// <param name="Margin">Weighted mean of s_c − s_l (without μ).</param>
/// <param name="ChosenScore">Weighted mean of s_c.</param>
/// <param name="RejectedScore">Weighted mean of s_l.</param>
/// <param name="WeightSum">W = Σ_p w_p.</param>
public readonly record struct PairwiseLossStatistics(
    float Loss, float CenterPenalty, float Accuracy, float Margin, float ChosenScore, float RejectedScore, float WeightSum);

/// <summary>Settings of <see cref="Backend.PpoLosses"/>.</summary>
/// <param name="ClipRange">ε of the policy ratio clip: ρ ∈ [1 − ε, 1 + ε].</param>
/// <param name="ValueClipRange">ε_v of the value clip: V ∈ [V_old − ε_v, V_old + ε_v].</param>
/// <param name="PolicyGradScale">Factor on ∂L/∂logp added into dlogp (loss scaling, 1/accumulation steps).</param>
/// <param name="ValueGradScale">Factor on ∂L_V/∂V added into dV (typically vf_coef/accumulation steps).</param>
public readonly record struct PpoLossOptions(
    float ClipRange = 0.2f,
    float ValueClipRange = 0.2f,
    float PolicyGradScale = 1f,
    float ValueGradScale = 1f);

/// <summary>
/// Scalars of one PPO-loss call; masked means are Σ m·x / Σ m over the whole batch, and every field is 0 when
/// no token is masked in (or, for the value fields, when no values were given).
/// </summary>
/// <param name="PolicyLoss">L = masked_mean(max(−A·ρ, −A·clip(ρ, 1−ε, 1+ε))).</param>
/// <param name="ValueLoss">L_V = ½·masked_mean(max((V − R)², (clip(V, V_old ± ε_v) − R)²)).</param>
/// <param name="ClipFraction">masked_mean(1[−A·clip(ρ) &gt; −A·ρ]): tokens whose clipped branch is strictly larger.</param>
/// <param name="ApproxKl">½·masked_mean((logp − logp_old)²).</param>
/// <param name="Entropy">masked_mean(entropy) when an entropy tensor was given, else 0.</param>
/// <param name="ExplainedVariance">1 − Var(R − V)/Var(R) over masked tokens (population variances); 0 when Var(R) = 0.</param>
/// <param name="ValueClipFraction">masked_mean(1[clipped value term &gt; unclipped]).</param>
/// <param name="RatioMean">masked_mean(ρ).</param>
/// <param name="TokenCount">Σ m.</param>
public readonly record struct PpoStatistics(
    float PolicyLoss,
    float ValueLoss,
    float ClipFraction,
    float ApproxKl,
    float Entropy,
    float ExplainedVariance,
    float ValueClipFraction,
    float RatioMean,
    float TokenCount);

/// <summary>Masked moments from <see cref="Backend.MaskedWhiten"/>.</summary>
/// <param name="Mean">μ = Σ m·x / Σ m.</param>
/// <param name="Variance">Unbiased σ² = Σ m·(x − μ)² / (Σ m − 1) (0 with fewer than two tokens).</param>
/// <param name="Count">Σ m.</param>
public readonly record struct MaskedMoments(float Mean, float Variance, float Count);

/// <summary>
/// Scalars of one <see cref="Backend.KlShapedRewards"/> call, averaged over the sequences that have at least one
/// response token (all 0 when none has).
/// </summary>
/// <param name="MeanSequenceKl">mean_b Σ_t m·KL_t: the summed per-token KL of a response, averaged.</param>
/// <param name="MeanScore">mean_b of the score as placed on the last token (missing-EOS penalty included).</param>
/// <param name="MissingEosFraction">Fraction of those sequences that did not end with EOS (0 when no flags were given).</param>
/// <param name="Sequences">Number of sequences with a response token.</param>
public readonly record struct KlRewardStatistics(float MeanSequenceKl, float MeanScore, float MissingEosFraction, int Sequences);
