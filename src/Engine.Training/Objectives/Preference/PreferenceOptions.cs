using System.ComponentModel;
using Engine.Core.Backends;

namespace Engine.Training.Objectives.Preference;

/// <summary>One entry of a loss list: a loss and its weight (TRL's <c>loss_type</c> and <c>loss_weights</c>).</summary>
/// <param name="Type">The loss.</param>
/// <param name="Weight">Its weight in the sum (finite, ≥ 0).</param>
public sealed record PreferenceLossTerm(PreferenceLossType Type, float Weight = 1f);

/// <summary>Settings of <see cref="PreferenceObjective"/> and <see cref="KtoObjective"/>, with TRL's defaults.</summary>
public sealed record PreferenceOptions
{
    /// <summary>The losses and their weights; the objective's loss is Σ_k weight_k·L_k (TRL's MPO when several).</summary>
    [Description("the losses, with weights")]
    public IReadOnlyList<PreferenceLossTerm> Losses { get; init; } = [new(PreferenceLossType.Sigmoid)];

    /// <summary>β: the implicit reward's scale (SimPO's β, CPO's β, ORPO's λ, KTO's β).</summary>
    [Description("β (ORPO's λ)")]
    public float Beta { get; init; } = 0.1f;

    /// <summary>SimPO's target reward margin γ (TRL's <c>simpo_gamma</c>).</summary>
    [Description("SimPO's target reward margin γ")]
    public float SimpoGamma { get; init; } = 0.5f;

    /// <summary>ε of the sigmoid-shaped losses (conservative DPO, robust, SimPO, CPO, AOT); EXO's ε, 1e-3 when 0 (as TRL).</summary>
    [Description("ε, assumed probability that a preference label is flipped")]
    public float LabelSmoothing { get; init; }

    /// <summary>α of CPO's NLL term on the chosen responses (TRL's <c>cpo_alpha</c>).</summary>
    [Description("α, weight of CPO's NLL term on the chosen responses")]
    public float CpoAlpha { get; init; } = 1f;

    /// <summary>KTO's weight w_D of the desirable examples.</summary>
    [Description("KTO: weight of the desirable examples")]
    public float DesirableWeight { get; init; } = 1f;

    /// <summary>KTO's weight w_U of the undesirable examples.</summary>
    [Description("KTO: weight of the undesirable examples")]
    public float UndesirableWeight { get; init; } = 1f;

    /// <summary>Every loss name, as TRL writes it, in <see cref="PreferenceLossType"/> order.</summary>
    public static IReadOnlyList<string> Names { get; } =
    [
        "sigmoid", "robust", "hinge", "ipo", "simpo", "cpo", "orpo", "apo_zero", "apo_down", "bco_pair", "nca_pair", "exo_pair",
        "sppo_hard", "sigmoid_norm", "aot", "sft", "kto",
    ];

    /// <summary>Whether no loss of the list needs a reference model (SimPO, CPO, ORPO and the NLL term alone).</summary>
    public bool ReferenceFree => Losses.All(t => IsReferenceFree(t.Type));

    /// <summary>Whether <paramref name="type"/> reads no reference log-probs.</summary>
    public static bool IsReferenceFree(PreferenceLossType type) =>
        type is PreferenceLossType.Simpo or PreferenceLossType.Cpo or PreferenceLossType.Orpo or PreferenceLossType.Sft;

    /// <summary>The TRL name of a loss.</summary>
    public static string Name(PreferenceLossType type) => Names[(int)type];

    /// <summary>A loss by its TRL name; <see cref="ArgumentException"/> listing the names when unknown.</summary>
    public static PreferenceLossType Parse(string name)
    {
        int i = Names.ToList().IndexOf(name.Trim().ToLowerInvariant());
        return i >= 0 ? (PreferenceLossType)i : throw new ArgumentException($"unknown loss '{name}'; expected one of {string.Join(", ", Names)}");
    }

