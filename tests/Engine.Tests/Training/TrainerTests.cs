using Engine.Core.Cpu;
using Engine.Models;
using Engine.Tests.Support;
using Engine.Training;
using Engine.Training.Checkpoints;
using Engine.Training.Data;
using Engine.Training.Options;
using Xunit;
using static Engine.Tests.Training.TrainingHarness;

namespace Engine.Tests.Training;

public class TrainerTests
{
    // 12 documents → a stream of rows of 17 tokens; B=2 and 2 micro-batches per step, so epochs end mid-step.
    private static PretrainOptions Pretrain(string output) => new()
    {
        MaxSteps = 8,
        BatchSize = 2,
        GradientAccumulationSteps = 2,
        MaxLength = 16,
        Dropout = 0.1f,
        LearningRate = 1e-2,
        WarmupSteps = 2,
        LogInterval = 2,
        EvalInterval = 3,
        CheckpointInterval = 0,
        Seed = 5,
        OutputDirectory = output,
    };

    private static Trainer<SequenceBatch> PretrainTrainer(Transformer model, PretrainOptions options) =>
        LanguageModelTrainers.Pretrain(model, Encoder, Texts(12, 1), Texts(6, 2), options);

    private static (float[] Values, float[] M, float[] V) Snapshot(CpuBackend backend, Transformer model) =>
        (Read(backend, model.Parameters.Values), Read(backend, model.Parameters.FirstMoment), Read(backend, model.Parameters.SecondMoment));

    private static void AssertSameState((float[] Values, float[] M, float[] V) a, (float[] Values, float[] M, float[] V) b, string what)
    {
        Approx.BitEqual(a.Values, b.Values, what + " parameters");
        Approx.BitEqual(a.M, b.M, what + " first moments");
        Approx.BitEqual(a.V, b.V, what + " second moments");
    }

    private static (float[] Values, float[] M, float[] V) Straight(CpuBackend backend, PretrainOptions options)
    {
        using var model = Model(backend);
        var result = PretrainTrainer(model, options).Run();
        Assert.Equal(TrainingStatus.Completed, result.Status);
        return Snapshot(backend, model);
    }

    [Fact]
    public void Cancel_then_resume_reaches_the_bits_and_metrics_of_an_uninterrupted_run()
    {
        using var backend = new CpuBackend(2);
        using var dir = new TempDirectory();
        var straight = Straight(backend, Pretrain(dir.Sub("straight")));

        var split = Pretrain(dir.Sub("split"));
        using (var model = Model(backend))
        {
            using var cts = new CancellationTokenSource();
            var result = PretrainTrainer(model, split).Run(new SyncProgress<TrainingProgress>(p =>
            {
                if (p.Step == 3)
                {
                    cts.Cancel();
                }
            }), cts.Token);
            Assert.Equal(TrainingStatus.Cancelled, result.Status);
            Assert.Equal(3, result.Steps);
            Assert.Equal(Path.Combine(split.OutputDirectory, "checkpoint-3"), result.LastCheckpoint);
            Assert.Equal("checkpoint-3", File.ReadAllText(Path.Combine(split.OutputDirectory, CheckpointStore.LatestFile)).Trim());
        }

        // A fresh model with other initial weights: everything must come from the checkpoint.
        using (var model = Model(backend, seed: 99))
        {
            var result = PretrainTrainer(model, split with { Resume = true }).Run();
            Assert.Equal(TrainingStatus.Completed, result.Status);
            Assert.EndsWith("checkpoint-3", result.ResumedFrom, StringComparison.Ordinal);
            AssertSameState(straight, Snapshot(backend, model), "resumed run");
        }

        var expected = Metrics(dir.Sub("straight"));
        Assert.Equal(expected, Metrics(dir.Sub("split")));
        Assert.Contains(expected, l => l.Contains("\"eval_loss\"", StringComparison.Ordinal));
        Assert.Contains(expected, l => l.Contains("\"grad_norm\"", StringComparison.Ordinal) && l.Contains("\"learning_rate\"", StringComparison.Ordinal));
    }

