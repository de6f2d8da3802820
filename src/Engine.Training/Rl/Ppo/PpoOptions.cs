using System.ComponentModel;
using System.Text.Json.Serialization;
using Engine.Training.Options;

namespace Engine.Training.Rl.Ppo;

/// <summary>Which per-token estimator of KL(π ‖ π_ref) the reward penalises (Schulman, "Approximating KL divergence").</summary>
public enum KlEstimator
{
    /// <summary>k1 = log π − log π_ref: unbiased, can be negative per token (TRL's default).</summary>
    K1,

    /// <summary>k3 = e^(log π_ref − log π) − (log π_ref − log π) − 1: unbiased and never negative, lower variance.</summary>
    K3,
}

/// <summary>
/// PPO for RLHF (InstructGPT; TRL's <c>PPOConfig</c>), with PPO-ptx. Inherits the shared trainer options, read as:
/// <c>learning_rate</c> the actor's peak rate (and the critic's unless <c>critic_learning_rate</c> is set), its
/// schedule over PPO steps, <c>max_steps</c> PPO steps (rollout + updates; 0 = <c>epochs</c> passes over the prompts),
/// <c>batch_size</c> prompts per rollout, <c>gradient_accumulation_steps</c> micro-batches per minibatch update,
/// <c>optimizer</c> both models' AdamW and clipping (each model has its own moments), <c>max_length</c> the longest
/// prompt + response (prompts are cut from the left to <c>max_length − response_length</c>), <c>log_interval</c> and
/// <c>checkpoint_interval</c> in PPO steps. Keys and defaults are TRL's where it has them.
/// </summary>
public sealed record PpoOptions : TrainerOptions
{
    /// <summary>The PPO defaults: TRL's learning rate 3e-6 (linear decay), a metrics line per step.</summary>
    public PpoOptions()
    {
        LearningRate = 3e-6;
        LogInterval = 1;
        CheckpointInterval = 50;
        MaxLength = 512;
    }

    /// <summary>The critic's peak learning rate; null = <see cref="TrainerOptions.LearningRate"/>.</summary>
    [Description("the critic's peak learning rate (null = learning_rate)")]
    public double? CriticLearningRate { get; init; }

    /// <summary>Most tokens sampled per response (TRL's <c>response_length</c>).</summary>
    [Description("most tokens sampled per response")]
    public int ResponseLength { get; init; } = 53;

    /// <summary><see cref="ResponseLength"/> as the length a default of which <see cref="ContextLength.Fit{T}"/> may halve to leave room for a prompt.</summary>
    public static GeneratedLength<PpoOptions> Response { get; } = new("response_length", o => o.ResponseLength, (o, n) => o with { ResponseLength = n });

    /// <summary>Sampling temperature τ; the log-probs of the ratio and the KL are those of logits/τ, as sampled (TRL: 0.7).</summary>
    [Description("sampling temperature τ")]
    public float Temperature { get; init; } = 0.7f;

    /// <summary>Sample only from the K most likely tokens (0 = all). Anything but 0 makes the behaviour policy differ from π/τ.</summary>
    [Description("sample from the K most likely tokens (0 = all)")]
    public int TopK { get; init; }

    /// <summary>Nucleus sampling (1 = off). Anything below 1 makes the behaviour policy differ from π/τ.</summary>
    [Description("nucleus sampling threshold (1 = off)")]
    public float TopP { get; init; } = 1f;

    /// <summary>Passes of minibatch updates over each rollout (TRL's <c>num_ppo_epochs</c>).</summary>
    [Description("passes of minibatch updates over each rollout")]
    public int NumPpoEpochs { get; init; } = 4;

    /// <summary>Minibatches each rollout is split into per PPO epoch; <c>batch_size</c> must be a multiple of it.</summary>
    [Description("minibatches per rollout per PPO epoch (divides batch_size)")]
    public int NumMiniBatches { get; init; } = 1;

    /// <summary>β, the KL penalty's coefficient (its start value when adaptive; TRL's <c>kl_coef</c>).</summary>
    [Description("β, the KL penalty's coefficient (start value when adaptive)")]
    public double KlCoef { get; init; } = 0.05;

    /// <summary>The per-token KL estimator in the reward (TRL's <c>kl_estimator</c>).</summary>
    [Description("per-token KL estimator in the reward: k1 or k3")]
    public KlEstimator KlEstimator { get; init; } = KlEstimator.K1;

