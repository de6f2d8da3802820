using Engine.Core.Tensors;

namespace Engine.Core.Backends;

/// <summary>
/// What the token log-prob kernels read besides the logits (or the hidden states and head weight they come from).
/// Row n is <i>active</i> when targets[n] ≥ 0 and mask[n] ≠ 0 (or there is no mask); every output and gradient of an
/// active row is multiplied by mask[n], and inactive rows get exact zeros.
/// </summary>
/// <param name="Targets">i32 [N] (any shape with N elements): the token y_n whose log-prob is taken; negative = masked out.</param>
/// <param name="Mask">Optional f32 [N]: 0/1 (or a weight) m_n per row; empty = all ones.</param>
/// <param name="ReferenceLogProbs">Optional f32 [N]: reference-model log-probs r_n, needed for the KL estimators.</param>
/// <param name="Temperature">τ &gt; 0: the logits are z = logits/τ (or h·Wᵀ/τ).</param>
public readonly record struct TokenLogProbInputs(
    Tensor Targets,
    Tensor Mask = default,
    Tensor ReferenceLogProbs = default,
    float Temperature = 1f);

/// <summary>
/// Per-row outputs of the token log-prob kernels, each multiplied by the row's mask (zero for inactive rows).
/// </summary>
/// <param name="LogProbs">f32 [N]: logp_n = z[n,y_n] − logsumexp_v z[n,v].</param>
/// <param name="RowStats">
/// f32 [N,2]: (logsumexp_v z[n,v], H_n), unmasked, saved for the backward pass ((0, 0) for inactive rows).
/// Optional only in the fused forward-backward.
/// </param>
/// <param name="Entropy">Optional f32 [N]: H_n = logsumexp − Σ_v softmax(z)_v·z_v.</param>
/// <param name="Kl">Optional f32 [N,3]: the KL estimators (k1, k2, k3) of <see cref="KlEstimators"/>; needs reference log-probs.</param>
public readonly record struct TokenLogProbOutputs(
    Tensor LogProbs,
    Tensor RowStats = default,
    Tensor Entropy = default,
    Tensor Kl = default);

/// <summary>
/// Gradients of a scalar loss with respect to the (masked) outputs of <see cref="TokenLogProbOutputs"/>; any may be
/// empty (= zero), but not all of them. The KL gradients are folded into the log-prob gradient inside the kernel,
/// g_logp += g_k1·1 + g_k2·(logp − r) + g_k3·(1 − e^(r − logp)), so callers never need the derivatives themselves.
/// </summary>
/// <param name="LogProbs">Optional f32 [N]: ∂L/∂logp_n.</param>
/// <param name="Entropy">Optional f32 [N]: ∂L/∂H_n.</param>
/// <param name="Kl">Optional f32 [N,3]: ∂L/∂(k1, k2, k3)_n; needs reference log-probs in the inputs.</param>
public readonly record struct TokenLogProbGrads(
    Tensor LogProbs,
    Tensor Entropy = default,
    Tensor Kl = default);

/// <summary>
/// The per-token KL estimators between the policy and a reference model (Schulman, "Approximating KL divergence"),
/// in terms of the policy log-prob logp and the reference log-prob r of the sampled token: k1 = logp − r,
/// k2 = ½(logp − r)², k3 = e^(r − logp) − (r − logp) − 1. Evaluated in double; results beyond the f32 range saturate
/// at ±<see cref="float.MaxValue"/> when the kernels store them instead of overflowing to ∞.
/// </summary>
public static class KlEstimators
{
    /// <summary>(k1, k2, k3) = (logp − r, ½(logp − r)², e^(r − logp) − (r − logp) − 1).</summary>
    public static (double K1, double K2, double K3) Values(double logProb, double referenceLogProb)
    {
        double d = logProb - referenceLogProb;
        return (d, 0.5 * d * d, Math.Exp(-d) + d - 1.0);
    }

    /// <summary>(∂k1, ∂k2, ∂k3)/∂logp = (1, logp − r, 1 − e^(r − logp)).</summary>
    public static (double D1, double D2, double D3) Derivatives(double logProb, double referenceLogProb)
    {
        double d = logProb - referenceLogProb;
        return (1.0, d, 1.0 - Math.Exp(-d));
    }

    /// <summary>Rounds to f32, saturating at ±<see cref="float.MaxValue"/> (so a finite double never becomes ∞).</summary>
    public static float Saturate(double value) => (float)Math.Clamp(value, -float.MaxValue, float.MaxValue);
}