    [Fact]
    public void A_fresh_run_refuses_an_output_directory_with_checkpoints()
    {
        using var backend = new CpuBackend(2);
        using var dir = new TempDirectory();
        var options = Pretrain(dir.Path) with { MaxSteps = 2 };
        using var model = Model(backend);
        PretrainTrainer(model, options).Run();
        var e = Assert.Throws<Engine.Core.InputException>(() => PretrainTrainer(model, options).Run());
        Assert.Contains("resume", e.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(CheckpointStage.Weights)]
    [InlineData(CheckpointStage.Optimizer)]
    [InlineData(CheckpointStage.State)]
    [InlineData(CheckpointStage.Publish)]
    [InlineData(CheckpointStage.Latest)]
    [InlineData(CheckpointStage.Prune)]
    public void A_crash_at_any_checkpoint_stage_keeps_a_complete_checkpoint_and_resumes_exactly(CheckpointStage stage)
    {
        using var backend = new CpuBackend(2);
        using var dir = new TempDirectory();
        var options = Pretrain(dir.Sub("run")) with { MaxSteps = 4, CheckpointInterval = 2, KeepLast = 1 };
        var straight = Straight(backend, options with { OutputDirectory = dir.Sub("straight") });

        using (var model = Model(backend))
        {
            var trainer = PretrainTrainer(model, options);
            int saves = 0;
            trainer.Checkpoints.BeforeStage = s =>
            {
                saves += s == CheckpointStage.Weights ? 1 : 0;
                if (s == stage && saves == 2)
                {
                    throw new IOException($"injected crash before {s}");
                }
            };
            Assert.Throws<IOException>(() => trainer.Run());
        }

        var store = new CheckpointStore(options.OutputDirectory);
        var found = store.FindLatest();
        Assert.NotNull(found);
        int expectedStep = stage >= CheckpointStage.Latest ? 4 : 2;
        Assert.Equal(expectedStep, found.State.GlobalStep);
        Assert.Empty(Directory.EnumerateDirectories(options.OutputDirectory, ".tmp-*"));
        string latest = File.ReadAllText(Path.Combine(options.OutputDirectory, CheckpointStore.LatestFile)).Trim();
        Assert.Equal(stage == CheckpointStage.Latest ? "checkpoint-2" : $"checkpoint-{expectedStep}", latest);

        using (var model = Model(backend, seed: 7))
        {
            var result = PretrainTrainer(model, options with { Resume = true }).Run();
            Assert.Equal(4, result.Steps);
            AssertSameState(straight, Snapshot(backend, model), $"resumed after a crash before {stage}");
        }

        Assert.Equal(Metrics(dir.Sub("straight")), Metrics(options.OutputDirectory));
        // A crash after checkpoint-4 was published leaves checkpoint-2 for the next save's pruning.
        var left = Directory.EnumerateDirectories(options.OutputDirectory, "checkpoint-*").Select(Path.GetFileName).Order().ToList();
        Assert.Equal(stage >= CheckpointStage.Latest ? ["checkpoint-2", "checkpoint-4"] : ["checkpoint-4"], left);
    }

    [Theory]
    [InlineData("model.safetensors")]
    [InlineData("optimizer.safetensors")]
    [InlineData("config.json")]
    [InlineData("trainer_state.json")]
    public void A_truncated_file_makes_the_checkpoint_untrusted_and_the_previous_one_is_used(string file)
    {
        using var backend = new CpuBackend(2);
        using var dir = new TempDirectory();
        var options = Pretrain(dir.Path) with { MaxSteps = 4, CheckpointInterval = 2, KeepLast = 0 };
        using (var model = Model(backend))
        {
            PretrainTrainer(model, options).Run();
        }

        var store = new CheckpointStore(dir.Path);
        string path = Path.Combine(store.PathOf(4), file);
        byte[] bytes = File.ReadAllBytes(path);
        File.WriteAllBytes(path, bytes[..(bytes.Length / 2)]);
        Assert.Throws<InvalidDataException>(() => CheckpointStore.Verify(store.PathOf(4)));
        var found = store.FindLatest();
        Assert.NotNull(found);
        Assert.Equal(2, found.State.GlobalStep);

        // The same bytes again but altered in place: the digest catches what the length cannot.
        bytes[^1] ^= 1;
        File.WriteAllBytes(path, bytes);
        Assert.Throws<InvalidDataException>(() => CheckpointStore.Verify(store.PathOf(4)));
    }

    [Fact]
    public void A_nan_loss_stops_at_its_step_and_keeps_the_last_good_checkpoint()
    {
        using var backend = new CpuBackend(2);
        using var dir = new TempDirectory();
        var options = Pretrain(dir.Path) with { MaxSteps = 6, GradientAccumulationSteps = 1, CheckpointInterval = 2, Dropout = 0f };
        using var model = Model(backend);
        var trainer = new Trainer<SequenceBatch>(
            model, new PoisonedObjective(model, poisonedCall: 3, intoGradient: false), new PretrainBatches(Encoder, Texts(12, 1), 16, 2), null, options);
        var e = Assert.Throws<TrainingDivergedException>(() => trainer.Run());
        Assert.Equal(3, e.Step);
        Assert.StartsWith("step 3: the loss is NaN", e.Message, StringComparison.Ordinal);
        Assert.Contains("checkpoint-2", e.Message, StringComparison.Ordinal);
        Assert.Equal(new CheckpointStore(dir.Path).PathOf(2), e.LastCheckpoint);

        // Nothing was applied at step 3: the model is still the one checkpoint-2 holds.
        using var saved = Model(backend, seed: 3);
        CheckpointStore.Restore(saved, e.LastCheckpoint!);
        AssertSameState(Snapshot(backend, saved), Snapshot(backend, model), "after the NaN");
        Assert.Equal(2, new CheckpointStore(dir.Path).FindLatest()!.State.GlobalStep);
    }

    [Fact]
    public void A_nan_gradient_is_skipped_and_counted_under_the_skip_policy()
    {
        using var backend = new CpuBackend(2);
        using var dir = new TempDirectory();
        var options = Pretrain(dir.Path) with { MaxSteps = 6, GradientAccumulationSteps = 1, NanPolicy = NanPolicy.Skip, LogInterval = 1, Dropout = 0f };
        using var model = Model(backend);
        var trainer = new Trainer<SequenceBatch>(
            model, new PoisonedObjective(model, poisonedCall: 3, intoGradient: true), new PretrainBatches(Encoder, Texts(12, 1), 16, 2), null, options);
        var after = new Dictionary<int, float[]>();
        var result = trainer.Run(new SyncProgress<TrainingProgress>(p => after[p.Step] = Read(backend, model.Parameters.Values)));
        Assert.Equal(TrainingStatus.Completed, result.Status);
        Assert.Equal(6, result.Steps);
        Assert.Equal(1, result.SkippedSteps);
        Approx.BitEqual(after[2], after[3], "parameters across the skipped step");
        Assert.NotEqual(after[3], after[4]);
        Assert.Equal(5, new CheckpointStore(dir.Path).FindLatest()!.State.OptimizerSteps);
        var lines = Metrics(dir.Path);
        Assert.Contains("\"skipped_steps\":0", lines[1], StringComparison.Ordinal);
        Assert.Contains("\"skipped_steps\":1", lines[^1], StringComparison.Ordinal);
        Assert.DoesNotContain(after.Values.SelectMany(v => v), float.IsNaN);
    }

    [Fact]
    public void Two_micro_batches_of_half_size_equal_one_full_batch()
    {
        using var backend = new CpuBackend(2);
        using var dir = new TempDirectory();
        var examples = Instructions(8, 3);
        float[] Gradient(int batch, int accumulation, out string line)
        {
            using var model = Model(backend);
            var options = new SftOptions
            {
                MaxSteps = 1, BatchSize = batch, GradientAccumulationSteps = accumulation, MaxLength = 32, LogInterval = 1,
                Schedule = LearningRateSchedule.Constant, OutputDirectory = dir.Sub($"b{batch}x{accumulation}"),
            };
            LanguageModelTrainers.Sft(model, Encoder, examples, null, options).Run();
            line = Metrics(options.OutputDirectory)[0];
            return Read(backend, model.Parameters.Gradients);
        }

        var full = Gradient(4, 1, out string fullLine);
        var halves = Gradient(2, 2, out string halvesLine);
        Approx.Equal(full, halves, 1e-6f, 1e-4f, "gradient of 2×B/2 vs 1×B");
        double LossOf(string line) => System.Text.Json.JsonDocument.Parse(line).RootElement.GetProperty("loss").GetDouble();
        Assert.Equal(LossOf(fullLine), LossOf(halvesLine), 5);
    }
}
