using System.Globalization;
using System.Text.Json;
using Engine.Core.Backends;
using Engine.Core.Cpu;
using Engine.Tests.Support;
using Engine.Training.Rl.Grpo;
using Engine.Training.Rl.Sampling;
using Xunit;
using Xunit.Abstractions;

namespace Engine.Tests.Rl.Grpo;

/// <summary>
/// One update of the GRPO family against float64 PyTorch (tests/fixtures/generate_grpo_fixtures.py), for every
/// loss_type × importance_sampling_level × advantage estimator: from fixed groups, the advantages, TRL's reward
/// statistics, the loss and its statistics, and every gradient of the policy (relative norm ≤ 1e-5).
/// </summary>
[Trait("Category", "Parity")]
public sealed class GrpoFixtureTests(ITestOutputHelper output) : IDisposable
{
    private static readonly Lazy<ObjectiveFixture> Shared = new(() => ObjectiveFixture.Load("grpo_update"));
    private readonly CpuBackend backend = new(2);

    public static TheoryData<string> Cases()
    {
        var data = new TheoryData<string>();
        foreach (var loss in (string[])["grpo", "bnpo", "dr_grpo", "dapo"])
        {
            foreach (var level in (string[])["token", "sequence"])
            {
                foreach (var estimator in (string[])["grpo", "rloo", "reinforce_pp"])
                {
                    data.Add($"{loss}.{level}.{estimator}");
                }
            }
        }

        return data;
    }

    public void Dispose() => backend.Dispose();

    [Theory]
    [MemberData(nameof(Cases))]
    public void One_update_matches_pytorch(string name)
    {
        var f = Shared.Value;
        var options = Options(f, f.Cases.GetProperty(name));
        var batch = Batch(f);
        Assert.Equal(f.Ints["rollout.tokens"], batch.Tokens);
        Assert.Equal(f.Ints["rollout.targets"], batch.Targets);

        var e = GrpoExperience.Build(backend, batch, f.Floats["rollout.rewards"], f.Floats["rollout.old_logp"], f.Floats["rollout.ref_logp"], options);
        Approx.Equal(f.Floats[$"{name}.advantages"], e.Advantages, atol: 2e-6f, rtol: 1e-5f, what: $"{name} advantages");
        var r = f.Floats[$"{name}.reward_stats"];
        Close(r[0], e.RewardStatistics.MeanReward, "reward");
        Close(r[1], e.RewardStatistics.RewardStd, "reward_std");
        Close(r[2], e.RewardStatistics.ZeroStdFraction, "frac_reward_zero_std");
        Close(r[3], e.RewardStatistics.Groups, "groups");

        using var policy = f.Model(backend, "policy_config", "policy");
        using var learner = new GrpoLearner(policy, options);
        policy.ZeroGradients();
        int[] rows = [.. Enumerable.Range(0, batch.Batch)];
        var stats = learner.AccumulateGradients(e, rows, 1f, e.Tokens(rows));
        var expected = f.Floats[$"{name}.stats"];
        float[] actual = [stats.Loss, stats.Kl, stats.Entropy, stats.ClipLowFraction, stats.ClipHighFraction, stats.ClipRegionFraction, stats.RatioMean, stats.TokenCount];
        string[] names = ["loss", "kl", "entropy", "clip_ratio/low_mean", "clip_ratio/high_mean", "clip_ratio/region_mean", "ratio", "tokens"];
        for (int i = 0; i < names.Length; i++)
        {
            Close(expected[i], actual[i], $"{name} {names[i]}");
        }

        Assert.True(stats.ClipLowFraction > 0f, "the fixture must clip some ratios");
        Objectives.ObjectiveParityTests.CheckGradients(f, policy, $"{name}.policy");
    }

    private static GrpoOptions Options(ObjectiveFixture f, JsonElement c)
    {
        using var settings = JsonDocument.Parse(f.Metadata["settings"]);
        var s = settings.RootElement;
        return new GrpoOptions
        {
            BatchSize = 3,
            NumGenerations = int.Parse(f.Metadata["num_generations"], CultureInfo.InvariantCulture),
            MaxLength = 16,
            MaxCompletionLength = s.GetProperty("max_completion_length").GetInt32(),
            Temperature = s.GetProperty("temperature").GetSingle(),
            Epsilon = s.GetProperty("epsilon").GetSingle(),
            EpsilonHigh = s.GetProperty("epsilon_high").GetSingle(),
            Beta = s.GetProperty("beta").GetSingle(),
            LossType = Enum.Parse<GrpoLossType>(c.GetProperty("loss_type").GetString()!.Replace("_", "", StringComparison.Ordinal), ignoreCase: true),
            ImportanceSamplingLevel = Enum.Parse<ImportanceSamplingLevel>(c.GetProperty("importance_sampling_level").GetString()!, ignoreCase: true),
            AdvantageEstimator = Enum.Parse<AdvantageEstimator>(c.GetProperty("advantage_estimator").GetString()!.Replace("_", "", StringComparison.Ordinal), ignoreCase: true),
            ScaleRewards = Enum.Parse<RewardScaling>(c.GetProperty("scale_rewards").GetString()!, ignoreCase: true),
            MaskTruncatedCompletions = c.GetProperty("mask_truncated_completions").GetBoolean(),
        };
    }

    private void Close(double expected, double actual, string what, double relative = 5e-6)
    {
        output.WriteLine($"{what}: {actual:R} vs PyTorch {expected:R}");
        Assert.True(Math.Abs(actual - expected) <= relative * Math.Max(1, Math.Abs(expected)), $"{what}: {actual:R}, expected {expected:R}");
    }

    /// <summary>The groups rebuilt from their prompts and completions and packed as the trainer packs (EOS padding).</summary>
    private static RolloutBatch Batch(ObjectiveFixture f)
    {
        var tokens = f.Ints["rollout.tokens"];
        var prompts = f.Ints["rollout.prompt_lengths"];
        var responses = f.Ints["rollout.response_lengths"];
        var ended = f.Ints["rollout.ended"];
        int time = (int)f.Shapes["rollout.tokens"][1], eos = int.Parse(f.Metadata["eos"], CultureInfo.InvariantCulture);
        var rollouts = Enumerable.Range(0, prompts.Length).Select(b => new Rollout(
            tokens[(b * time)..((b * time) + prompts[b])],
            tokens[((b * time) + prompts[b])..((b * time) + prompts[b] + responses[b])],
            ended[b] != 0)).ToList();
        return RolloutBatch.Pack(rollouts, eos);
    }
}
