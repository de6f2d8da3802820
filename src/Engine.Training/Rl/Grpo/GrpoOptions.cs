using System.ComponentModel;
using System.Text.Json.Serialization;
using Engine.Core.Backends;
using Engine.Training.Options;

namespace Engine.Training.Rl.Grpo;

/// <summary>How the GRPO family turns the rewards of a step into advantages (OpenRLHF's and verl's <c>advantage_estimator</c>).</summary>
public enum AdvantageEstimator
{
    /// <summary>GRPO: the reward minus its group's mean, scaled per <c>scale_rewards</c>; every token of a completion shares it.</summary>
    Grpo,

    /// <summary>RLOO: the reward minus the mean of the other G − 1 rewards of its group, scaled per <c>scale_rewards</c>.</summary>
    Rloo,

    /// <summary>REINFORCE++: per-token rewards −β·KL_t plus the score at the last token, returns summed to the end, whitened over the batch's tokens.</summary>
    ReinforcePp,
}

/// <summary>
/// The critic-free online RL trainers of the GRPO family (GRPO, Dr. GRPO, DAPO, GSPO, RLOO, REINFORCE++); keys and
/// defaults are TRL's <c>GRPOConfig</c> where it has them. Inherits the shared trainer options, read as:
/// <c>batch_size</c> prompts per step (each sampled <c>num_generations</c> times), <c>gradient_accumulation_steps</c>
/// micro-batches per optimizer update, <c>max_steps</c> steps (sampling + updates; 0 = <c>epochs</c> passes over the
/// prompts), <c>max_length</c> the longest prompt + completion (prompts are cut from the left to
/// <c>max_length − max_completion_length</c>), <c>log_interval</c> and <c>checkpoint_interval</c> in steps.
/// </summary>
public sealed record GrpoOptions : TrainerOptions
{
    /// <summary>The GRPO defaults: TRL's learning rate 1e-6, a metrics line per step.</summary>
    public GrpoOptions()
    {
        LearningRate = 1e-6;
        LogInterval = 1;
        CheckpointInterval = 50;
        MaxLength = 512;
    }

    /// <summary>G, completions sampled per prompt (a group).</summary>
    [Description("G, completions sampled per prompt (at least 2)")]
    public int NumGenerations { get; init; } = 8;

    /// <summary>Sampling temperature τ; the log-probs of the ratio and the KL are those of logits/τ, as sampled.</summary>
    [Description("sampling temperature τ")]
    public float Temperature { get; init; } = 1f;

    /// <summary>Nucleus sampling (1 = off). Anything below 1 makes the behaviour policy differ from π/τ.</summary>
    [Description("nucleus sampling threshold (1 = off)")]
    public float TopP { get; init; } = 1f;

    /// <summary>Sample only from the K most likely tokens (0 = all).</summary>
    [Description("sample from the K most likely tokens (0 = all)")]
    public int TopK { get; init; }

    /// <summary>Most tokens sampled per completion.</summary>
    [Description("most tokens sampled per completion")]
    public int MaxCompletionLength { get; init; } = 256;

    /// <summary><see cref="MaxCompletionLength"/> as the length a default of which <see cref="ContextLength.Fit{T}"/> may halve to leave room for a prompt.</summary>
    public static GeneratedLength<GrpoOptions> Completion { get; } = new("max_completion_length", o => o.MaxCompletionLength, (o, n) => o with { MaxCompletionLength = n });

    /// <summary>Leave completions that ran out of tokens without EOS out of the loss (DAPO's overlong filtering).</summary>
    [Description("leave completions cut at max_completion_length out of the loss")]
    public bool MaskTruncatedCompletions { get; init; }

    /// <summary>The advantage estimator.</summary>
    [Description("advantages: grpo (group mean/std), rloo (leave-one-out mean) or reinforce_pp (batch-whitened returns, KL in the reward)")]
    public AdvantageEstimator AdvantageEstimator { get; init; } = AdvantageEstimator.Grpo;

    /// <summary>What the centred rewards are divided by (grpo and rloo): the group's std, the batch's, or nothing (Dr. GRPO).</summary>
    [Description("divide the centred rewards by the std of the group, of the batch, or none (Dr. GRPO)")]
    public RewardScaling ScaleRewards { get; init; } = RewardScaling.Group;

    /// <summary>ε (ε_low): the ratio is clipped below at 1 − ε.</summary>
    [Description("ε, the lower clip of the ratio (1 − ε)")]
    public float Epsilon { get; init; } = 0.2f;

    /// <summary>ε_high: the ratio is clipped above at 1 + ε_high (null = ε; DAPO's clip-higher uses 0.28).</summary>
    [Description("the upper clip of the ratio (1 + epsilon_high; null = epsilon)")]
    public float? EpsilonHigh { get; init; }

    /// <summary>Token ratios (GRPO) or one ratio per sequence from its mean log-ratio (GSPO).</summary>
    [Description("importance ratios per token or per sequence (GSPO)")]
    public ImportanceSamplingLevel ImportanceSamplingLevel { get; init; } = ImportanceSamplingLevel.Token;

    /// <summary>The loss normalisation: grpo, bnpo, dr_grpo or dapo (the default).</summary>
    [Description("loss normalisation: grpo (per sequence), bnpo (micro-batch tokens), dr_grpo (B·max_completion_length) or dapo (batch tokens)")]
    public GrpoLossType LossType { get; init; } = GrpoLossType.Dapo;

