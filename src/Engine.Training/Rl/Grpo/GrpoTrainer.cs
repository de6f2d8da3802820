using System.Diagnostics;
using System.Text;
using System.Text.Json;
using Engine.Core.Backends;
using Engine.Core.Numerics;
using Engine.Models;
using Engine.Models.Generation;
using Engine.Models.HuggingFace;
using Engine.Training.Checkpoints;
using Engine.Training.Data;
using Engine.Training.Options;
using Engine.Training.Rl.Memory;
using Engine.Training.Rl.Ppo;
using Engine.Training.Rl.Rewards;
using Engine.Training.Rl.Sampling;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Engine.Training.Rl.Grpo;

/// <summary>
/// Critic-free online RL with verifiable rewards: GRPO (Shao et al. 2024; TRL's GRPOTrainer), Dr. GRPO, DAPO, GSPO, RLOO
/// and REINFORCE++ by <see cref="GrpoOptions"/>. Each step: <c>batch_size</c> prompts (a seeded order per pass) →
/// <c>num_generations</c> completions each from the KV-cached sampler at temperature τ (<see cref="GrpoGroups"/>) →
/// rewards from a <see cref="RewardSet"/>, one prompt at a time (under <c>dynamic_sampling</c> more prompts are drawn
/// until <c>batch_size</c> groups have rewards that differ) → the sampling policy's log-probs (when updates can move
/// π away from it) and the reference's (only when β &gt; 0) → advantages (<see cref="GrpoExperience"/>) →
/// <c>num_iterations</c> passes over shuffled minibatches, each one AdamW update of the policy from the accumulated
/// gradients of its micro-batches (<see cref="GrpoLearner"/>). Writes <c>metrics.jsonl</c> under TRL's names, reports
/// <see cref="GrpoProgress"/>, checkpoints with <see cref="CheckpointStore"/>, stops on cancellation with a checkpoint,
/// and resumes to the same bits: the prompt order, the sampling seeds and the minibatch order are functions of the
/// saved random state.
/// </summary>
public sealed class GrpoTrainer
{
    private readonly Transformer policy;
    private readonly PolicyReference? reference;
    private readonly RewardSet rewards;
    private readonly IReadOnlyList<GrpoPrompt> prompts;
    private readonly Func<int[], string> decode;
    private readonly GrpoOptions options;
    private readonly int eos;

    /// <summary>
    /// A trainer of <paramref name="policy"/> (LM head, created trainable) on <paramref name="prompts"/> with
    /// <paramref name="rewards"/>; <paramref name="reference"/> is required when β &gt; 0 and must be null otherwise (no
    /// reference is loaded at all then). <paramref name="decode"/> turns ids into the text reward functions read;
    /// <paramref name="eosTokenId"/> ends a completion (and pads rows).
    /// </summary>
    public GrpoTrainer(
        Transformer policy, PolicyReference? reference, RewardSet rewards, IReadOnlyList<GrpoPrompt> prompts, Func<int[], string> decode, int eosTokenId,
        GrpoOptions options)
    {
        RolloutPasses.RequireLanguageModel(policy, "the policy");
        ArgumentNullException.ThrowIfNull(rewards);
        ArgumentNullException.ThrowIfNull(prompts);
        ArgumentNullException.ThrowIfNull(decode);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        if (options.NeedsReference != reference is not null)
        {
            throw new ArgumentException(options.NeedsReference ? "beta > 0 needs a reference policy" : "beta is 0: pass no reference (none is needed)", nameof(reference));
        }

        int vocab = policy.Config.VocabSize;
        if (reference is not null && reference.Config.VocabSize != vocab)
        {
            throw new ArgumentException($"the reference's vocabulary ({reference.Config.VocabSize}) differs from the policy's ({vocab})", nameof(reference));
        }

        int context = Math.Min(policy.Config.MaxSequenceLength, reference?.Config.MaxSequenceLength ?? int.MaxValue);
        RolloutChecks.MaxLengthFits(options.MaxLength, context, "model's");
        RolloutChecks.EosInVocabulary(eosTokenId, vocab);
        RolloutChecks.Prompts([.. prompts.Select(p => p?.Ids.Length ?? 0)], options.BatchSize, options.MaxPromptLength, "GRPO", "max_length − max_completion_length");

        this.policy = policy;
        this.reference = reference;
        this.rewards = rewards;
        this.prompts = prompts;
        this.decode = decode;
        this.options = options;
        eos = eosTokenId;
        var shape = new RlMemoryShape
        {
            RolloutBatch = options.Completions,
            GenerationBatch = options.LocalRolloutForwardBatchSize,
            ScoringBatch = options.LocalRolloutForwardBatchSize,
            Minibatch = options.MicroBatchRows,
            PromptLength = options.MaxPromptLength,
            ResponseLength = options.MaxCompletionLength,
            CachedReferenceLogProbs = reference is { IsResident: false },
            GradientCheckpointing = options.GradientCheckpointing,
            Lora = policy.Lora?.Config,
        };
        MemoryPlan = MemoryPlan.Grpo(policy.Config, shape, policy.Backend, reference?.Config, separateReference: reference is not null && !reference.IsBaseOf(policy));
    }

