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
using Engine.Training.Rl.Sampling;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Engine.Training.Rl.Ppo;

/// <summary>The four roles of RLHF with PPO.</summary>
/// <param name="Actor">The policy, trained (from the SFT checkpoint).</param>
/// <param name="Critic">The value model, trained (from the reward model's checkpoint: trunk + scalar head).</param>
/// <param name="RewardModel">The reward model, frozen (scalar head).</param>
/// <param name="Reference">The frozen SFT policy, resident or loaded per rollout.</param>
public sealed record PpoModels(Transformer Actor, Transformer Critic, Transformer RewardModel, PolicyReference Reference);

/// <summary>
/// RLHF with PPO (InstructGPT; TRL's PPOTrainer) and PPO-ptx. Each step: <c>batch_size</c> prompts (a seeded
/// order per pass) → batched, KV-cached sampling from the actor at temperature τ → the behaviour and reference
/// log-probs of log(softmax(logits/τ)), the critic's values and the reward model's score of each response →
/// per-token rewards −β·KL plus the score at the last token (<see cref="PpoExperience"/>) → GAE and whitened
/// advantages → <c>num_ppo_epochs</c> passes over shuffled minibatches, each one AdamW update of the actor (clipped
/// policy loss, plus γ_ptx times the next-token loss on a batch of pretraining text) and one of the critic (clipped
/// value loss times vf_coef), each model with its own moments and gradient clipping → β updated when adaptive.
/// Writes <c>metrics.jsonl</c> (TRL's names), reports <see cref="PpoProgress"/>, checkpoints the actor (top level), the
/// critic (<c>critic/</c>) and the run state with <see cref="CheckpointStore"/>, and resumes to the same bits: the
/// prompt order, the sampling seeds and the minibatch order are functions of the saved random state.
/// </summary>
public sealed class PpoTrainer
{
    /// <summary>The PPO-specific state file of a checkpoint (β, the critic's step count, the pretraining-data position).</summary>
    public const string StateFile = "ppo_state.json";

    /// <summary>The critic's subdirectory of a checkpoint (a Hugging Face directory with its own optimizer moments).</summary>
    public const string CriticDirectory = "critic";

    private readonly PpoModels models;
    private readonly IReadOnlyList<int[]> prompts;
    private readonly IBatchSource<SequenceBatch>? ptx;
    private readonly PpoOptions options;
    private readonly int eos;

