using System.ComponentModel;
using Engine.Models;
using Engine.Training.Data;

namespace Engine.Training.Options;

/// <summary>How the learning rate decays after warmup.</summary>
public enum LearningRateSchedule
{
    /// <summary>The peak rate throughout (after warmup).</summary>
    Constant,
    /// <summary>Linear from the peak to <c>min_learning_rate_ratio</c>·peak at the last step.</summary>
    Linear,
    /// <summary>Half a cosine from the peak to <c>min_learning_rate_ratio</c>·peak at the last step.</summary>
    Cosine,
}

/// <summary>What a trainer does when a step's loss or gradient norm is NaN or infinite.</summary>
public enum NanPolicy
{
    /// <summary>Stop with an error naming the step; the last good checkpoint is kept.</summary>
    Stop,
    /// <summary>Drop the step's update (parameters and moments untouched), count it as skipped, and go on.</summary>
    Skip,
}

/// <summary>
/// Options every trainer shares, with their defaults here and nowhere else (Hugging Face <c>TrainingArguments</c>
/// defaults where one exists). Read from JSON or YAML and <c>key=value</c> overrides by <see cref="OptionsReader"/>;
/// keys are the snake_case property names (<c>learning_rate</c>, <c>optimizer.beta2</c>), and the common TRL spellings
/// (<c>lr_scheduler_type</c>, <c>per_device_train_batch_size</c>, <c>max_grad_norm</c>, ...) are accepted as aliases.
/// </summary>
public record TrainerOptions
{
    /// <summary>Peak learning rate.</summary>
    [Description("peak learning rate")]
    public double LearningRate { get; init; } = 5e-5;

    /// <summary>Decay after warmup.</summary>
    [Description("decay after warmup: constant, linear or cosine")]
    public LearningRateSchedule Schedule { get; init; } = LearningRateSchedule.Linear;

    /// <summary>Steps of linear warmup from 0 to the peak: step s ≤ W gets peak·s/W.</summary>
    [Description("steps of linear warmup from 0 to the peak rate")]
    public int WarmupSteps { get; init; }

    /// <summary>The rate at the last step as a fraction of the peak (linear and cosine schedules).</summary>
    [Description("the rate at the last step as a fraction of the peak (linear, cosine)")]
    public double MinLearningRateRatio { get; init; }

    /// <summary>Optimizer steps to run; 0 to derive them from <see cref="Epochs"/>.</summary>
    [Description("optimizer steps to run; 0 = epochs × (batches per epoch ÷ gradient_accumulation_steps), at least 1")]
    public int MaxSteps { get; init; }

    /// <summary>Passes over the training data when <see cref="MaxSteps"/> is 0.</summary>
    [Description("passes over the training data (used when max_steps is 0)")]
    public int Epochs { get; init; } = 1;

    /// <summary>Rows per micro-batch (training and evaluation).</summary>
    [Description("rows per micro-batch (training and evaluation)")]
    public int BatchSize { get; init; } = 8;

    /// <summary>Micro-batches whose gradients are summed (each weighted by its share of the counted tokens) before one optimizer step.</summary>
    [Description("micro-batches summed into one optimizer step")]
    public int GradientAccumulationSteps { get; init; } = 1;

    /// <summary>AdamW β₁, β₂, ε, weight decay and gradient clipping (<see cref="AdamWSettings.MaxGradNorm"/>).</summary>
    public AdamWSettings Optimizer { get; init; } = new();

    /// <summary>
    /// LoRA adapters to train over the frozen model instead of every weight (the <c>lora:</c> block; <c>--lora</c>
    /// overrides its keys); null for full training.
    /// </summary>
    public LoraOptions? Lora { get; init; }

    /// <summary>Residual dropout probability in training passes (embedding and every branch output; no attention-probability dropout).</summary>
    [Description("residual dropout probability while training")]
    public float Dropout { get; init; }

    /// <summary>
    /// Activation recomputation (<see cref="Transformer.GradientCheckpointing"/>): keep only each layer's input in forward and
    /// recompute the layer in backward; far less activation memory for about one more forward pass, same gradient bits.
    /// </summary>
    [Description("keep only each layer's input and recompute the layer in backward (less memory, ~1 more forward pass of time)")]
    public bool GradientCheckpointing { get; init; }

