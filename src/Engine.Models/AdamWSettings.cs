using System.ComponentModel;

namespace Engine.Models;

/// <summary>AdamW and clipping settings with their defaults in one place (the CLI and trainers read this same record).</summary>
public sealed record AdamWSettings
{
    /// <summary>β₁, first-moment decay.</summary>
    [Description("AdamW β₁, first-moment decay")]
    public float Beta1 { get; init; } = 0.9f;

    /// <summary>β₂, second-moment decay.</summary>
    [Description("AdamW β₂, second-moment decay")]
    public float Beta2 { get; init; } = 0.95f;

    /// <summary>ε in the denominator.</summary>
    [Description("AdamW ε in the denominator")]
    public float Epsilon { get; init; } = 1e-8f;

    /// <summary>Decoupled weight decay λ, applied to projection matrices.</summary>
    [Description("decoupled weight decay λ (projection matrices)")]
    public float WeightDecay { get; init; } = 0.1f;

    /// <summary>Also decay embeddings, norm gains and biases (off by default, as in GPT-2/llm.c practice).</summary>
    [Description("also decay embeddings, norm gains and biases")]
    public bool DecayAllParameters { get; init; }

    /// <summary>Global gradient-norm clipping threshold; 0 or less disables clipping.</summary>
    [Description("clip the global gradient norm to this (0 = no clipping)")]
    public float MaxGradNorm { get; init; } = 1f;
}