    /// <summary>Where progress and warnings are logged.</summary>
    public ILogger Logger { get; init; } = NullLogger.Instance;

    /// <summary>config.json fields and the tokenizer directory of the checkpoints.</summary>
    public HfSaveOptions? CheckpointFormat { get; init; }

    /// <summary>What the run holds in memory: no critic, no reward model, a reference only when β &gt; 0.</summary>
    public MemoryPlan MemoryPlan { get; }

    /// <summary>Called with <see cref="MemoryPlan"/> when <see cref="Run"/> starts, before anything is allocated (print it); the plan is then checked against the device.</summary>
    public Action<MemoryPlan>? BeforeRun { get; init; }

    /// <summary>
    /// Trains to the end (or until <paramref name="cancellationToken"/> fires, which writes a checkpoint and returns
    /// <see cref="TrainingStatus.Cancelled"/>); with <see cref="TrainerOptions.Resume"/> it continues from the newest
    /// complete checkpoint. <see cref="TrainingResult.TrainLoss"/> is the last logged mean loss.
    /// </summary>
    /// <exception cref="MemoryPlanException">The run does not fit the device.</exception>
    /// <exception cref="RewardFunctionException">A reward function failed (names it and the prompt's dataset line).</exception>
    /// <exception cref="TrainingDivergedException">A non-finite loss or gradient norm under <see cref="NanPolicy.Stop"/>.</exception>
    public TrainingResult Run(IProgress<GrpoProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        BeforeRun?.Invoke(MemoryPlan);
        MemoryPlan.EnsureFits(policy.Backend.QueryMemory());
        var clock = Stopwatch.StartNew();
        var store = new CheckpointStore(options.OutputDirectory, Logger);
        Directory.CreateDirectory(store.Directory);
        string metricsPath = Path.Combine(store.Directory, Trainer<SequenceBatch>.MetricsFile);
        policy.ResidualDropout = 0f;
        policy.GradientCheckpointing = options.GradientCheckpointing;

        var (state, rng, resume) = RunStart.Begin(store, options, metricsPath, Logger, checkpoint =>
        {
            CheckpointedRewards.CheckResumed(checkpoint, rewards, Logger);
            CheckpointStore.Restore(policy, checkpoint.Path);
        });
        state.Rewards = CheckpointedRewards.Of(rewards);
        string? resumedFrom = resume?.Path;
        int batchesPerPass = prompts.Count / options.BatchSize;
        if (resume is null)
        {
            state.BatchesInEpoch = batchesPerPass;
            state.TotalSteps = options.MaxSteps > 0 ? options.MaxSteps : Math.Max(1, options.Epochs * batchesPerPass);
            state.Options = JsonDocument.Parse(OptionsReader.ToJson(options)).RootElement.Clone();
            if (TrainingPlan.FewStepsWarning(options, state.TotalSteps, state.BatchesInEpoch, "step") is { } few)
            {
                Logger.LogWarning("{Warning}", few);
            }
        }

        if (state.BatchesInEpoch != batchesPerPass)
        {
            throw new InvalidOperationException(
                $"{resumedFrom}: the prompts give {batchesPerPass} batches per pass, the checkpoint's run had {state.BatchesInEpoch}; resume with the same prompts and batch_size");
        }

        var order = SftBatches.Order(prompts.Count, state.ShuffleSeed);
        using var learner = new GrpoLearner(policy, options);
        using var sampler = new ResponseSampler(policy, options.LocalRolloutForwardBatchSize);
        var groups = new GrpoGroups(sampler, rewards, decode, new GenerationOptions
        {
            MaxNewTokens = options.MaxCompletionLength, Temperature = options.Temperature, TopK = options.TopK, TopP = options.TopP, StopTokens = [eos],
        }, options.NumGenerations);

        var checkpoints = new CheckpointCursor(resumedFrom, state.GlobalStep, Logger, WriteCheckpoint);
        double lastLoss = state.LogHistory.LastOrDefault(h => h.ContainsKey("loss"))?["loss"] ?? double.NaN;
        using var metrics = new StreamWriter(metricsPath, append: true, new UTF8Encoding(false));

        while (state.GlobalStep < state.TotalSteps)
        {
            if (cancellationToken.IsCancellationRequested)
            {
                checkpoints.Cancelled(state.GlobalStep);
                return Result(TrainingStatus.Cancelled);
            }

            int step = state.GlobalStep + 1;
            var stepClock = Stopwatch.StartNew();
            var updateOrder = new RandomStream(rng.NextUInt64());
            var (stepGroups, draws) = DrawGroups(step);
            double generationSeconds = stepClock.Elapsed.TotalSeconds;

            var rollouts = stepGroups.SelectMany(g => g.Completions).ToList();
            var batch = RolloutBatch.Pack(rollouts, eos);
            bool policyLogProbs = options.NeedsOldLogProbs || (options.AdvantageEstimator == AdvantageEstimator.ReinforcePp && options.NeedsReference);
            var old = policyLogProbs ? learner.LogProbs(batch) : null;
            var referenceLogProbs = reference?.LogProbs(batch, options.Temperature, options.LocalRolloutForwardBatchSize);
            var totals = stepGroups.SelectMany(g => g.Rewards.Total).ToArray();
            var experience = GrpoExperience.Build(policy.Backend, batch, totals, old, referenceLogProbs, options);
            double scoringSeconds = stepClock.Elapsed.TotalSeconds - generationSeconds;

            double lr = LearningRateScheduler.At(options, step, state.TotalSteps);
            var updates = new UpdateTotals();
            for (int pass = 0; pass < options.NumIterations; pass++)
            {
                var permutation = SftBatches.Order(options.Completions, updateOrder.NextUInt64());
                for (int start = 0; start < options.Completions; start += options.MiniBatchRows)
                {
                    Update(permutation[start..(start + options.MiniBatchRows)], experience, step, lr, updates);
                }
            }

            double trainingSeconds = stepClock.Elapsed.TotalSeconds - generationSeconds - scoringSeconds;
            state.GlobalStep = step;
            long tokens = rollouts.Sum(r => (long)r.Length);
            state.TokensSeen += tokens;
            state.PendingTokens += tokens;
            var stepMetrics = StepMetrics(experience, stepGroups, updates, draws, lr);
            stepMetrics["time/generation"] = generationSeconds;
            stepMetrics["time/scoring"] = scoringSeconds;
            stepMetrics["time/training"] = trainingSeconds;
            stepMetrics["time/generation_share"] = generationSeconds / Math.Max(1e-12, stepClock.Elapsed.TotalSeconds);
            if (RlMetrics.Accumulate(state, stepMetrics, step, options.LogInterval, ("epoch", EpochPosition()), ("episode", (double)step * options.Completions)) is { } line)
            {
                lastLoss = line["loss"];
                Trainer<SequenceBatch>.AppendMetrics(metrics, state, line);
                Logger.LogInformation(
                    "step {Step}/{Total}: reward {Reward:F4}, reward std {Std:F4}, loss {Loss:F4}, length {Length:F1}",
                    step, state.TotalSteps, line["reward"], line["reward_std"], line["loss"], line["completions/mean_length"]);
            }

            progress?.Report(new GrpoProgress(
                step, state.TotalSteps, EpochPosition(), stepMetrics["reward"], stepMetrics["reward_std"], stepMetrics["frac_reward_zero_std"], stepMetrics["loss"],
                stepMetrics.GetValueOrDefault("kl", double.NaN), stepMetrics["completions/mean_length"], stepMetrics["completions/clipped_ratio"],
                stepMetrics["time/generation_share"], stepClock.Elapsed.TotalSeconds));

            if (step == state.TotalSteps || (options.CheckpointInterval > 0 && step % options.CheckpointInterval == 0))
            {
                checkpoints.Save(step);
            }
        }

        return Result(TrainingStatus.Completed);

        double EpochPosition() => state.Epoch + ((double)state.BatchIndex / Math.Max(1, state.BatchesInEpoch));

        // batch_size groups; under dynamic sampling, groups without signal are set aside while more prompts are drawn,
        // and used only to fill the batch when the draws run out.
        (List<GrpoGroup> Groups, int Draws) DrawGroups(int step)
        {
            var kept = new List<GrpoGroup>();
            var flat = new List<GrpoGroup>();
            int draws = 0;
            do
            {
                if (state.BatchIndex == state.BatchesInEpoch)
                {
                    state.Epoch++;
                    state.BatchIndex = 0;
                    state.ShuffleSeed = rng.NextUInt64();
                    order = SftBatches.Order(prompts.Count, state.ShuffleSeed);
                }

                var drawn = order.Skip(state.BatchIndex * options.BatchSize).Take(options.BatchSize).Select(i => prompts[i]).ToList();
                state.BatchIndex++;
                draws++;
                foreach (var group in groups.Draw(drawn, rng.NextUInt64()))
                {
                    (options.DynamicSampling && !group.HasSignal ? flat : kept).Add(group);
                }
            }
            while (options.DynamicSampling && kept.Count < options.BatchSize && draws < options.MaxNumGenBatches);

            if (kept.Count < options.BatchSize)
            {
                Logger.LogWarning(
                    "step {Step}: {Kept} of {Batch} groups have rewards that differ after {Draws} draws (max_num_gen_batches); the step goes on with {Flat} groups without signal",
                    step, kept.Count, options.BatchSize, draws, options.BatchSize - kept.Count);
                kept.AddRange(flat.Take(options.BatchSize - kept.Count));
            }

            return (kept.Take(options.BatchSize).ToList(), draws);
        }

        void Update(int[] rows, GrpoExperience experience, int step, double lr, UpdateTotals totals)
        {
            policy.ZeroGradients();
            int tokens = experience.Tokens(rows);
            var sum = default(GrpoStatsSum);
            for (int start = 0; start < rows.Length; start += options.MicroBatchRows)
            {
                var micro = rows[start..(start + options.MicroBatchRows)];
                float scale = options.LossType switch
                {
                    GrpoLossType.Bnpo => 1f / options.GradientAccumulationSteps,
                    GrpoLossType.Dapo => 1f,
                    _ => (float)micro.Length / rows.Length,
                };
                var stats = learner.AccumulateGradients(experience, micro, scale, options.LossType == GrpoLossType.Dapo ? tokens : 0f);
                sum += GrpoStatsSum.Of(stats, scale, tokens > 0 ? stats.TokenCount / tokens : 0);
            }

            string? fault = double.IsFinite(sum.Loss) ? null : $"the loss is not finite ({sum.Loss})";
            double norm = double.NaN;
            if (fault is null)
            {
                double squares = policy.Backend.SquaredNorm(policy.TrainableParameters.Gradients);
                if (double.IsFinite(squares))
                {
                    norm = policy.OptimizerStep((float)lr, state.OptimizerSteps + 1, options.Optimizer);
                    state.OptimizerSteps++;
                }
                else
                {
                    fault = $"the gradient norm is not finite ({Math.Sqrt(squares)})";
                }
            }

            if (fault is not null)
            {
                checkpoints.SkipOrStop(step, fault, options.NanPolicy, state);
                return;
            }

            totals.Add(sum, norm);
        }

        string WriteCheckpoint()
        {
            state.RngState = [rng.State.Item1, rng.State.Item2, rng.State.Item3, rng.State.Item4];
            return store.Save(policy, state, CheckpointFormat, options.KeepLast);
        }

        TrainingResult Result(TrainingStatus status) => new(
            status, state.GlobalStep, state.SkippedSteps, lastLoss, null, state.TokensSeen, clock.Elapsed, checkpoints.Last, resumedFrom);
    }

