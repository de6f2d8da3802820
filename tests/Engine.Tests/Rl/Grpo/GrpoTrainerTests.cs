using System.Text.Json;
using Engine.Core.Backends;
using Engine.Core.Cpu;
using Engine.Models;
using Engine.Tests.Training;
using Engine.Training;
using Engine.Training.Data;
using Engine.Training.Options;
using Engine.Training.Rl.Grpo;
using Engine.Training.Rl.Ppo;
using Engine.Training.Rl.Rewards;
using Xunit;
using Xunit.Abstractions;

namespace Engine.Tests.Rl.Grpo;

public sealed class GrpoTrainerTests(ITestOutputHelper output) : IDisposable
{
    private readonly CpuBackend backend = new(2);

    public void Dispose() => backend.Dispose();

    [Fact]
    public void A_tiny_policy_learns_a_verifiable_reward_within_seconds()
    {
        using var dir = new TempDirectory();
        using var policy = PpoHarness.Policy(backend);
        var options = GrpoHarness.Options(dir.Path, steps: 20) with { LearningRate = 1e-2, NumIterations = 2, NumMiniBatches = 2 };
        var trainer = new GrpoTrainer(policy, null, GrpoHarness.FirstTokenReward(), GrpoHarness.Prompts(32, 1), GrpoHarness.Decode, PpoHarness.Eos, options);
        var reports = new List<GrpoProgress>();
        var result = trainer.Run(new SyncProgress<GrpoProgress>(reports.Add));
        Assert.Equal(TrainingStatus.Completed, result.Status);
        foreach (var p in reports)
        {
            output.WriteLine($"step {p.Step}: reward {p.Reward:F3} std {p.RewardStd:F3} zero-std {p.ZeroStdFraction:F2} loss {p.Loss:F4} len {p.CompletionLength:F2} clipped {p.ClippedRatio:F2} gen {p.GenerationShare:P0}");
        }

        double first = reports.Take(4).Average(p => p.Reward), last = reports.TakeLast(4).Average(p => p.Reward);
        Assert.True(last > first + 0.5, $"mean reward went from {first:F3} to {last:F3}");
        Assert.All(reports, p => Assert.True(double.IsNaN(p.Kl), "β = 0 loads no reference and reports no KL"));

        var lines = File.ReadAllLines(Path.Combine(dir.Path, Trainer<SequenceBatch>.MetricsFile));
        Assert.Equal(20, lines.Length);
        using var doc = JsonDocument.Parse(lines[^1]);
        foreach (string key in (string[])["reward", "reward_std", "rewards/first_token/mean", "frac_reward_zero_std", "completions/mean_length",
            "completions/clipped_ratio", "entropy", "clip_ratio/low_mean", "clip_ratio/high_mean", "loss", "grad_norm", "time/generation_share"])
        {
            Assert.True(doc.RootElement.TryGetProperty(key, out var v) && double.IsFinite(v.GetDouble()), $"metrics.jsonl lacks a finite {key}");
        }

        Assert.False(doc.RootElement.TryGetProperty("kl", out _));
    }