    /// <summary>
    /// A trainer of <paramref name="models"/> on <paramref name="prompts"/> (token ids, each 1 to
    /// <c>max_length − response_length</c> long, e.g. from <see cref="RolloutPrompts.Tokenize"/>), with PPO-ptx on
    /// <paramref name="ptx"/> when given; <paramref name="eosTokenId"/> ends a response (and pads rows).
    /// </summary>
    public PpoTrainer(PpoModels models, IReadOnlyList<int[]> prompts, IBatchSource<SequenceBatch>? ptx, int eosTokenId, PpoOptions options)
    {
        ArgumentNullException.ThrowIfNull(models);
        ArgumentNullException.ThrowIfNull(prompts);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(models.Reference);
        options.Validate();
        var (actor, critic, rm) = (models.Actor, models.Critic, models.RewardModel);
        RolloutPasses.RequireLanguageModel(actor, "the actor");
        if (critic is null || !critic.HasScalarHead || rm is null || !rm.HasScalarHead)
        {
            throw new ArgumentException("the critic and the reward model need scalar heads", nameof(models));
        }

        if (ReferenceEquals(rm, critic) || ReferenceEquals(rm, actor))
        {
            throw new ArgumentException("the reward model is frozen: it must be a separate model from the critic and the actor", nameof(models));
        }

        int vocab = actor.Config.VocabSize;
        if (critic.Config.VocabSize != vocab || rm.Config.VocabSize != vocab || models.Reference.Config.VocabSize != vocab)
        {
            throw new ArgumentException(
                $"every role must share the actor's vocabulary of {vocab} (critic {critic.Config.VocabSize}, reward model {rm.Config.VocabSize}, reference {models.Reference.Config.VocabSize})",
                nameof(models));
        }

        int context = new[] { actor.Config, critic.Config, rm.Config, models.Reference.Config }.Min(c => c.MaxSequenceLength);
        RolloutChecks.MaxLengthFits(options.MaxLength, context, "shortest of the four models'");
        RolloutChecks.EosInVocabulary(eosTokenId, vocab);
        RolloutChecks.Prompts([.. prompts.Select(p => p?.Length ?? 0)], options.BatchSize, options.MaxPromptLength, "PPO", "max_length − response_length");

        if (ptx is not null && options.PtxCoef == 0f)
        {
            throw new ArgumentException("pretraining data was given for PPO-ptx but ptx_coef is 0", nameof(ptx));
        }

        this.models = models;
        this.prompts = prompts;
        this.ptx = ptx;
        this.options = options;
        eos = eosTokenId;
        Checkpoints = new CheckpointStore(options.OutputDirectory);
        Shape = new PpoRunShape(
            actor.Config, critic.Config, rm.Config, models.Reference.Config, models.Reference.IsResident, options.BatchSize,
            Math.Min(options.BatchSize, options.LocalRolloutForwardBatchSize), options.MiniBatchRows, options.MicroBatchRows,
            options.MaxPromptLength, options.ResponseLength, options.MaxLength, ptx is null ? 0 : PtxRows(options), actor.Lora?.Config,
            SeparateReference: !models.Reference.IsBaseOf(actor));
    }

    /// <summary>Where progress and warnings are logged.</summary>
    public ILogger Logger { get; init; } = NullLogger.Instance;


    /// <summary>config.json fields and the tokenizer directory of the actor's checkpoints.</summary>
    public HfSaveOptions? CheckpointFormat { get; init; }

    /// <summary>config.json fields and the tokenizer directory of the critic's checkpoints.</summary>
    public HfSaveOptions? CriticCheckpointFormat { get; init; }

    /// <summary>The run's checkpoints.</summary>
    public CheckpointStore Checkpoints { get; }

    /// <summary>The sizes of this run (for a memory plan).</summary>
    public PpoRunShape Shape { get; }

    /// <summary>Called with <see cref="Shape"/> when <see cref="Run"/> starts, before anything is allocated (print a memory plan, or throw to refuse).</summary>
    public Action<PpoRunShape>? BeforeRun { get; init; }

    /// <summary>Rows of pretraining text per PPO-ptx update: <c>ptx_batch_size</c>, or a micro-batch's rows when it is 0.</summary>
    public static int PtxRows(PpoOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        return options.PtxBatchSize > 0 ? options.PtxBatchSize : options.MicroBatchRows;
    }

