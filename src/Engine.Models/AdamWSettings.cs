namespace Engine.Models;

/// <summary>AdamW and clipping settings with their defaults in one place (the CLI and trainers read this same record).</summary>
public sealed record AdamWSettings
{
    /// <summary>β₁, first-moment decay.</summary>
    public float Beta1 { get; init; } = 0.9f;

    /// <summary>β₂, second-moment decay.</summary>
    public float Beta2 { get; init; } = 0.95f;

    /// <summary>ε in the denominator.</summary>
    public float Epsilon { get; init; } = 1e-8f;

    /// <summary>Decoupled weight decay λ, applied to projection matrices.</summary>
    public float WeightDecay { get; init; } = 0.1f;

    /// <summary>Also decay embeddings, norm gains and biases (off by default, as in GPT-2/llm.c practice).</summary>
    public bool DecayAllParameters { get; init; }

    /// <summary>Global gradient-norm clipping threshold; 0 or less disables clipping.</summary>
    public float MaxGradNorm { get; init; } = 1f;
}