    /// <summary>Adapt β towards <see cref="KlTarget"/> (Ziegler et al. 2019; TRL ≤ 0.11's <c>adap_kl_ctrl</c>).</summary>
    [Description("adapt β towards kl_target")]
    public bool AdaptiveKl { get; init; }

    /// <summary>The adaptive controller's target of the mean per-sequence KL, in nats (TRL ≤ 0.11's <c>target</c>).</summary>
    [Description("adaptive β: target mean KL per sequence, in nats")]
    public double KlTarget { get; init; } = 6.0;

    /// <summary>The adaptive controller's horizon, in sequences (TRL ≤ 0.11's <c>horizon</c>).</summary>
    [Description("adaptive β: horizon in sequences")]
    public double KlHorizon { get; init; } = 10000;

    /// <summary>ε of the policy ratio clip (TRL's <c>cliprange</c>).</summary>
    [Description("ε of the policy ratio clip")]
    public float Cliprange { get; init; } = 0.2f;

    /// <summary>ε_v of the value clip around the rollout's values (TRL's <c>cliprange_value</c>).</summary>
    [Description("ε of the value clip around the rollout's values")]
    public float CliprangeValue { get; init; } = 0.2f;

    /// <summary>The value loss's coefficient in the critic's loss (TRL's <c>vf_coef</c>).</summary>
    [Description("the value loss's coefficient")]
    public float VfCoef { get; init; } = 0.1f;

    /// <summary>γ, the discount of GAE.</summary>
    [Description("γ, the discount of GAE")]
    public float Gamma { get; init; } = 1f;

    /// <summary>λ of GAE (TRL's <c>lam</c>).</summary>
    [Description("λ of GAE")]
    public float Lam { get; init; } = 0.95f;

    /// <summary>Scale the per-token rewards by their masked standard deviation (mean kept) before GAE.</summary>
    [Description("scale per-token rewards by their standard deviation before GAE")]
    public bool WhitenRewards { get; init; }

    /// <summary>Subtracted from the score of a response that did not end with EOS (TRL's <c>missing_eos_penalty</c>); null = none.</summary>
    [Description("subtracted from the score of a response without EOS (null = none)")]
    public float? MissingEosPenalty { get; init; }

    /// <summary>Standardise the reward model's scores with the mean/std stored with it (reward_head.json).</summary>
    [Description("standardise scores with the reward model's stored mean/std")]
    public bool NormalizeReward { get; init; }

    /// <summary>Clip the (normalised) scores to ±this; 0 = no clipping.</summary>
    [Description("clip the scores to ±this (0 = no clipping)")]
    public float RewardClip { get; init; }

    /// <summary>PPO-ptx: γ_ptx, the weight of the next-token loss on pretraining text added to the actor's loss (used when pretraining data is given).</summary>
    [Description("PPO-ptx: weight of the pretraining loss on --ptx-data")]
    public float PtxCoef { get; init; } = 0.05f;

    /// <summary>Rows of pretraining text per update (0 = the rows of a micro-batch).</summary>
    [Description("rows of pretraining text per update (0 = a micro-batch's rows)")]
    public int PtxBatchSize { get; init; }

    /// <summary>Rows per forward pass when generating and scoring a rollout (TRL's <c>local_rollout_forward_batch_size</c>).</summary>
    [Description("rows per forward pass when generating and scoring a rollout")]
    public int LocalRolloutForwardBatchSize { get; init; } = 64;

    /// <summary>Rows per minibatch update.</summary>
    [JsonIgnore]
    public int MiniBatchRows => BatchSize / NumMiniBatches;

    /// <summary>Rows per micro-batch (a minibatch split into <c>gradient_accumulation_steps</c>).</summary>
    [JsonIgnore]
    public int MicroBatchRows => MiniBatchRows / GradientAccumulationSteps;

    /// <summary>Longest prompt kept, in tokens.</summary>
    [JsonIgnore]
    public int MaxPromptLength => MaxLength - ResponseLength;