    /// <summary>
    /// Trains to the end (or until <paramref name="cancellationToken"/> fires, which writes a checkpoint and returns
    /// <see cref="TrainingStatus.Cancelled"/>); with <see cref="TrainerOptions.Resume"/> it continues from the newest
    /// complete checkpoint. <see cref="TrainingResult.TrainLoss"/> is the last logged mean policy loss.
    /// </summary>
    /// <exception cref="TrainingDivergedException">A non-finite loss or gradient norm under <see cref="NanPolicy.Stop"/>.</exception>
    public TrainingResult Run(IProgress<PpoProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        BeforeRun?.Invoke(Shape);
        var clock = Stopwatch.StartNew();
        var (actor, critic) = (models.Actor, models.Critic);
        var store = new CheckpointStore(options.OutputDirectory, Logger) { BeforeStage = Checkpoints.BeforeStage };
        Directory.CreateDirectory(store.Directory);
        string metricsPath = Path.Combine(store.Directory, Trainer<SequenceBatch>.MetricsFile);
        actor.ResidualDropout = 0f;
        critic.ResidualDropout = 0f;
        actor.GradientCheckpointing = options.GradientCheckpointing;
        critic.GradientCheckpointing = options.GradientCheckpointing;

        PpoRunState? restored = null;
        var (state, rng, resume) = RunStart.Begin(store, options, metricsPath, Logger, checkpoint =>
        {
            restored = PpoRunState.Read(checkpoint.Path, checkpoint.State);
            CheckpointStore.Restore(actor, checkpoint.Path);
            CheckpointStore.Restore(critic, Path.Combine(checkpoint.Path, CriticDirectory));
        });
        string? resumedFrom = resume?.Path;
        var run = restored ?? new PpoRunState { KlCoef = options.KlCoef, PtxShuffleSeed = rng.NextUInt64() };
        if (resume is null)
        {
            state.BatchesInEpoch = prompts.Count / options.BatchSize;
            state.TotalSteps = options.MaxSteps > 0 ? options.MaxSteps : Math.Max(1, options.Epochs * state.BatchesInEpoch);
            state.Options = JsonDocument.Parse(OptionsReader.ToJson(options)).RootElement.Clone();
            if (TrainingPlan.FewStepsWarning(options, state.TotalSteps, state.BatchesInEpoch, "rollout") is { } few)
            {
                Logger.LogWarning("{Warning}", few);
            }
        }

        if (state.BatchesInEpoch != prompts.Count / options.BatchSize)
        {
            throw new InvalidOperationException(
                $"{resumedFrom}: the prompts give {prompts.Count / options.BatchSize} rollouts per pass, the checkpoint's run had {state.BatchesInEpoch}; resume with the same prompts and batch_size");
        }

        var kl = KlController.From(options);
        kl.Value = run.KlCoef;
        var order = SftBatches.Order(prompts.Count, state.ShuffleSeed);
        var ptxBatches = ptx?.Batches(run.PtxShuffleSeed);
        if (ptxBatches is { Count: 0 })
        {
            throw new InvalidOperationException("the PPO-ptx data yields no batches");
        }

        using var learner = new PpoLearner(actor, critic, options);
        using var sampler = new ResponseSampler(actor, options.LocalRolloutForwardBatchSize);
        var scorer = new RewardScorer(
            models.RewardModel, new RewardScoringOptions { BatchSize = options.LocalRolloutForwardBatchSize, Normalize = options.NormalizeReward, Clip = options.RewardClip });
        var generation = new GenerationOptions
        {
            MaxNewTokens = options.ResponseLength, Temperature = options.Temperature, TopK = options.TopK, TopP = options.TopP, StopTokens = [eos],
        };

        var checkpoints = new CheckpointCursor(resumedFrom, state.GlobalStep, Logger, WriteCheckpoint);
        double lastPolicyLoss = state.LogHistory.LastOrDefault(h => h.ContainsKey("loss/policy_avg"))?["loss/policy_avg"] ?? double.NaN;
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
            ulong rolloutSeed = rng.NextUInt64();
            var updateOrder = new RandomStream(rng.NextUInt64());
            if (state.BatchIndex == state.BatchesInEpoch)
            {
                state.Epoch++;
                state.BatchIndex = 0;
                state.ShuffleSeed = rng.NextUInt64();
                order = SftBatches.Order(prompts.Count, state.ShuffleSeed);
            }

            var stepPrompts = order.Skip(state.BatchIndex * options.BatchSize).Take(options.BatchSize).Select(i => (IReadOnlyList<int>)prompts[i]).ToList();
            state.BatchIndex++;

            // Rollout.
            var rollouts = sampler.Sample(stepPrompts, generation with { Seed = rolloutSeed });
            double generationSeconds = stepClock.Elapsed.TotalSeconds;

            // Experience: reference and behaviour log-probs, values, scores, rewards, advantages.
            var batch = RolloutBatch.Pack(rollouts, eos);
            var referenceLogProbs = models.Reference.LogProbs(batch, options.Temperature, options.LocalRolloutForwardBatchSize);
            var (oldLogProbs, entropy) = learner.PolicyLogProbs(batch);
            var values = learner.Values(batch);
            var scores = scorer.Score(rollouts, eos);
            double beta = kl.Value;
            var experience = PpoExperience.Build(actor.Backend, batch, oldLogProbs, referenceLogProbs, values, scores.Rewards, options, beta);
            double scoringSeconds = stepClock.Elapsed.TotalSeconds - generationSeconds;

            // Updates.
            double lr = LearningRateScheduler.At(options, step, state.TotalSteps);
            double criticLr = LearningRateScheduler.At(
                options.Schedule, options.CriticLearningRate ?? options.LearningRate, options.WarmupSteps, options.MinLearningRateRatio, step, state.TotalSteps);
            var totals = new UpdateTotals();
            for (int epoch = 0; epoch < options.NumPpoEpochs; epoch++)
            {
                var permutation = SftBatches.Order(options.BatchSize, updateOrder.NextUInt64());
                for (int start = 0; start < options.BatchSize; start += options.MiniBatchRows)
                {
                    var rows = permutation[start..(start + options.MiniBatchRows)];
                    Update(rows, experience, step, lr, criticLr, totals);
                }
            }

            kl.Update(experience.RewardStatistics.MeanSequenceKl, batch.Batch);
            run.KlCoef = kl.Value;
            double trainingSeconds = stepClock.Elapsed.TotalSeconds - generationSeconds - scoringSeconds;

            state.GlobalStep = step;
            long tokens = rollouts.Sum(r => (long)r.Length);
            state.TokensSeen += tokens;
            state.PendingTokens += tokens;
            var stepMetrics = StepMetrics(experience, scores, entropy, totals, beta, lr, criticLr);
            stepMetrics["time/generation"] = generationSeconds;
            stepMetrics["time/scoring"] = scoringSeconds;
            stepMetrics["time/training"] = trainingSeconds;
            stepMetrics["time/generation_share"] = generationSeconds / Math.Max(1e-12, stepClock.Elapsed.TotalSeconds);
            if (RlMetrics.Accumulate(state, stepMetrics, step, options.LogInterval, ("epoch", EpochPosition()), ("episode", (double)step * options.BatchSize)) is { } line)
            {
                lastPolicyLoss = line["loss/policy_avg"];
                Write(line);
                Logger.LogInformation(
                    "step {Step}/{Total}: score {Score:F4}, kl {Kl:F4}, policy loss {PolicyLoss:F4}, value loss {ValueLoss:F4}",
                    step, state.TotalSteps, line["objective/scores"], line["objective/kl"], line["loss/policy_avg"], line["loss/value_avg"]);
            }

            progress?.Report(new PpoProgress(
                step, state.TotalSteps, EpochPosition(), stepMetrics["objective/scores"], stepMetrics["objective/kl"], beta, stepMetrics["loss/policy_avg"],
                stepMetrics["loss/value_avg"], stepMetrics["val/response_length"], stepMetrics["val/eos_rate"], stepMetrics["time/generation_share"],
                stepClock.Elapsed.TotalSeconds));

            if (step == state.TotalSteps || (options.CheckpointInterval > 0 && step % options.CheckpointInterval == 0))
            {
                checkpoints.Save(step);
            }
        }

