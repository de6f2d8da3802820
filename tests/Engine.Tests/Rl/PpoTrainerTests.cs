using System.Text.Json;
using Engine.Core.Cpu;
using Engine.Models;
using Engine.Tests.Training;
using Engine.Training;
using Engine.Training.Checkpoints;
using Engine.Training.Data;
using Engine.Training.Options;
using Engine.Training.Rl.Ppo;
using Xunit;
using Xunit.Abstractions;

namespace Engine.Tests.Rl;

public sealed class PpoTrainerTests(ITestOutputHelper output) : IDisposable
{
    private readonly CpuBackend backend = new(2);

    public void Dispose() => backend.Dispose();

    [Fact]
    public void The_mean_score_rises_on_a_reward_for_one_token_while_the_kl_stays_bounded()
    {
        using var dir = new TempDirectory();
        using var roles = new PpoHarness.Roles(backend);
        var options = PpoHarness.Options(dir.Path, steps: 30);
        var trainer = new PpoTrainer(roles.Models, PpoHarness.Prompts(32, 1), null, PpoHarness.Eos, options);
        var reports = new List<PpoProgress>();
        var result = trainer.Run(new SyncProgress<PpoProgress>(reports.Add));
        Assert.Equal(TrainingStatus.Completed, result.Status);
        Assert.Equal(30, reports.Count);
        foreach (var p in reports)
        {
            output.WriteLine($"step {p.Step}: score {p.Score:F3} kl {p.Kl:F3} β {p.KlCoef:F4} policy {p.PolicyLoss:F4} value {p.ValueLoss:F4} len {p.ResponseLength:F2} eos {p.EosRate:F2}");
        }

        double first = reports.Take(5).Average(p => p.Score), last = reports.TakeLast(5).Average(p => p.Score);
        Assert.True(last > first + 0.5, $"mean score went from {first:F3} to {last:F3}");

        // β = 0.1 against a reward gap of 2: the KL-regularised optimum makes the last token the rewarded one, which costs
        // about −log π_ref(rewarded) ≈ log V nats; the KL must settle near that, not run away.
        double lateKl = reports.TakeLast(10).Average(p => p.Kl);
        Assert.InRange(lateKl, 0.5, 6.0);
        Assert.All(reports, p => Assert.InRange(p.Kl, -1.0, 8.0));

        var lines = File.ReadAllLines(Path.Combine(dir.Path, Trainer<SequenceBatch>.MetricsFile));
        Assert.Equal(30, lines.Length);
        using var doc = JsonDocument.Parse(lines[^1]);
        foreach (string key in (string[])["objective/scores", "objective/kl", "objective/entropy", "policy/clipfrac_avg", "policy/approxkl_avg",
            "loss/policy_avg", "loss/value_avg", "val/explained_variance", "val/response_length", "val/eos_rate", "time/generation", "time/training", "time/generation_share"])
        {
            Assert.True(doc.RootElement.TryGetProperty(key, out var v) && double.IsFinite(v.GetDouble()), $"metrics.jsonl lacks a finite {key}");
        }
    }

    [Fact]
    public void Cancel_then_resume_reaches_the_bits_and_metrics_of_an_uninterrupted_run()
    {
        using var dir = new TempDirectory();
        var prompts = PpoHarness.Prompts(24, 2);
        var options = PpoHarness.Options(dir.Sub("straight"), steps: 6) with
        {
            AdaptiveKl = true, KlTarget = 0.5, KlHorizon = 64, GradientAccumulationSteps = 2, MissingEosPenalty = 0.5f, CheckpointInterval = 2,
        };

        // Straight through; the reference is loaded per rollout, PPO-ptx on a small corpus, β adaptive.
        (float[] Actor, float[] Critic) straight;
        using (var roles = new PpoHarness.Roles(backend))
        {
            var result = Trainer(roles, options, prompts).Run();
            Assert.Equal(TrainingStatus.Completed, result.Status);
            straight = (RlRunFiles.Snapshot(roles.Actor), RlRunFiles.Snapshot(roles.Critic));
        }

        var split = options with { OutputDirectory = dir.Sub("split") };
        using (var roles = new PpoHarness.Roles(backend))
        {
            using var cts = new CancellationTokenSource();
            var result = Trainer(roles, split, prompts).Run(new SyncProgress<PpoProgress>(p =>
            {
                if (p.Step == 3)
                {
                    cts.Cancel();
                }
            }), cts.Token);
            Assert.Equal(TrainingStatus.Cancelled, result.Status);
            Assert.Equal(Path.Combine(split.OutputDirectory, "checkpoint-3"), result.LastCheckpoint);
            Assert.True(File.Exists(Path.Combine(result.LastCheckpoint!, PpoTrainer.CriticDirectory, "model.safetensors")));
            Assert.True(File.Exists(Path.Combine(result.LastCheckpoint!, PpoTrainer.StateFile)));
        }

        // Fresh models with other weights: the actor, the critic and every position must come from the checkpoint.
        using (var roles = new PpoHarness.Roles(backend))
        {
            roles.Actor.InitializeWeights(99);
            roles.Critic.InitializeWeights(98);
            var result = Trainer(roles, split with { Resume = true }, prompts).Run();
            Assert.Equal(TrainingStatus.Completed, result.Status);
            Assert.EndsWith("checkpoint-3", result.ResumedFrom, StringComparison.Ordinal);
            Assert.Equal(straight.Actor, RlRunFiles.Snapshot(roles.Actor));
            Assert.Equal(straight.Critic, RlRunFiles.Snapshot(roles.Critic));
        }

        var expected = RlRunFiles.Metrics(options.OutputDirectory);
        Assert.Equal(6, expected.Count);
        Assert.Equal(expected, RlRunFiles.Metrics(split.OutputDirectory));
        Assert.Contains("loss/ptx_avg", expected[0], StringComparison.Ordinal);
        Assert.NotEqual(JsonDocument.Parse(expected[0]).RootElement.GetProperty("objective/kl_coef").GetDouble(), JsonDocument.Parse(expected[^1]).RootElement.GetProperty("objective/kl_coef").GetDouble());
    }

