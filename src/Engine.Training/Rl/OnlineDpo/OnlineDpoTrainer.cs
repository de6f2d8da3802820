using System.Globalization;
using Engine.Models;
using Engine.Models.HuggingFace;
using Engine.Training.Data;
using Engine.Training.Rl.Memory;
using Engine.Training.Rl.Sampling;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Engine.Training.Rl.OnlineDpo;

/// <summary>
/// Online (iterative) DPO (Guo et al. 2024, "Direct Language Model Alignment from Online AI Feedback"; TRL's
/// <c>OnlineDPOTrainer</c>): rounds of sampling K responses per prompt from the current policy, labelling the best and
/// worst by a frozen reward model, and DPO updates against a frozen reference (<see cref="OnlinePreferenceSource"/>,
/// <see cref="OnlineDpoObjective"/>). The loop is the shared <see cref="Trainer{TBatch}"/>: AdamW with clipping and the
/// schedule, metrics.jsonl, progress, checkpoints and bit-exact resume. Checkpoints fall between rounds only (a
/// cancellation takes effect at the end of the round), so a resumed run samples the pairs an uninterrupted one would.
/// Before it starts, the run's <see cref="MemoryPlan"/> is checked against the device.
/// </summary>
public sealed class OnlineDpoTrainer : IDisposable
{
    private readonly Transformer policy;
    private readonly OnlineDpoOptions options;
    private readonly ResponseSampler sampler;
    private readonly OnlinePreferenceSource source;
    private readonly OnlineDpoObjective objective;

    /// <summary>
    /// Trains <paramref name="policy"/> (created trainable) against the frozen <paramref name="reference"/>, with pairs
    /// labelled by <paramref name="rewardModel"/> (a scalar head) on <paramref name="prompts"/> (token ids). Sampling
    /// stops at <paramref name="stopTokens"/> (EOS); rows are padded with the collator's pad token. The caller owns the models.
    /// </summary>
    public OnlineDpoTrainer(
        Transformer policy, Transformer reference, Transformer rewardModel, IReadOnlyList<int[]> prompts, SequenceCollator collator,
        OnlineDpoOptions options, IReadOnlyList<int> stopTokens)
    {
        ArgumentNullException.ThrowIfNull(policy);
        ArgumentNullException.ThrowIfNull(reference);
        ArgumentNullException.ThrowIfNull(rewardModel);
        ArgumentNullException.ThrowIfNull(prompts);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        if (rewardModel.Config.VocabSize < policy.Config.VocabSize)
        {
            throw new ArgumentException(
                $"the reward model's vocabulary ({rewardModel.Config.VocabSize}) is smaller than the policy's ({policy.Config.VocabSize}); they must share the tokenizer", nameof(rewardModel));
        }

        int context = Math.Min(policy.Config.MaxSequenceLength, rewardModel.Config.MaxSequenceLength);
        for (int i = 0; i < prompts.Count; i++)
        {
            if (prompts[i] is not { Length: > 0 } p || p.Length >= context)
            {
                throw new ArgumentException($"prompt {i} has {prompts[i]?.Length ?? 0} tokens; it needs 1 to {context - 1} so that a response fits the context", nameof(prompts));
            }
        }

        this.policy = policy;
        this.options = options;
        objective = new OnlineDpoObjective(policy, reference, options.Dpo);
        sampler = new ResponseSampler(policy, options.GenerationBatch);
        var scorer = new RewardScorer(rewardModel, new RewardScoringOptions { BatchSize = options.ScoringBatch });
        source = new OnlinePreferenceSource(sampler, scorer, collator, prompts, options, stopTokens);

        int longest = prompts.Max(p => p.Length);
        var shape = new RlMemoryShape
        {
            RolloutBatch = Math.Min(options.PromptsPerRound, prompts.Count) * options.SamplesPerPrompt,
            GenerationBatch = options.GenerationBatch,
            Minibatch = 2 * options.BatchSize,
            ScoringBatch = options.ScoringBatch,
            PromptLength = longest,
            ResponseLength = Math.Min(options.MaxNewTokens, context - longest),
            Lora = policy.Lora?.Config,
        };
        MemoryPlan = MemoryPlan.OnlineDpo(policy.Config, rewardModel.Config, shape, policy.Backend, reference.Config, separateReference: !ReferenceEquals(reference, policy));
    }

    /// <summary>Where progress, the memory plan and warnings are logged.</summary>
    public ILogger Logger { get; init; } = NullLogger.Instance;

    /// <summary>config.json fields and the tokenizer directory copied into every checkpoint.</summary>
    public HfSaveOptions? CheckpointFormat { get; init; }

    /// <summary>What the run will hold in memory (checked by <see cref="Run"/> before it starts).</summary>
    public MemoryPlan MemoryPlan { get; }

    /// <summary>The micro-batches, sampled from the policy as the trainer asks for them.</summary>
    public OnlinePreferenceSource Source => source;

    /// <summary>Wall time spent sampling and scoring so far.</summary>
    public TimeSpan GenerationTime => source.GenerationTime;

    /// <summary>Wall time spent in the DPO forward and backward passes so far.</summary>
    public TimeSpan TrainingTime => objective.TrainingTime;

    /// <summary>
    /// Checks the memory plan (<see cref="MemoryPlanException"/> when it does not fit), then trains to the end or until
    /// <paramref name="cancellationToken"/> fires, which stops at the end of the current round with a checkpoint
    /// (<see cref="TrainingStatus.Cancelled"/>). With <see cref="Options.TrainerOptions.Resume"/> it continues from the
    /// newest checkpoint in the output directory.
    /// </summary>
    public TrainingResult Run(IProgress<TrainingProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        var memory = policy.Backend.QueryMemory();
        Logger.LogInformation("{Plan}", MemoryPlan.ToTable(memory).TrimEnd());
        MemoryPlan.EnsureFits(memory);

        // The shared trainer stops at the first step boundary after its token fires; this one fires at round boundaries only.
        using var atRoundEnd = new CancellationTokenSource();
        if (cancellationToken.IsCancellationRequested)
        {
            atRoundEnd.Cancel();
        }

        var relay = new RoundProgress(p =>
        {
            progress?.Report(p);
            if (cancellationToken.IsCancellationRequested && p.Step % options.UpdatesPerRound == 0)
            {
                atRoundEnd.Cancel();
            }
        });
        var trainer = new Trainer<OnlineDpoBatch>(policy, objective, source, null, options) { Logger = Logger, CheckpointFormat = CheckpointFormat };
        var result = trainer.Run(relay, atRoundEnd.Token);
        Logger.LogInformation(
            "online DPO: {Generating:F1} s sampling and scoring, {Training:F1} s in DPO updates", GenerationTime.TotalSeconds, TrainingTime.TotalSeconds);
        return result;
    }

    /// <summary>A one-line summary of the time split, for the console.</summary>
    public string TimeSummary() => string.Create(
        CultureInfo.InvariantCulture,
        $"{GenerationTime.TotalSeconds:F1} s sampling and scoring, {TrainingTime.TotalSeconds:F1} s in DPO updates");

    /// <inheritdoc/>
    public void Dispose()
    {
        sampler.Dispose();
        objective.Dispose();
    }

    private sealed class RoundProgress(Action<TrainingProgress> report) : IProgress<TrainingProgress>
    {
        public void Report(TrainingProgress value) => report(value);
    }
}