    /// <summary>CUDA matrix products in TF32 (Hugging Face's <c>tf32</c>; the same as <c>--tf32</c>); no effect on the CPU.</summary>
    [Description("run CUDA matrix products in TF32 (same as --tf32; no effect on the CPU)")]
    public bool Tf32 { get; init; }

    /// <summary>Evaluate every this many steps (0: only at the end of each epoch and of training).</summary>
    [Description("evaluate every N steps (0 = at the end of each epoch and of training)")]
    public int EvalInterval { get; init; }

    /// <summary>Validation micro-batches per evaluation (0: the whole validation set).</summary>
    [Description("validation micro-batches per evaluation (0 = all)")]
    public int EvalBatches { get; init; }

    /// <summary>Write a metrics line every this many steps (the loss is the mean over them).</summary>
    [Description("write a metrics line every N steps")]
    public int LogInterval { get; init; } = 10;

    /// <summary>Save a checkpoint every this many steps (0: only at the end, on cancellation).</summary>
    [Description("save a checkpoint every N steps (0 = only at the end and on Ctrl+C)")]
    public int CheckpointInterval { get; init; } = 500;

    /// <summary>Checkpoints kept; older ones are deleted once a newer one is complete (0: keep all).</summary>
    [Description("checkpoints kept (0 = all)")]
    public int KeepLast { get; init; } = 2;

    /// <summary>Seed of data shuffling and dropout masks.</summary>
    [Description("seed of data shuffling and dropout")]
    public ulong Seed { get; init; } = 42;

    /// <summary>Longest sequence in tokens (the row length when packing).</summary>
    [Description("longest sequence in tokens (the row length when packing); left unset, cut to the model's context when that is shorter")]
    public int MaxLength { get; init; } = 1024;

    /// <summary>What to do on a non-finite loss or gradient norm.</summary>
    [Description("on a NaN/infinite loss or gradient: stop, or skip the update")]
    public NanPolicy NanPolicy { get; init; } = NanPolicy.Stop;

    /// <summary>Where checkpoints and <c>metrics.jsonl</c> go.</summary>
    [Description("where checkpoints and metrics.jsonl go (the --out flag)")]
    public string OutputDirectory { get; init; } = "output";

    /// <summary>Continue from the newest complete checkpoint in <see cref="OutputDirectory"/> (a fresh start when there is none).</summary>
    [Description("continue from the newest checkpoint in the output directory (the --resume flag)")]
    public bool Resume { get; init; }

    /// <summary>Largest batch_size × max_length: the activation layout indexes the N = B·T positions of a micro-batch with an int.</summary>
    public const int MaxTokensPerBatch = 1 << 24;

    /// <summary>Checks every field; the message names the key.</summary>
    /// <exception cref="ArgumentException">A value out of range.</exception>
    public virtual void Validate()
    {
        static void Positive(double value, string key)
        {
            // The kernels compute in fp32: 1e300 would be infinity there, and 1e-50 zero.
            if (!((float)value > 0) || !float.IsFinite((float)value))
            {
                throw new ArgumentException($"{key} must be positive and finite in fp32, got {value}");
            }
        }

        static void NonNegative(long value, string key)
        {
            if (value < 0)
            {
                throw new ArgumentException($"{key} must not be negative, got {value}");
            }
        }

        Positive(LearningRate, "learning_rate");
        NonNegative(WarmupSteps, "warmup_steps");
        if (!(MinLearningRateRatio >= 0 && MinLearningRateRatio <= 1))
        {
            throw new ArgumentException($"min_learning_rate_ratio must be in [0, 1], got {MinLearningRateRatio}");
        }

        NonNegative(MaxSteps, "max_steps");
        if (MaxSteps == 0)
        {
            Positive(Epochs, "epochs");
        }

        Positive(BatchSize, "batch_size");
        Positive(GradientAccumulationSteps, "gradient_accumulation_steps");
        if (!(Dropout >= 0 && Dropout < 1))
        {
            throw new ArgumentException($"dropout must be in [0, 1), got {Dropout}");
        }

        if (!(Optimizer.Beta1 >= 0 && Optimizer.Beta1 < 1) || !(Optimizer.Beta2 >= 0 && Optimizer.Beta2 < 1))
        {
            throw new ArgumentException($"optimizer.beta1 and optimizer.beta2 must be in [0, 1), got {Optimizer.Beta1} and {Optimizer.Beta2}");
        }

        Positive(Optimizer.Epsilon, "optimizer.epsilon");
        if (!(Optimizer.WeightDecay >= 0) || !double.IsFinite(Optimizer.WeightDecay))
        {
            throw new ArgumentException($"optimizer.weight_decay must not be negative, got {Optimizer.WeightDecay}");
        }

        NonNegative(EvalInterval, "eval_interval");
        NonNegative(EvalBatches, "eval_batches");
        Positive(LogInterval, "log_interval");
        NonNegative(CheckpointInterval, "checkpoint_interval");
        NonNegative(KeepLast, "keep_last");
        if (MaxLength < 2)
        {
            throw new ArgumentException($"max_length must be at least 2, got {MaxLength}");
        }

        if ((long)BatchSize * MaxLength > MaxTokensPerBatch)
        {
            throw new ArgumentException($"batch_size × max_length = {(long)BatchSize * MaxLength:N0} tokens, over the limit of {MaxTokensPerBatch:N0} per micro-batch");
        }

        if (string.IsNullOrWhiteSpace(OutputDirectory))
        {
            throw new ArgumentException("output_directory must be set");
        }
    }
}