    // TRL's GRPOTrainer metric names: the step's rewards and completions, then the means over its updates.
    private Dictionary<string, double> StepMetrics(GrpoExperience e, List<GrpoGroup> groups, UpdateTotals totals, int draws, double lr)
    {
        var batch = e.Batch;
        var lengths = batch.Rollouts.Select(r => (double)r.Response.Length).ToArray();
        var r = e.RewardStatistics;
        var m = new Dictionary<string, double>(StringComparer.Ordinal)
        {
            ["reward"] = r.MeanReward,
            ["reward_std"] = r.RewardStd,
            ["frac_reward_zero_std"] = r.ZeroStdFraction,
            ["completions/mean_length"] = lengths.Average(),
            ["completions/min_length"] = lengths.Min(),
            ["completions/max_length"] = lengths.Max(),
            ["completions/clipped_ratio"] = batch.EndedWithEos.Count(x => x == 0) / (double)batch.Batch,
            ["num_gen_batches"] = draws,
            ["lr"] = lr,
        };
        for (int f = 0; f < rewards.Functions.Count; f++)
        {
            // NaN (not applicable) scores are left out of the mean, as TRL's nanmean; NaN when none applied.
            var applied = groups.SelectMany(g => g.Rewards.PerFunction[f]).Where(x => !float.IsNaN(x)).Select(x => (double)x).ToArray();
            m[$"rewards/{rewards.Functions[f].Name}/mean"] = applied.Length > 0 ? applied.Average() : double.NaN;
        }

        foreach (var (k, v) in totals.Means(reference is not null))
        {
            m[k] = v;
        }

        return m;
    }

