using Engine.Core.Tensors;
using Engine.Models.Lora;

namespace Engine.Training.Rl.Memory;

/// <summary>
/// The sizes and levers of an RL run (PPO or online DPO) that decide its memory, with their defaults here and nowhere
/// else. T = <see cref="PromptLength"/> + <see cref="ResponseLength"/> is the row length of every teacher-forced pass.
/// </summary>
public sealed record RlMemoryShape
{
    /// <summary>Sequences sampled per rollout (PPO: prompts per rollout; online DPO: prompts × samples per prompt).</summary>
    public int RolloutBatch { get; init; } = 64;

    /// <summary>Sequences decoded together, the B of the KV cache (0 = the whole rollout at once).</summary>
    public int GenerationBatch { get; init; }

    /// <summary>Rows per training forward/backward (PPO: a minibatch; DPO: chosen plus rejected rows of a micro-batch).</summary>
    public int Minibatch { get; init; } = 8;

    /// <summary>Rows per inference forward over the rollout (old and reference log-probs, values, rewards); 0 = the whole rollout at once.</summary>
    public int ScoringBatch { get; init; }

    /// <summary>Longest prompt in tokens.</summary>
    public int PromptLength { get; init; } = 128;

    /// <summary>Longest response in tokens.</summary>
    public int ResponseLength { get; init; } = 128;

    /// <summary>Rows of pretraining text per training forward/backward (PPO-ptx); 0 = none.</summary>
    public int PretrainingRows { get; init; }

    /// <summary>
    /// Reference log-probs are computed once per rollout and kept as numbers (the reference is loaded to score, then
    /// released), so the reference model is not resident while the other roles train.
    /// </summary>
    public bool CachedReferenceLogProbs { get; init; }

    /// <summary>
    /// LoRA on the trained policy (actor): it holds its frozen base plus the adapters, gradients and AdamW moments of the
    /// adapters only; the reference is that base with the adapters off, so it holds no weights of its own, unless the plan
    /// is told the reference is a model of its own (<c>--ref</c>, counted in full). Null: full training.
    /// </summary>
    public LoraConfig? Lora { get; init; }

    /// <summary>Element type of the weights (every role).</summary>
    public DType WeightType { get; init; } = DType.F32;

    /// <summary>Element type of the gradients (trained roles).</summary>
    public DType GradientType { get; init; } = DType.F32;

    /// <summary>Element type of each of AdamW's two moments (trained roles).</summary>
    public DType MomentType { get; init; } = DType.F32;

    /// <summary>T, the row length of the teacher-forced passes.</summary>
    public int Time => PromptLength + ResponseLength;

    /// <summary>Trained roles recompute each layer in backward (gradient_checkpointing), keeping only each layer's input.</summary>
    public bool GradientCheckpointing { get; init; }

    /// <summary>The KV cache's B with the default applied.</summary>
    public int GenerationRows => GenerationBatch > 0 ? Math.Min(GenerationBatch, RolloutBatch) : RolloutBatch;

    /// <summary>The scoring forward's rows with the default applied.</summary>
    public int ScoringRows => ScoringBatch > 0 ? Math.Min(ScoringBatch, RolloutBatch) : RolloutBatch;

    /// <summary>Throws an <see cref="ArgumentException"/> naming the first field out of range.</summary>
    public void Validate()
    {
        static void Positive(int value, string name)
        {
            if (value <= 0)
            {
                throw new ArgumentException($"{name} must be positive, got {value}");
            }
        }

        Positive(RolloutBatch, "rollout batch");
        Positive(Minibatch, "minibatch");
        Positive(PromptLength, "prompt length");
        Positive(ResponseLength, "response length");
        if (GenerationBatch < 0 || ScoringBatch < 0 || PretrainingRows < 0)
        {
            throw new ArgumentException(
                $"generation batch, scoring batch and pretraining rows must not be negative (0 = the whole rollout, or none), got {GenerationBatch}, {ScoringBatch} and {PretrainingRows}");
        }

        foreach (var (type, name) in new[] { (WeightType, "weight"), (GradientType, "gradient"), (MomentType, "moment") })
        {
            if (type == DType.I32 || !Enum.IsDefined(type))
            {
                throw new ArgumentException($"the {name} type must be a floating-point type (f32, bf16 or f16), got {type}");
            }
        }
    }
}