/// <summary>
/// Pretraining from scratch: next-token loss on <c>text</c> data, documents joined by EOS into one stream cut into rows of
/// <see cref="TrainerOptions.MaxLength"/> tokens. Defaults follow GPT-2/llm.c practice (peak 6e-4, cosine to 10%).
/// </summary>
public sealed record PretrainOptions : TrainerOptions
{
    /// <summary>The pretraining defaults.</summary>
    public PretrainOptions()
    {
        LearningRate = 6e-4;
        Schedule = LearningRateSchedule.Cosine;
        MinLearningRateRatio = 0.1;
    }
}

/// <summary>
/// Supervised fine-tuning: loss on completions and assistant turns only (text, prompt/completion, Alpaca, messages), one
/// example per row padded to the batch's longest or packed. Defaults follow TRL's <c>SFTConfig</c> (peak 2e-5, linear).
/// </summary>
public sealed record SftOptions : TrainerOptions
{
    /// <summary>The SFT defaults.</summary>
    public SftOptions()
    {
        LearningRate = 2e-5;
    }

    /// <summary>
    /// Padding-free packing: several examples per row of <see cref="TrainerOptions.MaxLength"/> tokens, positions restarting at
    /// 0 for each and attention kept inside each (no cross-document attention or loss).
    /// </summary>
    [Description("pack several examples into each row of max_length tokens (positions restart and attention stays per example)")]
    public bool Packing { get; init; }

    /// <summary>How examples are assigned to packed rows (<see cref="Data.PackingStrategy"/>).</summary>
    [Description("packed rows: bfd (best-fit decreasing, TRL's default) or sequential (in data order, a new row when the next does not fit)")]
    public PackingStrategy PackingStrategy { get; init; } = PackingStrategy.Bfd;

    /// <summary>Train on completion and assistant tokens only; false trains every token.</summary>
    [Description("loss on completion and assistant tokens only (false: on every token)")]
    public bool CompletionOnlyLoss { get; init; } = true;

    /// <summary>Longest prompt in tokens before fitting to <see cref="TrainerOptions.MaxLength"/> (0: no separate limit).</summary>
    [Description("longest prompt in tokens before fitting to max_length (0 = no separate limit)")]
    public int MaxPromptLength { get; init; }

    /// <summary>Cut over-long examples from the prompt's start first so the response survives (else from the right).</summary>
    [Description("cut over-long examples from the prompt's start so the response survives")]
    public bool TruncatePromptLeft { get; init; } = true;

    /// <summary>Append EOS after plain-text completions so the model learns to stop.</summary>
    [Description("append EOS after plain-text completions so the model learns to stop")]
    public bool AppendEos { get; init; } = true;

    /// <summary>The collation these options imply.</summary>
    public CollatorOptions CollatorOptions(int padTokenId = 0) => new()
    {
        MaxLength = MaxLength,
        MaxPromptLength = MaxPromptLength,
        TruncatePromptLeft = TruncatePromptLeft,
        CompletionOnlyLoss = CompletionOnlyLoss,
        AppendEos = AppendEos,
        Packing = Packing,
        PackingStrategy = PackingStrategy,
        PadTokenId = padTokenId,
    };

    /// <inheritdoc/>
    public override void Validate()
    {
        base.Validate();
        if (MaxPromptLength < 0)
        {
            throw new ArgumentException($"max_prompt_length must not be negative, got {MaxPromptLength}");
        }
    }
}