    /// <summary>The loss kernel's statistics of a micro-batch as doubles that add: the loss scaled as its gradient, the means weighted by token share.</summary>
    private readonly record struct GrpoStatsSum(double Loss, double Kl, double Entropy, double Low, double High, double Region)
    {
        public static GrpoStatsSum Of(GrpoStatistics s, double lossScale, double share) => new(
            s.Loss * lossScale, s.Kl * share, s.Entropy * share, s.ClipLowFraction * share, s.ClipHighFraction * share, s.ClipRegionFraction * share);

        public static GrpoStatsSum operator +(GrpoStatsSum a, GrpoStatsSum b) => new(
            a.Loss + b.Loss, a.Kl + b.Kl, a.Entropy + b.Entropy, a.Low + b.Low, a.High + b.High, a.Region + b.Region);
    }

    // Means over the updates of one step (skipped updates are not counted).
    private sealed class UpdateTotals
    {
        private GrpoStatsSum sum;
        private double norm;
        private int count;

        public void Add(GrpoStatsSum stats, double gradNorm)
        {
            sum += stats;
            norm += gradNorm;
            count++;
        }

        public IEnumerable<(string Name, double Value)> Means(bool withKl)
        {
            double n = Math.Max(1, count);
            yield return ("loss", count > 0 ? sum.Loss / n : double.NaN);
            if (withKl)
            {
                yield return ("kl", sum.Kl / n);
            }

            yield return ("entropy", sum.Entropy / n);
            yield return ("clip_ratio/low_mean", sum.Low / n);
            yield return ("clip_ratio/high_mean", sum.High / n);
            yield return ("clip_ratio/region_mean", sum.Region / n);
            yield return ("grad_norm", norm / n);
        }
    }
}