    /// <summary>β of the KL to the reference: the k3 term of the loss (grpo, rloo) or −β·k1 per token in the reward (reinforce_pp). 0 = no reference model loaded.</summary>
    [Description("β, the KL coefficient to the reference (0 = no reference model at all)")]
    public float Beta { get; init; }

    /// <summary>μ, passes of minibatch updates over each step's completions (the ratio's π_old is the sampling policy).</summary>
    [Description("μ, passes of minibatch updates over each step's completions")]
    public int NumIterations { get; init; } = 1;

    /// <summary>Minibatches each step's B·G completions are split into per pass; B·G must be a multiple of it.</summary>
    [Description("optimizer updates per pass over a step's completions (divides batch_size × num_generations)")]
    public int NumMiniBatches { get; init; } = 1;

    /// <summary>DAPO's dynamic sampling: draw more prompts until the step holds batch_size groups whose rewards differ.</summary>
    [Description("draw more prompts until batch_size groups have rewards that differ (DAPO)")]
    public bool DynamicSampling { get; init; }

    /// <summary>Most draws of batch_size prompts per step under dynamic sampling (verl's <c>max_num_gen_batches</c>); then the step goes on with what it has.</summary>
    [Description("dynamic sampling: most draws of batch_size prompts per step")]
    public int MaxNumGenBatches { get; init; } = 4;

    /// <summary>Rows per forward pass when sampling and computing the log-probs of a step (TRL's PPO <c>local_rollout_forward_batch_size</c>).</summary>
    [Description("rows per forward pass when sampling and computing log-probs")]
    public int LocalRolloutForwardBatchSize { get; init; } = 64;

    /// <summary>ε_high with its default applied.</summary>
    [JsonIgnore]
    public float ClipHigh => EpsilonHigh ?? Epsilon;

    /// <summary>Completions per step, B·G.</summary>
    [JsonIgnore]
    public int Completions => BatchSize * NumGenerations;

    /// <summary>Rows per optimizer update.</summary>
    [JsonIgnore]
    public int MiniBatchRows => Completions / NumMiniBatches;

    /// <summary>Rows per micro-batch (a minibatch split into <c>gradient_accumulation_steps</c>).</summary>
    [JsonIgnore]
    public int MicroBatchRows => MiniBatchRows / GradientAccumulationSteps;

    /// <summary>Longest prompt kept, in tokens.</summary>
    [JsonIgnore]
    public int MaxPromptLength => MaxLength - MaxCompletionLength;

    /// <summary>Whether a reference model is needed: only when β &gt; 0.</summary>
    [JsonIgnore]
    public bool NeedsReference => Beta > 0f;

    /// <summary>Whether π_old must be computed: it equals π (detached) when every step is one update of one pass.</summary>
    [JsonIgnore]
    public bool NeedsOldLogProbs => NumIterations > 1 || NumMiniBatches > 1;

    /// <inheritdoc/>
    public override void Validate()
    {
        base.Validate();
        Require(Dropout == 0f, $"dropout must be 0 for GRPO (the ratio π/π_old assumes deterministic passes), got {Dropout}");
        Require(EvalInterval == 0 && EvalBatches == 0, "eval_interval and eval_batches are not used by GRPO (it has no validation loss); leave them 0");
        Require(NumGenerations >= 2, $"num_generations must be at least 2 (advantages compare the completions of a prompt), got {NumGenerations}");
        Require(MaxCompletionLength >= 1, $"max_completion_length must be at least 1, got {MaxCompletionLength}");
        Require(MaxPromptLength >= 1, $"max_length ({MaxLength}) must exceed max_completion_length ({MaxCompletionLength}) so prompts keep at least one token");
        Require(Temperature > 0f && float.IsFinite(Temperature), $"temperature must be positive (GRPO needs the sampling distribution's log-probs), got {Temperature}");
        Require(TopK >= 0 && TopP > 0f && TopP <= 1f, $"top_k must be ≥ 0 and top_p in (0, 1], got {TopK} and {TopP}");
        Require(Enum.IsDefined(AdvantageEstimator) && Enum.IsDefined(ScaleRewards) && Enum.IsDefined(ImportanceSamplingLevel) && Enum.IsDefined(LossType),
            "advantage_estimator, scale_rewards, importance_sampling_level or loss_type is out of range");
        Require(Epsilon >= 0f && Epsilon < 1f, $"epsilon must be in [0, 1), got {Epsilon}");
        Require(ClipHigh >= 0f && float.IsFinite(ClipHigh), $"epsilon_high must be finite and ≥ 0, got {ClipHigh}");
        Require(Beta >= 0f && float.IsFinite(Beta), $"beta must be finite and ≥ 0, got {Beta}");
        Require(NumIterations >= 1, $"num_iterations must be at least 1, got {NumIterations}");
        Require(NumMiniBatches >= 1 && Completions % NumMiniBatches == 0,
            $"batch_size × num_generations ({Completions}) must be a multiple of num_mini_batches ({NumMiniBatches})");
        Require(MiniBatchRows % GradientAccumulationSteps == 0,
            $"the minibatch of {MiniBatchRows} completions (batch_size × num_generations / num_mini_batches) must be a multiple of gradient_accumulation_steps ({GradientAccumulationSteps})");
        Require(MaxNumGenBatches >= 1, $"max_num_gen_batches must be at least 1, got {MaxNumGenBatches}");
        Require(LocalRolloutForwardBatchSize >= 1, $"local_rollout_forward_batch_size must be at least 1, got {LocalRolloutForwardBatchSize}");
    }

    private static void Require(bool condition, string message)
    {
        if (!condition)
        {
            throw new ArgumentException(message);
        }
    }
}