    /// <summary>The ε the kernel gets for <paramref name="type"/>: EXO's default 1e-3 when none is set, as TRL.</summary>
    public float SmoothingFor(PreferenceLossType type) =>
        type == PreferenceLossType.ExoPair && LabelSmoothing == 0f ? 1e-3f : LabelSmoothing;

    /// <summary>The weight α of the NLL term a loss carries: CPO's <see cref="CpoAlpha"/>, 1 for ORPO and <c>sft</c>, else 0.</summary>
    public float NllWeightOf(PreferenceLossType type) => type switch
    {
        PreferenceLossType.Cpo => CpoAlpha,
        PreferenceLossType.Orpo or PreferenceLossType.Sft => 1f,
        _ => 0f,
    };

    /// <summary>Throws <see cref="ArgumentException"/> naming the first setting out of range by its key and flag.</summary>
    public void Validate(bool unpaired = false)
    {
        if (Losses is null || Losses.Count == 0)
        {
            throw new ArgumentException("loss (--loss) needs at least one loss");
        }

        if (Losses.Select(t => t.Type).Distinct().Count() != Losses.Count)
        {
            throw new ArgumentException($"loss (--loss) names a loss twice: {string.Join(",", Losses.Select(t => Name(t.Type)))}");
        }

        foreach (var t in Losses)
        {
            if (!Enum.IsDefined(t.Type))
            {
                throw new ArgumentException($"loss (--loss) {(int)t.Type} is not a loss");
            }

            if ((t.Type == PreferenceLossType.Kto) != unpaired)
            {
                throw new ArgumentException(unpaired
                    ? $"loss (--loss) {Name(t.Type)} needs preference pairs; KTO trains on prompt/completion/label data alone"
                    : "loss (--loss) kto needs prompt/completion/label data: use engine kto");
            }

            if (!(t.Weight >= 0f && float.IsFinite(t.Weight)))
            {
                throw new ArgumentException($"loss_weights (--loss-weights) must be finite and ≥ 0, got {t.Weight} for {Name(t.Type)}");
            }

            float eps = SmoothingFor(t.Type);
            bool epsOk = t.Type switch
            {
                PreferenceLossType.Robust => eps is >= 0f and < 0.5f,
                PreferenceLossType.ExoPair => eps is > 0f and < 1f,
                _ => eps is >= 0f and <= 0.5f,
            };
            if (!epsOk)
            {
                throw new ArgumentException($"label_smoothing (--label-smoothing) {LabelSmoothing} is out of range for the {Name(t.Type)} loss");
            }
        }

        if (!(Beta > 0f && float.IsFinite(Beta)))
        {
            throw new ArgumentException($"beta (--beta) must be positive and finite, got {Beta}");
        }

        if (!float.IsFinite(SimpoGamma) || !(CpoAlpha >= 0f && float.IsFinite(CpoAlpha)))
        {
            throw new ArgumentException($"simpo_gamma (--simpo-gamma) must be finite and cpo_alpha (--cpo-alpha) finite and ≥ 0, got {SimpoGamma} and {CpoAlpha}");
        }

        if (!(DesirableWeight >= 0f && float.IsFinite(DesirableWeight)) || !(UndesirableWeight >= 0f && float.IsFinite(UndesirableWeight)))
        {
            throw new ArgumentException(
                $"desirable_weight (--desirable-weight) and undesirable_weight (--undesirable-weight) must be finite and ≥ 0, got {DesirableWeight} and {UndesirableWeight}");
        }
    }

    /// <summary>The kernel settings of one loss of the list, for a micro-batch of loss scale <paramref name="lossScale"/>.</summary>
    public PreferenceLossOptions Kernel(PreferenceLossTerm term, float baseline, float lossScale) => new(
        term.Type, Beta, SimpoGamma, SmoothingFor(term.Type), baseline, NllWeightOf(term.Type), DesirableWeight, UndesirableWeight,
        term.Weight * lossScale);
}
