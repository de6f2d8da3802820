using System.Diagnostics;
using System.Text;
using System.Text.Json;
using Engine.Core.Numerics;
using Engine.Models;
using Engine.Models.HuggingFace;
using Engine.Training.Checkpoints;
using Engine.Training.Objectives;
using Engine.Training.Options;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Engine.Training;

/// <summary>
/// The loop every trainer shares, around an <see cref="ITrainingObjective{TBatch}"/>: per step, <c>gradient_accumulation_steps</c>
/// micro-batches (micro-batch i scaled by wᵢ/Σw, w = <see cref="ITrainingObjective{TBatch}.Weight"/>), one AdamW update
/// with global-norm clipping at the scheduled learning rate, metrics to <c>metrics.jsonl</c>, evaluation at an interval,
/// at the end of each epoch and of the run, and checkpoints (<see cref="CheckpointStore"/>) at an interval, at the end
/// and on cancellation. A run resumed from a checkpoint reaches the same parameters and metrics, bit for bit, as one
/// that was never interrupted: the data order, dropout masks and schedule are functions of the saved state.
/// </summary>
/// <typeparam name="TBatch">The micro-batch the objective consumes.</typeparam>
public sealed class Trainer<TBatch>
{
    /// <summary>The metrics file in the output directory: one JSON object per logged step or evaluation.</summary>
    public const string MetricsFile = "metrics.jsonl";

    // Metrics lines kept in each checkpoint's state, as Hugging Face's log_history.
    private const int LogHistoryLength = 100;

    private static readonly JsonSerializerOptions CompactJson = new(TrainerState.Json) { WriteIndented = false };

    private readonly Transformer model;
    private readonly ITrainingObjective<TBatch> objective;
    private readonly IBatchSource<TBatch> train;
    private readonly IBatchSource<TBatch>? validation;
    private readonly TrainerOptions options;

    /// <summary>A trainer of <paramref name="model"/> by <paramref name="objective"/> on <paramref name="train"/>, evaluated on <paramref name="validation"/> when given.</summary>
    public Trainer(Transformer model, ITrainingObjective<TBatch> objective, IBatchSource<TBatch> train, IBatchSource<TBatch>? validation, TrainerOptions options)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(objective);
        ArgumentNullException.ThrowIfNull(train);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        if (!model.IsTrainable)
        {
            throw new ArgumentException("the model was created for inference; create it with trainable: true or attach LoRA adapters", nameof(model));
        }

