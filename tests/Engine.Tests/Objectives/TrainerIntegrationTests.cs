using System.Text.Json;
using Engine.Core.Cpu;
using Engine.Models;
using Engine.Models.HuggingFace;
using Engine.Tests.Training;
using Engine.Training;
using Engine.Training.Checkpoints;
using Engine.Training.Objectives;
using Engine.Training.Options;
using Xunit;

namespace Engine.Tests.Objectives;

/// <summary>The reward-model and DPO objectives inside the shared <see cref="Trainer{TBatch}"/>: metrics, checkpoints, resume.</summary>
[Trait("Category", "Training")]
public class TrainerIntegrationTests
{
    private static TrainerOptions Options(string directory) => new()
    {
        MaxSteps = 6, BatchSize = 4, LearningRate = 2e-3, LogInterval = 1, CheckpointInterval = 3, EvalInterval = 3,
        MaxLength = SyntheticPreferences.MaxLength, OutputDirectory = directory, Optimizer = new() { WeightDecay = 0f },
    };

    private static PreferenceBatches Data(ulong seed, int count) =>
        new(SyntheticPreferences.Collator, SyntheticPreferences.Examples(seed, count, rankingEvery: 3), groupsPerBatch: 4);

    private static Transformer RewardModel(CpuBackend backend, ulong seed)
    {
        var model = new Transformer(SyntheticPreferences.Gpt2Config with { Head = HeadKind.Scalar }, backend);
        model.InitializeWeights(seed);
        return model;
    }

    private static float[] Values(Transformer model)
    {
        var v = new float[model.Parameters.ElementCount];
        model.Backend.CopyToHost<float>(model.Parameters.Values, v);
        return v;
    }

    [Fact]
    public void A_reward_model_trains_checkpoints_and_resumes_to_the_same_bits()
    {
        using var backend = new CpuBackend(2);
        using var dir = new TempDirectory();
        var train = Data(1, 20);
        var validation = Data(2, 8);

        float[] straight;
        using (var model = RewardModel(backend, 3))
        using (var objective = new RewardModelObjective(model))
        {
            var result = new Trainer<PreferenceBatch>(model, objective, train, validation, Options(dir.Sub("straight"))).Run();
            Assert.Equal(TrainingStatus.Completed, result.Status);
            straight = Values(model);
        }

        string checkpoint = Path.Combine(dir.Sub("straight"), "checkpoint-3");
        Assert.True(File.Exists(Path.Combine(checkpoint, RewardHeadFile.FileName)));
        Assert.Equal(HeadKind.Scalar, HfCheckpoint.ReadConfig(checkpoint).Model.Head);
        var lines = File.ReadAllLines(Path.Combine(dir.Sub("straight"), Trainer<PreferenceBatch>.MetricsFile)).Select(l => JsonDocument.Parse(l).RootElement).ToList();
        Assert.Contains(lines, l => l.TryGetProperty("rewards/accuracies", out _) && l.TryGetProperty("rewards/margins", out _));
        Assert.Contains(lines, l => l.TryGetProperty("eval_loss", out _));

        var split = Options(dir.Sub("split"));
        using (var model = RewardModel(backend, 3))
        using (var objective = new RewardModelObjective(model))
        using (var cts = new CancellationTokenSource())
        {
            var progress = new SyncProgress<TrainingProgress>(p =>
            {
                if (p.Step == 3)
                {
                    cts.Cancel();
                }
            });
            Assert.Equal(TrainingStatus.Cancelled, new Trainer<PreferenceBatch>(model, objective, train, validation, split).Run(progress, cts.Token).Status);
        }

        // Other initial weights, the score head included: everything must come from the checkpoint.
        using (var model = RewardModel(backend, 99))
        using (var objective = new RewardModelObjective(model))
        {
            var result = new Trainer<PreferenceBatch>(model, objective, train, validation, split with { Resume = true }).Run();
            Assert.EndsWith("checkpoint-3", result.ResumedFrom, StringComparison.Ordinal);
            Assert.Equal(straight, Values(model));
        }
    }

    [Fact]
    public void Dpo_trains_in_the_shared_loop_with_its_metrics()
    {
        using var backend = new CpuBackend(2);
        using var dir = new TempDirectory();
        var train = Data(5, 16);
        using var policy = new Transformer(SyntheticPreferences.Gpt2Config, backend);
        policy.InitializeWeights(4);
        using var reference = new Transformer(SyntheticPreferences.Gpt2Config, backend, trainable: false);
        reference.InitializeWeights(4);
        var cache = ReferenceLogProbCache.LoadOrCompute(
            dir.Sub("reference.safetensors"), train.All(), ReferenceLogProbCache.ModelKey(reference),
            () => new Transformer(SyntheticPreferences.Gpt2Config, backend, trainable: false));
        using var objective = new DpoObjective(policy, cache);

        var result = new Trainer<PreferenceBatch>(policy, objective, train, null, Options(dir.Sub("dpo")) with { GradientAccumulationSteps = 2 }).Run();
        Assert.Equal(6, result.Steps);
        var last = JsonDocument.Parse(File.ReadAllLines(Path.Combine(dir.Sub("dpo"), Trainer<PreferenceBatch>.MetricsFile))[^1]).RootElement;
        foreach (string metric in (string[])["loss", "rewards/chosen", "rewards/rejected", "rewards/accuracies", "rewards/margins", "logps/chosen", "logps/rejected"])
        {
            Assert.True(last.TryGetProperty(metric, out var value) && double.IsFinite(value.GetDouble()), $"metrics.jsonl lacks {metric}");
        }

        Assert.True(last.GetProperty("rewards/margins").GetDouble() > 0);
    }
}