        return Result(TrainingStatus.Completed);

        double EpochPosition() => state.Epoch + ((double)state.BatchIndex / Math.Max(1, state.BatchesInEpoch));

        void Update(int[] rows, PpoExperience experience, int step, double lr, double criticLr, UpdateTotals totals)
        {
            actor.ZeroGradients();
            critic.ZeroGradients();
            int tokens = experience.Tokens(rows);
            var micro = new List<(PpoStatsSum Stats, float Scale)>();
            for (int start = 0; start < rows.Length; start += options.MicroBatchRows)
            {
                var microRows = rows[start..(start + options.MicroBatchRows)];
                float scale = tokens > 0 ? (float)experience.Tokens(microRows) / tokens : 0f;
                micro.Add((PpoStatsSum.Of(learner.AccumulateGradients(experience, microRows, scale)), scale));
            }

            double ptxLoss = double.NaN;
            if (ptxBatches is not null)
            {
                if (run.PtxBatchIndex == ptxBatches.Count)
                {
                    run.PtxEpoch++;
                    run.PtxBatchIndex = 0;
                    run.PtxShuffleSeed = rng.NextUInt64();
                    ptxBatches = ptx!.Batches(run.PtxShuffleSeed);
                }

                ptxLoss = learner.AccumulatePtxGradients(ptxBatches[run.PtxBatchIndex++], options.PtxCoef);
            }

            var sum = micro.Aggregate(default(PpoStatsSum), (acc, m) => acc + (m.Stats * m.Scale));
            string? fault = double.IsFinite(sum.PolicyLoss) && double.IsFinite(sum.ValueLoss) && (ptxBatches is null || double.IsFinite(ptxLoss))
                ? null
                : $"the losses are not finite (policy {sum.PolicyLoss}, value {sum.ValueLoss}, ptx {ptxLoss})";
            double actorNorm = double.NaN, criticNorm = double.NaN;
            if (fault is null)
            {
                // Both gradients are checked before either model moves, so a skipped update skips both: the actor and the
                // critic always take their AdamW steps together.
                double actorSquares = actor.Backend.SquaredNorm(actor.TrainableParameters.Gradients);
                double criticSquares = critic.Backend.SquaredNorm(critic.TrainableParameters.Gradients);
                if (double.IsFinite(actorSquares) && double.IsFinite(criticSquares))
                {
                    actorNorm = actor.OptimizerStep((float)lr, state.OptimizerSteps + 1, options.Optimizer);
                    criticNorm = critic.OptimizerStep((float)criticLr, run.CriticOptimizerSteps + 1, options.Optimizer);
                    state.OptimizerSteps++;
                    run.CriticOptimizerSteps++;
                }
                else
                {
                    fault = $"the gradient norms are not finite (actor {Math.Sqrt(actorSquares)}, critic {Math.Sqrt(criticSquares)})";
                }
            }

            if (fault is not null)
            {
                checkpoints.SkipOrStop(step, fault, options.NanPolicy, state);
                return;
            }

            totals.Add(sum, actorNorm, criticNorm, ptxLoss);
        }