    /// <inheritdoc/>
    public override void Validate()
    {
        base.Validate();
        if (Dropout != 0f)
        {
            throw new ArgumentException($"dropout must be 0 for PPO (the ratio π/π_old assumes deterministic passes), got {Dropout}");
        }

        if (EvalInterval != 0 || EvalBatches != 0)
        {
            throw new ArgumentException("eval_interval and eval_batches are not used by PPO (it has no validation loss); leave them 0");
        }

        if (CriticLearningRate is double critic && !(critic > 0 && double.IsFinite(critic)))
        {
            throw new ArgumentException($"critic_learning_rate must be positive, got {critic}");
        }

        if (ResponseLength < 1)
        {
            throw new ArgumentException($"response_length must be at least 1, got {ResponseLength}");
        }

        if (MaxPromptLength < 1)
        {
            throw new ArgumentException($"max_length ({MaxLength}) must exceed response_length ({ResponseLength}) so prompts keep at least one token");
        }

        if (!(Temperature > 0f && float.IsFinite(Temperature)))
        {
            throw new ArgumentException($"temperature must be positive (PPO needs the sampling distribution's log-probs), got {Temperature}");
        }

        if (TopK < 0 || !(TopP > 0f && TopP <= 1f))
        {
            throw new ArgumentException($"top_k must be ≥ 0 and top_p in (0, 1], got {TopK} and {TopP}");
        }

        if (NumPpoEpochs < 1)
        {
            throw new ArgumentException($"num_ppo_epochs must be at least 1, got {NumPpoEpochs}");
        }

        if (NumMiniBatches < 1 || BatchSize % NumMiniBatches != 0)
        {
            throw new ArgumentException($"batch_size ({BatchSize}) must be a multiple of num_mini_batches ({NumMiniBatches})");
        }

        if (MiniBatchRows % GradientAccumulationSteps != 0)
        {
            throw new ArgumentException(
                $"the minibatch of {MiniBatchRows} rows (batch_size / num_mini_batches) must be a multiple of gradient_accumulation_steps ({GradientAccumulationSteps})");
        }

        if (!(KlCoef >= 0 && double.IsFinite(KlCoef)))
        {
            throw new ArgumentException($"kl_coef must be finite and ≥ 0, got {KlCoef}");
        }

        if (!Enum.IsDefined(KlEstimator))
        {
            throw new ArgumentException($"kl_estimator must be k1 or k3, got {(int)KlEstimator}");
        }

        if (AdaptiveKl && (!(KlTarget > 0 && double.IsFinite(KlTarget)) || !(KlHorizon > 0 && double.IsFinite(KlHorizon)) || KlCoef == 0))
        {
            throw new ArgumentException($"the adaptive KL controller needs kl_target > 0, kl_horizon > 0 and kl_coef > 0, got {KlTarget}, {KlHorizon} and {KlCoef}");
        }

        if (!(Cliprange >= 0f && float.IsFinite(Cliprange)) || !(CliprangeValue >= 0f && float.IsFinite(CliprangeValue)))
        {
            throw new ArgumentException($"cliprange and cliprange_value must be finite and ≥ 0, got {Cliprange} and {CliprangeValue}");
        }

        if (!(VfCoef > 0f && float.IsFinite(VfCoef)))
        {
            throw new ArgumentException($"vf_coef must be positive, got {VfCoef}");
        }

        if (!(Gamma >= 0f && Gamma <= 1f) || !(Lam >= 0f && Lam <= 1f))
        {
            throw new ArgumentException($"gamma and lam must be in [0, 1], got {Gamma} and {Lam}");
        }

        if (MissingEosPenalty is float penalty && !(penalty >= 0f && float.IsFinite(penalty)))
        {
            throw new ArgumentException($"missing_eos_penalty must be finite and ≥ 0 (it is subtracted from the score), got {penalty}");
        }

        if (!(RewardClip >= 0f && float.IsFinite(RewardClip)))
        {
            throw new ArgumentException($"reward_clip must be finite and ≥ 0, got {RewardClip}");
        }

        if (!(PtxCoef >= 0f && float.IsFinite(PtxCoef)))
        {
            throw new ArgumentException($"ptx_coef must be finite and ≥ 0, got {PtxCoef}");
        }

        if (PtxBatchSize < 0 || LocalRolloutForwardBatchSize < 1)
        {
            throw new ArgumentException($"ptx_batch_size must be ≥ 0 and local_rollout_forward_batch_size ≥ 1, got {PtxBatchSize} and {LocalRolloutForwardBatchSize}");
        }
    }
}
