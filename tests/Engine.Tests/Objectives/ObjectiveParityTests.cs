using Engine.Core.Backends;
using Engine.Core.Cpu;
using Engine.Models;
using Engine.Models.HuggingFace;
using Engine.Tests.Support;
using Engine.Training.Objectives;
using Xunit;
using Xunit.Abstractions;

namespace Engine.Tests.Objectives;

/// <summary>
/// One step of the DPO, reward-model and SFT objectives against float64 PyTorch (tests/fixtures/
/// generate_objective_fixtures.py): the loss, the logged metrics and the gradient of every parameter.
/// </summary>
[Trait("Category", "Parity")]
public class ObjectiveParityTests(ITestOutputHelper output)
{
    private static readonly string[] DpoMetricNames =
        ["loss", "rewards/chosen", "rewards/rejected", "rewards/accuracies", "rewards/margins", "logps/chosen", "logps/rejected"];

    public static TheoryData<string> DpoCases => new("sigmoid", "ipo", "hinge", "robust");

    public static TheoryData<string> RewardCases => new("pairwise", "kwise");

    [Theory]
    [MemberData(nameof(DpoCases))]
    public void Dpo_loss_metrics_and_every_gradient_match(string name)
    {
        using var backend = new CpuBackend(2);
        Dpo(name, backend, output);
    }

    internal static void Dpo(string name, Backend backend, ITestOutputHelper output)
    {
        var f = ObjectiveFixture.Instance;
        using var policy = f.Model(backend, "policy_config", "policy");
        using var reference = f.Model(backend, "policy_config", "reference", trainable: false);
        var options = DpoOptions(f, name);
        var batch = f.Batch(f.Cases.GetProperty("dpo").GetProperty(name).GetProperty("data").GetString()!, margins: false);
        using var objective = new DpoObjective(policy, reference, options);

        policy.ZeroGradients();
        var result = objective.Step(batch, 1f);
        CheckMetrics(output, f.Floats[$"dpo.{name}.metrics"], result, DpoMetricNames, $"dpo.{name}");
        CheckGradients(f, policy, $"dpo.{name}");

        var evaluated = objective.Evaluate(batch);
        CheckMetrics(output, f.Floats[$"dpo.{name}.metrics"], evaluated, DpoMetricNames, $"dpo.{name} evaluate");
    }

    [Fact]
    public void Dpo_with_cached_reference_log_probs_matches_the_frozen_model()
    {
        var f = ObjectiveFixture.Instance;
        using var backend = new CpuBackend(2);
        using var policy = f.Model(backend, "policy_config", "policy");
        var batch = f.Batch("mixed", margins: false);
        ReferenceLogProbCache cache;
        using (var reference = f.Model(backend, "policy_config", "reference", trainable: false))
        {
            cache = ReferenceLogProbCache.Compute(reference, [batch]);
        }

        using var objective = new DpoObjective(policy, cache, DpoOptions(f, "sigmoid"));
        policy.ZeroGradients();
        var result = objective.Step(batch, 1f);
        CheckMetrics(output, f.Floats["dpo.sigmoid.metrics"], result, DpoMetricNames, "dpo.sigmoid (cached reference)");
        CheckGradients(f, policy, "dpo.sigmoid");
    }

    [Theory]
    [MemberData(nameof(RewardCases))]
    public void Reward_model_loss_metrics_and_every_gradient_match(string name)
    {
        using var backend = new CpuBackend(2);
        RewardModel(name, backend, output);
    }