    [Fact]
    public void A_damaged_ppo_checkpoint_falls_back_and_a_plain_one_is_refused()
    {
        using var dir = new TempDirectory();
        var prompts = PpoHarness.Prompts(16, 3);
        var options = PpoHarness.Options(dir.Path, steps: 2) with { CheckpointInterval = 1, KeepLast = 0 };
        using var roles = new PpoHarness.Roles(backend);
        new PpoTrainer(roles.Models, prompts, null, PpoHarness.Eos, options).Run();

        // A critic file altered in the newest checkpoint: resuming falls back to checkpoint-1 and redoes step 2.
        File.AppendAllText(Path.Combine(dir.Path, "checkpoint-2", PpoTrainer.CriticDirectory, CheckpointStore.OptimizerFile), "x");
        var result = new PpoTrainer(roles.Models, prompts, null, PpoHarness.Eos, options with { Resume = true }).Run();
        Assert.EndsWith("checkpoint-1", result.ResumedFrom, StringComparison.Ordinal);
        Assert.Equal(2, result.Steps);

        // A checkpoint of another trainer (no critic, no ppo_state.json) is not a PPO checkpoint.
        using var other = new TempDirectory();
        new CheckpointStore(other.Path).Save(roles.Actor, new TrainerState { GlobalStep = 1, TotalSteps = 2 });
        var e = Assert.Throws<Engine.Core.InputException>(() => new PpoTrainer(roles.Models, prompts, null, PpoHarness.Eos, options with { OutputDirectory = other.Path, Resume = true }).Run());
        Assert.Contains("not a PPO checkpoint", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Bad_options_and_inputs_are_refused_with_the_key_named()
    {
        using var dir = new TempDirectory();
        var good = PpoHarness.Options(dir.Path, steps: 1);
        good.Validate();
        (PpoOptions Options, string Key)[] cases =
        [
            (good with { NumMiniBatches = 3 }, "num_mini_batches"),
            (good with { GradientAccumulationSteps = 3 }, "gradient_accumulation_steps"),
            (good with { ResponseLength = 0 }, "response_length"),
            (good with { ResponseLength = good.MaxLength }, "response_length"),
            (good with { Temperature = 0f }, "temperature"),
            (good with { Cliprange = -0.1f }, "cliprange"),
            (good with { VfCoef = 0f }, "vf_coef"),
            (good with { Gamma = 1.5f }, "gamma"),
            (good with { Lam = -1f }, "lam"),
            (good with { KlCoef = -1 }, "kl_coef"),
            (good with { AdaptiveKl = true, KlTarget = 0 }, "kl_target"),
            (good with { MissingEosPenalty = -1f }, "missing_eos_penalty"),
            (good with { Dropout = 0.1f }, "dropout"),
            (good with { EvalInterval = 5 }, "eval_interval"),
            (good with { CriticLearningRate = 0 }, "critic_learning_rate"),
            (good with { NumPpoEpochs = 0 }, "num_ppo_epochs"),
            (good with { TopP = 0f }, "top_p"),
        ];
        foreach (var (options, key) in cases)
        {
            var e = Assert.Throws<ArgumentException>(options.Validate);
            Assert.Contains(key, e.Message, StringComparison.Ordinal);
        }

        using var roles = new PpoHarness.Roles(backend);
        var prompts = PpoHarness.Prompts(16, 4);
        Assert.Contains("fewer than one step", Assert.Throws<ArgumentException>(() => new PpoTrainer(roles.Models, prompts[..3], null, PpoHarness.Eos, good)).Message, StringComparison.Ordinal);
        Assert.Contains("prompt 1 has 9 tokens", Assert.Throws<ArgumentException>(() => new PpoTrainer(roles.Models, [prompts[0], new int[9], .. prompts], null, PpoHarness.Eos, good)).Message, StringComparison.Ordinal);
        Assert.Contains("field 'max_length': 20 exceeds", Assert.Throws<Engine.Core.InputException>(() => new PpoTrainer(roles.Models, prompts, null, PpoHarness.Eos, good with { MaxLength = 20 })).Message, StringComparison.Ordinal);
        Assert.Contains("ptx_coef is 0", Assert.Throws<ArgumentException>(() => new PpoTrainer(roles.Models, prompts, Ptx(), PpoHarness.Eos, good with { PtxCoef = 0 })).Message, StringComparison.Ordinal);
        var swapped = roles.Models with { Critic = roles.Reward };
        Assert.Contains("separate model", Assert.Throws<ArgumentException>(() => new PpoTrainer(swapped, prompts, null, PpoHarness.Eos, good)).Message, StringComparison.Ordinal);
        Assert.Throws<ArgumentException>(() => new PpoTrainer(roles.Models with { Critic = roles.Actor }, prompts, null, PpoHarness.Eos, good));
    }

    [Fact]
    public void Options_read_from_yaml_and_overrides_with_trl_keys()
    {
        const string yaml = """
            learning_rate: 1.0e-5
            critic_learning_rate: 5.0e-5
            batch_size: 16
            num_mini_batches: 4
            num_ppo_epochs: 2
            kl_estimator: k3
            adaptive_kl: true
            kl_target: 3
            missing_eos_penalty: 1.5
            optimizer:
              max_grad_norm: 0.5
            """;
        var options = OptionsReader.Parse<PpoOptions>(yaml, "ppo.yaml", OptionsFormat.Yaml);
        options = OptionsReader.Apply(options, ["cliprange=0.1", "whiten_rewards=true", "response_length=24"]);
        options.Validate();
        Assert.Equal(1e-5, options.LearningRate);
        Assert.Equal(5e-5, options.CriticLearningRate);
        Assert.Equal(4, options.MiniBatchRows);
        Assert.Equal(KlEstimator.K3, options.KlEstimator);
        Assert.True(options.AdaptiveKl);
        Assert.Equal(1.5f, options.MissingEosPenalty);
        Assert.Equal(0.5f, options.Optimizer.MaxGradNorm);
        Assert.Equal(0.1f, options.Cliprange);
        Assert.True(options.WhitenRewards);
        Assert.Equal(512 - 24, options.MaxPromptLength);
        Assert.Equal(0.95f, options.Lam);
        Assert.DoesNotContain("mini_batch_rows", OptionsReader.ToJson(options), StringComparison.Ordinal);

        var e = Assert.Throws<OptionsException>(() => OptionsReader.Parse<PpoOptions>("num_ppo_epochs: 2\nkl_estimator: k2\n", "ppo.yaml", OptionsFormat.Yaml));
        Assert.Equal("ppo.yaml:2: key 'kl_estimator': expected a one of k1, k3, got 'k2'", e.Message);
    }

    [Fact]
    public void The_adaptive_controller_follows_ziegler_et_al()
    {
        var fixedBeta = new KlController(0.2);
        fixedBeta.Update(100, 64);
        Assert.Equal(0.2, fixedBeta.Value);

        var adaptive = new KlController(0.2, target: 6, horizon: 10000);
        adaptive.Update(9, 256);   // error clipped to +0.2
        Assert.Equal(0.2 * (1 + (0.2 * 256 / 10000)), adaptive.Value, 15);
        adaptive.Update(5.7, 128); // error −0.05
        Assert.Equal(0.2 * (1 + (0.2 * 256 / 10000)) * (1 + (-0.05 * 128 / 10000)), adaptive.Value, 15);
        Assert.Throws<ArgumentOutOfRangeException>(() => new KlController(0.1, target: 0));
    }

    private PpoTrainer Trainer(PpoHarness.Roles roles, PpoOptions options, List<int[]> prompts)
    {
        var reference = PolicyReference.LoadedPerRollout(() => PpoHarness.Policy(backend, trainable: false), PpoHarness.PolicyConfig);
        return new PpoTrainer(roles.Models with { Reference = reference }, prompts, Ptx(), PpoHarness.Eos, options);
    }

    private static PretrainBatches Ptx()
    {
        var encoder = new FuncTextEncoder(text => [.. text.Select(c => 2 + (c % (PpoHarness.Vocab - 2)))], eosTokenId: PpoHarness.Eos);
        return new PretrainBatches(encoder, TrainingHarness.Texts(40, 7), PpoHarness.Context, 4);
    }
}