    [Fact]
    public void Cancel_then_resume_reaches_the_bits_and_metrics_of_an_uninterrupted_run()
    {
        using var dir = new TempDirectory();
        var prompts = GrpoHarness.Prompts(24, 2);
        var options = GrpoHarness.Options(dir.Sub("straight"), steps: 5) with
        {
            Beta = 0.05f, NumIterations = 2, NumMiniBatches = 2, GradientAccumulationSteps = 2, DynamicSampling = true, MaxNumGenBatches = 2,
            EpsilonHigh = 0.28f, CheckpointInterval = 2,
        };

        float[] straight;
        using (var policy = PpoHarness.Policy(backend))
        {
            Assert.Equal(TrainingStatus.Completed, Trainer(policy, options, prompts).Run().Status);
            straight = RlRunFiles.Snapshot(policy);
        }

        var split = options with { OutputDirectory = dir.Sub("split") };
        using (var policy = PpoHarness.Policy(backend))
        {
            using var cts = new CancellationTokenSource();
            var result = Trainer(policy, split, prompts).Run(new SyncProgress<GrpoProgress>(p =>
            {
                if (p.Step == 3)
                {
                    cts.Cancel();
                }
            }), cts.Token);
            Assert.Equal(TrainingStatus.Cancelled, result.Status);
            Assert.Equal(Path.Combine(split.OutputDirectory, "checkpoint-3"), result.LastCheckpoint);
        }

        using (var policy = PpoHarness.Policy(backend))
        {
            policy.InitializeWeights(99);
            var result = Trainer(policy, split with { Resume = true }, prompts).Run();
            Assert.Equal(TrainingStatus.Completed, result.Status);
            Assert.EndsWith("checkpoint-3", result.ResumedFrom, StringComparison.Ordinal);
            Assert.Equal(straight, RlRunFiles.Snapshot(policy));
        }

        var expected = RlRunFiles.Metrics(options.OutputDirectory);
        Assert.Equal(5, expected.Count);
        Assert.Equal(expected, RlRunFiles.Metrics(split.OutputDirectory));
        Assert.Contains("\"kl\"", expected[0], StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(GrpoLossType.Dapo)]
    [InlineData(GrpoLossType.Grpo)]
    [InlineData(GrpoLossType.DrGrpo)]
    public void Gradient_accumulation_gives_the_update_of_the_whole_minibatch(GrpoLossType lossType)
    {
        using var dir = new TempDirectory();
        var prompts = GrpoHarness.Prompts(16, 3);
        var options = GrpoHarness.Options(dir.Sub("one"), steps: 2) with { LossType = lossType, NumIterations = 2, NumMiniBatches = 2, EpsilonHigh = 0.3f };
        using var whole = PpoHarness.Policy(backend);
        using var accumulated = PpoHarness.Policy(backend);
        new GrpoTrainer(whole, null, GrpoHarness.FirstTokenReward(), prompts, GrpoHarness.Decode, PpoHarness.Eos, options).Run();
        new GrpoTrainer(accumulated, null, GrpoHarness.FirstTokenReward(), prompts, GrpoHarness.Decode, PpoHarness.Eos,
            options with { OutputDirectory = dir.Sub("four"), GradientAccumulationSteps = 4 }).Run();
        float[] a = RlRunFiles.Snapshot(whole), b = RlRunFiles.Snapshot(accumulated);
        double diff = 0, norm = 0;
        for (int i = 0; i < a.Length; i++)
        {
            diff += (double)(a[i] - b[i]) * (a[i] - b[i]);
            norm += (double)a[i] * a[i];
        }

        output.WriteLine($"{lossType}: relative difference {Math.Sqrt(diff / norm):E2}");
        Assert.True(Math.Sqrt(diff / norm) < 1e-5, $"accumulating 4 micro-batches moved the weights by {Math.Sqrt(diff / norm):E2} relative to one pass");
        Assert.NotEqual(RlRunFiles.Snapshot(PpoHarness.Policy(backend)), a);
    }

    [Fact]
    public void A_throwing_reward_function_stops_the_run_with_one_error_naming_it_and_the_line()
    {
        using var dir = new TempDirectory();
        using var policy = PpoHarness.Policy(backend);
        var rewards = new RewardSet([
            new DelegateReward("fine", _ => 1f),
            new DelegateReward("picky", s => s.Row.Line == 5 ? throw new FormatException("no answer column") : 0f),
        ]);
        var trainer = new GrpoTrainer(policy, null, rewards, GrpoHarness.Prompts(8, 4), GrpoHarness.Decode, PpoHarness.Eos, GrpoHarness.Options(dir.Path, steps: 1));
        var e = Assert.Throws<RewardFunctionException>(() => trainer.Run());
        Assert.Equal("prompts.jsonl:5: reward function 'picky': FormatException: no answer column", e.Message);
    }

    [Fact]
    public void Dynamic_sampling_draws_until_every_group_has_signal_and_says_when_it_gives_up()
    {
        using var dir = new TempDirectory();
        var prompts = GrpoHarness.Prompts(32, 5);

        // Prompts whose first token is even score 1 whatever the completion: their groups carry no signal.
        var rewards = new RewardSet([new DelegateReward("mixed", s => s.PromptIds[0] % 2 == 0 ? 1f : s.CompletionIds.Length > 0 && s.CompletionIds[0] % 2 == 0 ? 1f : 0f)]);
        var options = GrpoHarness.Options(dir.Sub("plain"), steps: 2) with { BatchSize = 4 };
        using var policy = PpoHarness.Policy(backend);
        var plain = Lines(new GrpoTrainer(policy, null, rewards, prompts, GrpoHarness.Decode, PpoHarness.Eos, options), options);
        Assert.Contains(plain, l => l.GetProperty("frac_reward_zero_std").GetDouble() > 0);

        var dynamic = options with { OutputDirectory = dir.Sub("dynamic"), DynamicSampling = true, MaxNumGenBatches = 6 };
        var kept = Lines(new GrpoTrainer(policy, null, rewards, prompts, GrpoHarness.Decode, PpoHarness.Eos, dynamic), dynamic);
        Assert.All(kept, l => Assert.Equal(0, l.GetProperty("frac_reward_zero_std").GetDouble()));
        Assert.Contains(kept, l => l.GetProperty("num_gen_batches").GetDouble() > 1);

        // Nothing ever differs: the step stops drawing at max_num_gen_batches, warns, and trains on what it has.
        var flat = new RewardSet([new DelegateReward("flat", _ => 0.5f)]);
        var logger = new ListLogger();
        var giveUp = dynamic with { OutputDirectory = dir.Sub("flat"), MaxNumGenBatches = 3, MaxSteps = 1 };
        var lines = Lines(new GrpoTrainer(policy, null, flat, prompts, GrpoHarness.Decode, PpoHarness.Eos, giveUp) { Logger = logger }, giveUp);
        Assert.Equal(3, lines[0].GetProperty("num_gen_batches").GetDouble());
        Assert.Equal(1, lines[0].GetProperty("frac_reward_zero_std").GetDouble());
        Assert.Contains(logger.Messages, m => m.Contains("0 of 4 groups have rewards that differ after 3 draws", StringComparison.Ordinal));
    }

    [Fact]
    public void Bad_options_and_inputs_are_refused_with_the_key_named()
    {
        using var dir = new TempDirectory();
        var good = GrpoHarness.Options(dir.Path, steps: 1);
        good.Validate();
        (GrpoOptions Options, string Key)[] cases =
        [
            (good with { NumGenerations = 1 }, "num_generations"),
            (good with { NumMiniBatches = 3 }, "num_mini_batches"),
            (good with { GradientAccumulationSteps = 3 }, "gradient_accumulation_steps"),
            (good with { MaxCompletionLength = good.MaxLength }, "max_completion_length"),
            (good with { Temperature = 0f }, "temperature"),
            (good with { Epsilon = 1f }, "epsilon"),
            (good with { EpsilonHigh = -0.1f }, "epsilon_high"),
            (good with { Beta = -1f }, "beta"),
            (good with { NumIterations = 0 }, "num_iterations"),
            (good with { MaxNumGenBatches = 0 }, "max_num_gen_batches"),
            (good with { Dropout = 0.1f }, "dropout"),
            (good with { TopP = 0f }, "top_p"),
        ];
        foreach (var (options, key) in cases)
        {
            var e = Assert.Throws<ArgumentException>(options.Validate);
            Assert.Contains(key, e.Message, StringComparison.Ordinal);
        }

        using var policy = PpoHarness.Policy(backend);
        var prompts = GrpoHarness.Prompts(16, 4);
        var rewards = GrpoHarness.FirstTokenReward();
        Assert.Contains("fewer than one step", Assert.Throws<ArgumentException>(() => new GrpoTrainer(policy, null, rewards, prompts[..3], GrpoHarness.Decode, PpoHarness.Eos, good)).Message, StringComparison.Ordinal);
        Assert.Contains("beta > 0 needs a reference", Assert.Throws<ArgumentException>(() => new GrpoTrainer(policy, null, rewards, prompts, GrpoHarness.Decode, PpoHarness.Eos, good with { Beta = 0.1f })).Message, StringComparison.Ordinal);
        Assert.Contains("field 'max_length': 20 exceeds", Assert.Throws<Engine.Core.InputException>(() => new GrpoTrainer(policy, null, rewards, prompts, GrpoHarness.Decode, PpoHarness.Eos, good with { MaxLength = 20 })).Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Options_read_from_yaml_and_overrides_with_trl_keys()
    {
        const string yaml = """
            num_generations: 16
            loss_type: dr_grpo
            scale_rewards: none
            importance_sampling_level: sequence
            advantage_estimator: reinforce_pp
            epsilon_high: 0.28
            beta: 0.04
            """;
        var options = OptionsReader.Parse<GrpoOptions>(yaml, "grpo.yaml", OptionsFormat.Yaml);
        options = OptionsReader.Apply(options, ["num_iterations=2", "mask_truncated_completions=true", "loss_type=bnpo"]);
        options.Validate();
        Assert.Equal(16, options.NumGenerations);
        Assert.Equal(GrpoLossType.Bnpo, options.LossType);
        Assert.Equal(RewardScaling.None, options.ScaleRewards);
        Assert.Equal(ImportanceSamplingLevel.Sequence, options.ImportanceSamplingLevel);
        Assert.Equal(AdvantageEstimator.ReinforcePp, options.AdvantageEstimator);
        Assert.Equal(0.28f, options.ClipHigh);
        Assert.Equal(0.2f, new GrpoOptions().ClipHigh);
        Assert.True(options.MaskTruncatedCompletions && options.NeedsReference && options.NeedsOldLogProbs);
        var e = Assert.Throws<OptionsException>(() => OptionsReader.Parse<GrpoOptions>("loss_type: ppo\n", "grpo.yaml", OptionsFormat.Yaml));
        Assert.Equal("grpo.yaml:1: key 'loss_type': expected a one of grpo, bnpo, dr_grpo, dapo, got 'ppo'", e.Message);
    }

    private GrpoTrainer Trainer(Transformer policy, GrpoOptions options, List<GrpoPrompt> prompts)
    {
        var reference = PolicyReference.LoadedPerRollout(() => PpoHarness.Policy(backend, trainable: false), PpoHarness.PolicyConfig);
        return new GrpoTrainer(policy, reference, GrpoHarness.FirstTokenReward(), prompts, GrpoHarness.Decode, PpoHarness.Eos, options);
    }

    private static List<JsonElement> Lines(GrpoTrainer trainer, GrpoOptions options)
    {
        trainer.Run();
        return [.. File.ReadAllLines(Path.Combine(options.OutputDirectory, Trainer<SequenceBatch>.MetricsFile)).Select(l => JsonDocument.Parse(l).RootElement.Clone())];
    }
}