    internal static void RewardModel(string name, Backend backend, ITestOutputHelper output)
    {
        var f = ObjectiveFixture.Instance;
        using var model = f.Model(backend, "rm_config", "rm");
        Assert.True(model.HasScalarHead);
        var cfg = f.Cases.GetProperty("rm").GetProperty(name);
        var batch = f.Batch(cfg.GetProperty("data").GetString()!, margins: true);
        using var objective = new RewardModelObjective(
            model, new RewardModelOptions { CenterRewardsCoefficient = cfg.GetProperty("center_rewards_coefficient").GetSingle() });

        Approx.Equal(f.Floats[$"rm.{name}.rewards"], objective.Rewards(batch), atol: 2e-5f, rtol: 1e-4f, what: $"rm.{name} rewards");
        model.ZeroGradients();
        var result = objective.Step(batch, 1f);
        CheckMetrics(output, f.Floats[$"rm.{name}.metrics"], result, DpoMetricNames[..5], $"rm.{name}");
        CheckGradients(f, model, $"rm.{name}");

        var bias = new float[1];
        backend.CopyToHost<float>(model.Parameters.Gradient(Names.ScoreBias), bias);
        float expected = f.Floats[$"rm.{name}.grad.score.bias"][0];
        output.WriteLine($"score.bias grad {bias[0]:R} vs PyTorch {expected:R}");
        Assert.InRange(Math.Abs(bias[0] - expected), 0, 2e-6 + (1e-4 * Math.Abs(expected)));
    }

    [Fact]
    public void Sft_loss_on_completion_tokens_and_every_gradient_match()
    {
        var f = ObjectiveFixture.Instance;
        using var backend = new CpuBackend(2);
        using var policy = f.Model(backend, "policy_config", "policy");
        var rows = f.Sequences("pairs");
        policy.ZeroGradients();
        double loss = policy.ForwardBackward(rows.Tokens, rows.Targets, rows.Batch, rows.Time);
        output.WriteLine($"sft loss {loss:R} vs PyTorch {f.Floats["sft.loss"][0]:R}");
        Assert.InRange(Math.Abs(loss - f.Floats["sft.loss"][0]), 0, 2e-6);
        CheckGradients(f, policy, "sft");
    }

    internal static DpoOptions DpoOptions(ObjectiveFixture f, string name)
    {
        var cfg = f.Cases.GetProperty("dpo").GetProperty(name);
        return new DpoOptions
        {
            Loss = cfg.GetProperty("loss").GetString() switch
            {
                "sigmoid" => PairwiseLossType.Sigmoid,
                "ipo" => PairwiseLossType.Ipo,
                "hinge" => PairwiseLossType.Hinge,
                "robust" => PairwiseLossType.Robust,
                var other => throw new InvalidOperationException($"unknown loss {other}"),
            },
            Beta = cfg.GetProperty("beta").GetSingle(),
            LabelSmoothing = cfg.GetProperty("label_smoothing").GetSingle(),
        };
    }

    private static void CheckMetrics(ITestOutputHelper output, float[] expected, ObjectiveResult result, string[] names, string what)
    {
        Assert.Equal(expected[0], result.Loss, 1e-5 * Math.Max(1, Math.Abs(expected[0])));
        for (int i = 0; i < names.Length; i++)
        {
            double actual = result.Metrics[names[i]];
            output.WriteLine($"{what} {names[i]}: {actual:R} vs PyTorch {expected[i]:R}");
            double tolerance = 5e-6 * Math.Max(1, Math.Abs(expected[i]));
            Assert.True(Math.Abs(actual - expected[i]) <= tolerance, $"{what} {names[i]}: {actual:R}, expected {expected[i]:R}");
        }
    }

    internal static void CheckGradients(ObjectiveFixture f, Transformer model, string prefix)
    {
        foreach (var map in HfWeightMap.For(model.Config))
        {
            var expected = f.Floats[$"{prefix}.grad.{map.HfName}"];
            var actual = model.ReadHuggingFaceTensor(map.HfName, gradient: true);
            Approx.RelativeNorm(expected, actual, 1e-5, $"{prefix} grad {map.HfName}");
            float scale = expected.Max(Math.Abs);
            Approx.Equal(expected, actual, atol: 1e-5f * Math.Max(scale, 1e-3f), rtol: 1e-3f, what: $"{prefix} grad {map.HfName}");
        }
    }
}
