using System.ComponentModel;
using Engine.Training.Objectives;
using Engine.Training.Options;

namespace Engine.Training.Rl.OnlineDpo;

/// <summary>
/// Online (iterative) DPO: every round samples <see cref="SamplesPerPrompt"/> responses to each of
/// <c>batch_size · gradient_accumulation_steps</c> prompts from the current policy, the reward model picks the best as
/// chosen and the worst as rejected (prompts whose samples tie are skipped), and <see cref="UpdatesPerRound"/> DPO updates
/// follow on those pairs. Defaults follow TRL's <c>OnlineDPOConfig</c> (temperature 0.9, 64 new tokens, β 0.1,
/// learning rate 5e-7); the keys are read like every trainer's (<c>dpo.beta</c>, <c>samples_per_prompt</c>, ...).
/// </summary>
public sealed record OnlineDpoOptions : TrainerOptions
{
    /// <summary>The online-DPO defaults.</summary>
    public OnlineDpoOptions()
    {
        LearningRate = 5e-7;
    }

    /// <summary>The DPO loss, β and label smoothing of the updates (<see cref="DpoObjective"/>).</summary>
    public DpoOptions Dpo { get; init; } = new();

    /// <summary>K, responses sampled per prompt (at least 2): chosen is the best-scored, rejected the worst.</summary>
    [Description("responses sampled per prompt (best = chosen, worst = rejected)")]
    public int SamplesPerPrompt { get; init; } = 2;

    /// <summary>Most tokens sampled per response (EOS included).</summary>
    [Description("most tokens sampled per response")]
    public int MaxNewTokens { get; init; } = 64;

    /// <summary><see cref="MaxNewTokens"/> as the length a default of which <see cref="ContextLength.Fit{T}"/> may halve to leave room for a prompt.</summary>
    public static GeneratedLength<OnlineDpoOptions> Response { get; } = new("max_new_tokens", o => o.MaxNewTokens, (o, n) => o with { MaxNewTokens = n });

    /// <summary>Sampling temperature (greedy 0 would make every sample of a prompt the same).</summary>
    [Description("sampling temperature")]
    public float Temperature { get; init; } = 0.9f;

    /// <summary>Keep only the K most likely tokens when sampling; 0 = all.</summary>
    [Description("sample from the K most likely tokens (0 = all)")]
    public int TopK { get; init; }

    /// <summary>Nucleus sampling threshold; 1 = all.</summary>
    [Description("nucleus sampling threshold (1 = all)")]
    public float TopP { get; init; } = 1f;

    /// <summary>DPO updates on each round's pairs (each one optimizer step over all of them).</summary>
    [Description("DPO optimizer steps on each round's pairs")]
    public int UpdatesPerRound { get; init; } = 1;

    /// <summary>Subtracted from the score of a sample that did not end with EOS before picking chosen and rejected (TRL's missing_eos_penalty); 0 = none.</summary>
    [Description("subtracted from the score of a sample without EOS (0 = none)")]
    public float MissingEosPenalty { get; init; }

    /// <summary>A prompt is skipped when its best and worst scores differ by this much or less (0: only exact ties).</summary>
    [Description("skip a prompt whose best and worst scores differ by this or less")]
    public float MinScoreGap { get; init; }

    /// <summary>Sequences decoded together (the KV cache's batch); 0 = the whole round at once.</summary>
    [Description("sequences decoded together (0 = the whole round)")]
    public int GenerationBatch { get; init; }

    /// <summary>Samples per forward pass of the reward model; 0 = the whole round at once.</summary>
    [Description("samples per reward-model forward pass (0 = the whole round)")]
    public int ScoringBatch { get; init; } = 16;

    /// <summary>Longest prompt in tokens, max_length − max_new_tokens (longer prompts are cut from the left, as PPO's).</summary>
    public int MaxPromptLength => MaxLength - MaxNewTokens;

    /// <summary>Prompts sampled per round: <c>batch_size · gradient_accumulation_steps</c>.</summary>
    public int PromptsPerRound => BatchSize * GradientAccumulationSteps;

    /// <inheritdoc/>
    public override void Validate()
    {
        base.Validate();
        ArgumentNullException.ThrowIfNull(Dpo);
        try
        {
            Dpo.Validate();
        }
        catch (ArgumentException e)
        {
            throw new ArgumentException($"dpo: {e.Message}", e);
        }

        if (SamplesPerPrompt < 2)
        {
            throw new ArgumentException($"samples_per_prompt must be at least 2 (chosen and rejected come from different samples), got {SamplesPerPrompt}");
        }

        if (MaxNewTokens < 1)
        {
            throw new ArgumentException($"max_new_tokens must be at least 1, got {MaxNewTokens}");
        }

        if (MaxPromptLength < 1)
        {
            throw new ArgumentException($"max_length ({MaxLength}) must exceed max_new_tokens ({MaxNewTokens}) so prompts keep at least one token");
        }

        if (!(Temperature > 0f) || !float.IsFinite(Temperature))
        {
            throw new ArgumentException($"temperature must be finite and > 0 (greedy samples of one prompt would all be equal), got {Temperature}");
        }

        if (TopK < 0 || !(TopP > 0f && TopP <= 1f))
        {
            throw new ArgumentException($"top_k must be ≥ 0 and top_p in (0, 1], got {TopK} and {TopP}");
        }

        if (UpdatesPerRound < 1)
        {
            throw new ArgumentException($"updates_per_round must be at least 1, got {UpdatesPerRound}");
        }

        if (MaxSteps % UpdatesPerRound != 0 || CheckpointInterval % UpdatesPerRound != 0)
        {
            throw new ArgumentException(
                $"max_steps ({MaxSteps}) and checkpoint_interval ({CheckpointInterval}) must be multiples of updates_per_round ({UpdatesPerRound}): checkpoints fall between rounds so a resume samples the same pairs");
        }

        if (!(MissingEosPenalty >= 0f) || !float.IsFinite(MissingEosPenalty) || !(MinScoreGap >= 0f) || !float.IsFinite(MinScoreGap))
        {
            throw new ArgumentException($"missing_eos_penalty and min_score_gap must be finite and ≥ 0, got {MissingEosPenalty} and {MinScoreGap}");
        }

        if (GenerationBatch < 0 || ScoringBatch < 0)
        {
            throw new ArgumentException($"generation_batch and scoring_batch must be ≥ 0 (0 = the whole round), got {GenerationBatch} and {ScoringBatch}");
        }
    }
}