        this.model = model;
        this.objective = objective;
        this.train = train;
        this.validation = validation;
        this.options = options;
        Checkpoints = new CheckpointStore(options.OutputDirectory);
    }

    /// <summary>Where progress and warnings are logged.</summary>
    public ILogger Logger { get; set; } = NullLogger.Instance;


    /// <summary>config.json fields and the tokenizer directory copied into every checkpoint (weights are always F32).</summary>
    public HfSaveOptions? CheckpointFormat { get; init; }

    /// <summary>The run's checkpoints.</summary>
    public CheckpointStore Checkpoints { get; }

    /// <summary>
    /// Trains to the end (or until <paramref name="cancellationToken"/> fires, which writes a checkpoint and returns
    /// <see cref="TrainingStatus.Cancelled"/>). With <see cref="TrainerOptions.Resume"/> it continues from the newest
    /// complete checkpoint in the output directory.
    /// </summary>
    /// <exception cref="TrainingDivergedException">A non-finite loss or gradient norm under <see cref="NanPolicy.Stop"/>.</exception>
    public TrainingResult Run(IProgress<TrainingProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        var clock = Stopwatch.StartNew();
        var store = new CheckpointStore(options.OutputDirectory, Logger) { BeforeStage = Checkpoints.BeforeStage };
        Directory.CreateDirectory(store.Directory);
        string metricsPath = Path.Combine(store.Directory, MetricsFile);
        model.ResidualDropout = options.Dropout;
        model.GradientCheckpointing = options.GradientCheckpointing;

        var (state, rng, resume) = RunStart.Begin(store, options, metricsPath, Logger, checkpoint =>
        {
            CheckpointStore.Restore(model, checkpoint.Path);
            WarnAboutChangedOptions(checkpoint.State);
        });
        string? resumedFrom = resume?.Path;
        if (resume is not null && objective is IStatefulObjective stateful)
        {
            stateful.LoadState(state.ObjectiveState);
        }

        var epochBatches = train.Batches(state.ShuffleSeed);
        if (epochBatches.Count == 0)
        {
            throw new InvalidOperationException("the training data yields no batches");
        }

        if (resume is null)
        {
            int accumulation = options.GradientAccumulationSteps;
            state.BatchesInEpoch = epochBatches.Count;
            state.TotalSteps = options.MaxSteps > 0
                ? options.MaxSteps
                : (int)Math.Max(1, ((long)options.Epochs * epochBatches.Count) / accumulation);
            state.Options = JsonDocument.Parse(OptionsReader.ToJson(options)).RootElement.Clone();
            if (TrainingPlan.FewStepsWarning(options, state.TotalSteps, epochBatches.Count) is { } few)
            {
                Logger.LogWarning("{Warning}", few);
            }
        }
        else if (epochBatches.Count != state.BatchesInEpoch)
        {
            throw new InvalidOperationException(
                $"{resume.Path}: the data gives {epochBatches.Count} batches per epoch, the checkpoint's run had {state.BatchesInEpoch}; resume with the same data and batch options");
        }

        var checkpoints = new CheckpointCursor(resumedFrom, state.GlobalStep, Logger, WriteCheckpoint);
        long tokensThisCall = 0;
        double lastLoggedLoss = state.LogHistory.LastOrDefault(h => h.ContainsKey("loss"))?["loss"] ?? double.NaN;
        var sinceLog = Stopwatch.StartNew();
        var weights = new double[options.GradientAccumulationSteps];
        var micro = new TBatch[options.GradientAccumulationSteps];
        using var metrics = new StreamWriter(metricsPath, append: true, new UTF8Encoding(false));

        string WriteCheckpoint()
        {
            state.RngState = [rng.State.Item1, rng.State.Item2, rng.State.Item3, rng.State.Item4];
            if (objective is IStatefulObjective stateful)
            {
                state.ObjectiveState = new Dictionary<string, double>(stateful.SaveState(), StringComparer.Ordinal);
            }

            return store.Save(model, state, CheckpointFormat, options.KeepLast);
        }

        while (state.GlobalStep < state.TotalSteps)
        {
            if (cancellationToken.IsCancellationRequested)
            {
                checkpoints.Cancelled(state.GlobalStep);
                return Result(TrainingStatus.Cancelled);
            }

            int step = state.GlobalStep + 1;
            ulong stepSeed = rng.NextUInt64();
            bool epochEnded = false;
            for (int i = 0; i < micro.Length; i++)
            {
                if (state.BatchIndex == epochBatches.Count)
                {
                    NextEpoch();
                }

                micro[i] = epochBatches[state.BatchIndex++];
                weights[i] = objective.Weight(micro[i]);
            }

            if (state.BatchIndex == epochBatches.Count && step < state.TotalSteps)
            {
                // The epoch's last batch is consumed: the next epoch starts with the following step, after this one's evaluation.
                NextEpoch();
            }

            double total = weights.Sum();
            model.ZeroGradients();
            double loss = 0;
            long tokens = 0;
            var stepMetrics = new Dictionary<string, double>(StringComparer.Ordinal);
            double reported = 0;
            for (int i = 0; i < micro.Length; i++)
            {
                float scale = total > 0 ? (float)(weights[i] / total) : 1f / micro.Length;
                model.DropoutSeed = Mix(stepSeed, (ulong)i);
                var r = objective.Step(micro[i], scale);
                loss += scale * r.Loss;
                tokens += r.Tokens;
                reported += r.Weight;
                foreach (var (k, v) in r.Metrics)
                {
                    stepMetrics[k] = stepMetrics.GetValueOrDefault(k) + (r.Weight * v);
                }
            }

            double lr = LearningRateScheduler.At(options, step, state.TotalSteps);
            double norm = double.NaN;
            string? fault = double.IsFinite(loss) ? null : $"the loss is {loss}";

            // A step in which no micro-batch counts (no target token, no preference pair) has nothing to learn from.
            bool empty = fault is null && total == 0;
            if (fault is null && !empty)
            {
                norm = model.OptimizerStep((float)lr, state.OptimizerSteps + 1, options.Optimizer);
                fault = double.IsFinite(norm) ? null : $"the gradient norm is {norm}";
            }

            state.GlobalStep = step;
            state.TokensSeen += tokens;
            state.PendingTokens += tokens;
            tokensThisCall += tokens;
            if (fault is not null)
            {
                if (options.NanPolicy == NanPolicy.Stop)
                {
                    throw checkpoints.Diverged(step, fault);
                }

                state.SkippedSteps++;
                Logger.LogWarning("step {Step}: {Fault}; update skipped ({Skipped} so far)", step, fault, state.SkippedSteps);
            }
            else if (empty)
            {
                state.SkippedSteps++;
                Logger.LogWarning("step {Step}: every micro-batch weighs 0 (nothing to learn from); update skipped ({Skipped} so far)", step, state.SkippedSteps);
            }
            else
            {
                state.OptimizerSteps++;
                state.PendingLoss += loss;
                state.PendingSteps++;
                foreach (var (k, v) in stepMetrics)
                {
                    state.PendingMetrics[k] = state.PendingMetrics.GetValueOrDefault(k) + (reported > 0 ? v / reported : 0);
                }
            }

            double tokensPerSecond = tokensThisCall / Math.Max(clock.Elapsed.TotalSeconds, 1e-9);
            if (step % options.LogInterval == 0 || step == state.TotalSteps)
            {
                var line = Line(step);
                if (state.PendingSteps > 0)
                {
                    line["loss"] = state.PendingLoss / state.PendingSteps;
                    lastLoggedLoss = line["loss"];
                }

                line["grad_norm"] = norm;
                line["learning_rate"] = lr;
                line["tokens_per_second"] = state.PendingTokens / Math.Max(sinceLog.Elapsed.TotalSeconds, 1e-9);
                line["skipped_steps"] = state.SkippedSteps;
                foreach (var (k, v) in state.PendingMetrics)
                {
                    line[k] = v / Math.Max(1, state.PendingSteps);
                }

                Write(line);
                Logger.LogInformation("step {Step}/{Total}: loss {Loss:F4}, lr {LearningRate:E3}, grad norm {GradNorm:F3}", step, state.TotalSteps, line.GetValueOrDefault("loss", double.NaN), lr, norm);
                state.PendingLoss = 0;
                state.PendingSteps = 0;
                state.PendingTokens = 0;
                state.PendingMetrics.Clear();
                sinceLog.Restart();
            }

            bool evaluate = validation is not null
                && (epochEnded || step == state.TotalSteps || (options.EvalInterval > 0 && step % options.EvalInterval == 0));
            if (evaluate)
            {
                var line = Line(step);
                foreach (var (k, v) in Evaluate())
                {
                    line[k] = v;
                }

                state.LastEvalLoss = line["eval_loss"];
                Write(line);
                Logger.LogInformation("step {Step}: eval loss {EvalLoss:F4}", step, state.LastEvalLoss);
            }

            // One report per step, after any evaluation, so it carries this step's eval loss rather than the last one.
            progress?.Report(new TrainingProgress(
                step, state.TotalSteps, EpochPosition(), fault is null && !empty ? loss : double.NaN, lr, norm, tokensPerSecond, state.LastEvalLoss, state.SkippedSteps));

            if (step == state.TotalSteps || (options.CheckpointInterval > 0 && step % options.CheckpointInterval == 0))
            {
                checkpoints.Save(step);
            }

            void NextEpoch()
            {
                state.Epoch++;
                state.BatchIndex = 0;
                state.ShuffleSeed = rng.NextUInt64();
                epochBatches = train.Batches(state.ShuffleSeed);
                epochEnded = true;
            }
        }

        return Result(TrainingStatus.Completed);

        double EpochPosition() => state.Epoch + ((double)state.BatchIndex / Math.Max(1, epochBatches.Count));

        Dictionary<string, double> Line(int step) => new(StringComparer.Ordinal) { ["step"] = step, ["epoch"] = EpochPosition() };

        void Write(Dictionary<string, double> line) => AppendMetrics(metrics, state, line);

        TrainingResult Result(TrainingStatus status) => new(
            status, state.GlobalStep, state.SkippedSteps, lastLoggedLoss, state.LastEvalLoss, state.TokensSeen, clock.Elapsed, checkpoints.Last, resumedFrom);
    }

    /// <summary>Validation metrics of the current model: <c>eval_loss</c> and the objective's metrics as <c>eval_&lt;name&gt;</c>, each averaged with the batches' weights.</summary>
    public Dictionary<string, double> Evaluate()
    {
        if (validation is null)
        {
            throw new InvalidOperationException("no validation data was given");
        }

        var batches = validation.Batches(null);
        int count = options.EvalBatches > 0 ? Math.Min(options.EvalBatches, batches.Count) : batches.Count;
        double weight = 0, loss = 0;
        var sums = new Dictionary<string, double>(StringComparer.Ordinal);
        for (int i = 0; i < count; i++)
        {
            var r = objective.Evaluate(batches[i]);
            weight += r.Weight;
            loss += r.Weight * r.Loss;
            foreach (var (k, v) in r.Metrics)
            {
                sums[k] = sums.GetValueOrDefault(k) + (r.Weight * v);
            }
        }

        var result = new Dictionary<string, double>(StringComparer.Ordinal) { ["eval_loss"] = weight > 0 ? loss / weight : double.NaN };
        foreach (var (k, v) in sums)
        {
            result["eval_" + k] = weight > 0 ? v / weight : double.NaN;
        }

        return result;
    }

    // SplitMix64 of (seed, index): independent dropout seeds for the micro-batches of a step.
    private static ulong Mix(ulong seed, ulong index)
    {
        ulong z = seed + ((index + 1) * 0x9E3779B97F4A7C15UL);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }

    // One metrics line to metrics.jsonl (flushed) and to the state's log history, which keeps the last ones.
    internal static void AppendMetrics(StreamWriter metrics, TrainerState state, Dictionary<string, double> line)
    {
        metrics.WriteLine(JsonSerializer.Serialize(line, CompactJson));
        metrics.Flush();
        state.LogHistory.Add(line);
        if (state.LogHistory.Count > LogHistoryLength)
        {
            state.LogHistory.RemoveAt(0);
        }
    }

    private void WarnAboutChangedOptions(TrainerState state)
    {
        if (state.Options is not JsonElement saved)
        {
            return;
        }

        using var now = JsonDocument.Parse(OptionsReader.ToJson(options));
        var changed = now.RootElement.EnumerateObject()
            .Where(p => p.Name != "resume" && (!saved.TryGetProperty(p.Name, out var old) || !JsonElement.DeepEquals(old, p.Value)))
            .Select(p => p.Name)
            .ToList();
        if (changed.Count > 0)
        {
            Logger.LogWarning("resuming with options that differ from the checkpoint's run: {Keys}; the run will not match an uninterrupted one", string.Join(", ", changed));
        }
    }
}
