namespace Engine.Core.Backends;

/// <summary>
/// The per-pair loss of <see cref="Backend.PreferenceLoss"/>. With a = log π(y_c), b = log π(y_l) (sums over the
/// response tokens), a_ref, b_ref the reference's, n_c, n_l the response lengths, u = β·(a − a_ref), v = β·(b − b_ref),
/// ℓ_ε(x) = −(1−ε)·logσ(x) − ε·logσ(−x); docs/objectives.md gives each with its paper.
/// </summary>
public enum PreferenceLossType
{
    /// <summary>DPO: ℓ_ε(u − v).</summary>
    Sigmoid,

    /// <summary>Robust DPO: (−(1−ε)·logσ(x) + ε·logσ(−x))/(1 − 2ε), x = u − v.</summary>
    Robust,

    /// <summary>SLiC: max(0, 1 − (u − v)).</summary>
    Hinge,

    /// <summary>IPO: (h − 1/(2β))², h = (a − a_ref)/n_c − (b − b_ref)/n_l.</summary>
    Ipo,

    /// <summary>SimPO (reference-free): ℓ_ε(β·(a/n_c − b/n_l) − γ).</summary>
    Simpo,

    /// <summary>CPO (reference-free): ℓ_ε(β·(a − b)), with the NLL of the chosen responses added by the objective.</summary>
    Cpo,

    /// <summary>ORPO (reference-free): −β·logσ(log-odds), log-odds = log(p_c/(1−p_c)) − log(p_l/(1−p_l)), log p = a/n_c, b/n_l.</summary>
    Orpo,

    /// <summary>APO-zero: (1 − σ(u)) + σ(v).</summary>
    ApoZero,

    /// <summary>APO-down: σ(u) + (1 − σ(u − v)).</summary>
    ApoDown,

    /// <summary>BCO on pairs: −logσ(u − δ) − logσ(−(v − δ)), δ the running mean reward (<see cref="PreferenceLossOptions.Baseline"/>).</summary>
    BcoPair,

    /// <summary>NCA on pairs: −logσ(u) − ½·logσ(−u) − ½·logσ(−v).</summary>
    NcaPair,

    /// <summary>EXO on pairs: σ(x)·(logσ(x) − log(1−ε)) + σ(−x)·(logσ(−x) − log ε), x = u − v, ε ∈ (0, 1).</summary>
    ExoPair,

    /// <summary>SPPO (hard labels): (a − a_ref − 1/(2β))² + (b − b_ref + 1/(2β))².</summary>
    SppoHard,

    /// <summary>Length-normalised DPO: −logσ(β·((a − a_ref)/n_c − (b − b_ref)/n_l)).</summary>
    SigmoidNorm,

    /// <summary>
    /// AOT: ℓ_ε(β·(sort(a − b)_i − sort(a_ref − b_ref)_i)) for i over the pairs ranked by value (ties by pair order);
    /// the i-th term takes the weight of the pair ranked i-th by the policy.
    /// </summary>
    Aot,

    /// <summary>The NLL of the chosen responses alone (no pair term): the <c>sft</c> entry of a loss list.</summary>
    Sft,

    /// <summary>
    /// KTO (unpaired): a pair (c, −1) is a desirable example, w_D·(1 − σ(u − β·z₀)); a pair (−1, l) an undesirable one,
    /// w_U·(1 − σ(β·z₀ − v)); z₀ is the KL baseline (<see cref="PreferenceLossOptions.Baseline"/>, no gradient).
    /// </summary>
    Kto,
}

/// <summary>Settings of <see cref="Backend.PreferenceLoss"/>.</summary>
/// <param name="Type">The per-pair loss.</param>
/// <param name="Beta">β (ORPO's λ).</param>
/// <param name="Gamma">SimPO's target margin γ (unused by the others).</param>
/// <param name="LabelSmoothing">ε of the sigmoid-shaped losses (0 = none); EXO needs ε ∈ (0, 1), robust ε &lt; ½.</param>
/// <param name="Baseline">BCO's reward baseline δ, KTO's KL baseline z₀ (both held constant: no gradient flows into them).</param>
/// <param name="NllWeight">α of the NLL term α·(−Σ_p w_p·a_p)/(Σ_p w_p·n_c,p) over the chosen responses (0 = none).</param>
/// <param name="DesirableWeight">KTO's w_D.</param>
/// <param name="UndesirableWeight">KTO's w_U.</param>
/// <param name="GradScale">Factor on every gradient added into the log-prob gradient (loss weight × loss scale).</param>
public readonly record struct PreferenceLossOptions(
    PreferenceLossType Type = PreferenceLossType.Sigmoid,
    float Beta = 0.1f,
    float Gamma = 0f,
    float LabelSmoothing = 0f,
    float Baseline = 0f,
    float NllWeight = 0f,
    float DesirableWeight = 1f,
    float UndesirableWeight = 1f,
    float GradScale = 1f);

/// <summary>Scalars of one <see cref="Backend.PreferenceLoss"/> call; all 0 when the pair weights sum to 0.</summary>
/// <param name="Loss">PairLoss + α·Nll: the value whose gradient was added.</param>
/// <param name="PairLoss">Σ_p w_p·ℓ_p / Σ_p w_p.</param>
/// <param name="Nll">The chosen responses' token-mean NLL, (−Σ_p w_p·a_p)/(Σ_p w_p·n_c,p), over the pairs that have a chosen side.</param>
/// <param name="LogOddsRatio">ORPO: the weighted mean of logσ(log-odds) (TRL's <c>log_odds_ratio</c>); 0 for the others.</param>
/// <param name="LogOdds">ORPO: the weighted mean of the log-odds (TRL's <c>log_odds_chosen</c>); 0 for the others.</param>
/// <param name="WeightSum">Σ_p w_p.</param>
public readonly record struct PreferenceLossStatistics(float Loss, float PairLoss, float Nll, float LogOddsRatio, float LogOdds, float WeightSum);