        string WriteCheckpoint()
        {
            state.RngState = [rng.State.Item1, rng.State.Item2, rng.State.Item3, rng.State.Item4];
            return store.Save(actor, state, CheckpointFormat, options.KeepLast, directory =>
            {
                CheckpointStore.WriteModel(critic, Path.Combine(directory, CriticDirectory), CriticCheckpointFormat);
                run.Write(directory);
            });
        }

        void Write(Dictionary<string, double> line) => Trainer<SequenceBatch>.AppendMetrics(metrics, state, line);

        TrainingResult Result(TrainingStatus status) => new(
            status, state.GlobalStep, state.SkippedSteps, lastPolicyLoss, null, state.TokensSeen, clock.Elapsed, checkpoints.Last, resumedFrom);
    }

    // TRL's PPOTrainer metric names where it has them; the rollout's statistics, then the means over its updates.
    private Dictionary<string, double> StepMetrics(
        PpoExperience e, RolloutScores scores, float[] entropy, UpdateTotals totals, double beta, double lr, double criticLr)
    {
        var batch = e.Batch;
        double sequences = batch.Batch;
        double entropySum = 0;
        for (int i = 0; i < entropy.Length; i++)
        {
            entropySum += entropy[i];
        }

        var r = e.RewardStatistics;
        double nonScore = -beta * r.MeanSequenceKl;
        var m = new Dictionary<string, double>(StringComparer.Ordinal)
        {
            ["objective/kl"] = r.MeanSequenceKl,
            ["objective/kl_coef"] = beta,
            ["objective/entropy"] = entropySum / sequences,
            ["objective/non_score_reward"] = nonScore,
            ["objective/scores"] = r.MeanScore,
            ["objective/scores_raw"] = scores.Raw.Average(x => (double)x),
            ["objective/rlhf_reward"] = r.MeanScore + nonScore,
            ["val/explained_variance"] = e.ExplainedVariance,
            ["val/response_length"] = batch.ResponseTokens / sequences,
            ["val/num_eos_tokens"] = batch.EndedWithEos.Sum(),
            ["val/eos_rate"] = batch.EndedWithEos.Sum() / sequences,
            ["lr"] = lr,
            ["critic_lr"] = criticLr,
        };
        foreach (var (k, v) in totals.Means())
        {
            m[k] = v;
        }

        if (ptx is null)
        {
            m.Remove("loss/ptx_avg");
        }

        return m;
    }

    /// <summary>The PPO-kernel statistics of a micro-batch, as doubles that add and scale (masked means weighted by token share).</summary>
    private readonly record struct PpoStatsSum(
        double PolicyLoss, double ValueLoss, double ClipFraction, double ApproxKl, double Entropy, double ValueClipFraction, double Ratio)
    {
        public static PpoStatsSum Of(PpoStatistics s) =>
            new(s.PolicyLoss, s.ValueLoss, s.ClipFraction, s.ApproxKl, s.Entropy, s.ValueClipFraction, s.RatioMean);

        public static PpoStatsSum operator +(PpoStatsSum a, PpoStatsSum b) => new(
            a.PolicyLoss + b.PolicyLoss, a.ValueLoss + b.ValueLoss, a.ClipFraction + b.ClipFraction, a.ApproxKl + b.ApproxKl,
            a.Entropy + b.Entropy, a.ValueClipFraction + b.ValueClipFraction, a.Ratio + b.Ratio);

        public static PpoStatsSum operator *(PpoStatsSum a, double s) => new(
            a.PolicyLoss * s, a.ValueLoss * s, a.ClipFraction * s, a.ApproxKl * s, a.Entropy * s, a.ValueClipFraction * s, a.Ratio * s);
    }

    // Means over the updates of one PPO step (skipped updates are not counted).
    private sealed class UpdateTotals
    {
        private PpoStatsSum sum;
        private double actorNorm, criticNorm, ptx;
        private int count;

        public void Add(PpoStatsSum stats, double actorGradNorm, double criticGradNorm, double ptxLoss)
        {
            sum += stats;
            actorNorm += actorGradNorm;
            criticNorm += criticGradNorm;
            ptx += ptxLoss;
            count++;
        }

        public IEnumerable<(string Name, double Value)> Means()
        {
            double n = Math.Max(1, count);
            yield return ("loss/policy_avg", count > 0 ? sum.PolicyLoss / n : double.NaN);
            yield return ("loss/value_avg", count > 0 ? sum.ValueLoss / n : double.NaN);
            yield return ("loss/ptx_avg", count > 0 ? ptx / n : double.NaN);
            yield return ("policy/approxkl_avg", sum.ApproxKl / n);
            yield return ("policy/clipfrac_avg", sum.ClipFraction / n);
            yield return ("policy/entropy_avg", sum.Entropy / n);
            yield return ("policy/grad_norm", actorNorm / n);
            yield return ("val/clipfrac_avg", sum.ValueClipFraction / n);
            yield return ("val/ratio", sum.Ratio / n);
            yield return ("val/grad_norm", criticNorm / n);
        }
    }
}
