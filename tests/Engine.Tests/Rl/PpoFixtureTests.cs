using System.Text.Json;
using Engine.Core.Cpu;
using Engine.Models;
using Engine.Models.HuggingFace;
using Engine.Tests.Support;
using Engine.Training.Data;
using Engine.Training.Rl.Ppo;
using Engine.Training.Rl.Sampling;
using Xunit;
using Xunit.Abstractions;

namespace Engine.Tests.Rl;

/// <summary>
/// One PPO-ptx update against float64 PyTorch (tests/fixtures/ppo_generate_fixtures.py): from a fixed rollout, the KL,
/// rewards, advantages, returns and whitened advantages, every loss and statistic, every gradient of the actor and the
/// critic, the gradient norms and both models' parameters after one AdamW step.
/// </summary>
[Trait("Category", "Parity")]
public sealed class PpoFixtureTests(ITestOutputHelper output) : IDisposable
{
    private static readonly Lazy<ObjectiveFixture> Shared = new(() => ObjectiveFixture.Load("ppo_update"));
    private readonly CpuBackend backend = new(2);

    public static TheoryData<string> Cases => new("k1", "k3");

    public void Dispose() => backend.Dispose();

    [Theory]
    [MemberData(nameof(Cases))]
    public void One_update_matches_pytorch(string name)
    {
        var f = Shared.Value;
        var c = f.Cases.GetProperty(name);
        var options = Options(c);
        var batch = Batch(f);
        Assert.Equal(f.Ints["rollout.tokens"], batch.Tokens);
        Assert.Equal(f.Ints["rollout.targets"], batch.Targets);
        Assert.Equal(f.Floats["rollout.mask"], batch.Mask);
        Assert.Equal(f.Ints["rollout.ended"], batch.EndedWithEos);

        // Experience: KL, rewards, GAE, whitening.
        var e = PpoExperience.Build(
            backend, batch, f.Floats["rollout.old_logp"], f.Floats["rollout.ref_logp"], f.Floats["rollout.values"], f.Floats["rollout.scores"], options,
            c.GetProperty("kl_coef").GetSingle());
        Approx.Equal(f.Floats[$"{name}.kl"], e.Kl, atol: 1e-6f, rtol: 1e-5f, what: $"{name} kl");
        Approx.Equal(f.Floats[$"{name}.rewards"], e.Rewards, atol: 2e-6f, rtol: 1e-5f, what: $"{name} rewards");
        Approx.Equal(f.Floats[$"{name}.advantages_raw"], e.RawAdvantages, atol: 2e-6f, rtol: 1e-5f, what: $"{name} advantages");
        Approx.Equal(f.Floats[$"{name}.returns"], e.Returns, atol: 2e-6f, rtol: 1e-5f, what: $"{name} returns");
        Approx.Equal(f.Floats[$"{name}.advantages"], e.Advantages, atol: 2e-6f, rtol: 1e-5f, what: $"{name} whitened advantages");
        var rewardStats = f.Floats[$"{name}.reward_stats"];
        Close(rewardStats[0], e.RewardStatistics.MeanSequenceKl, "objective/kl");
        Close(rewardStats[1], e.RewardStatistics.MeanScore, "objective/scores");
        Close(rewardStats[2], e.RewardStatistics.MissingEosFraction, "missing-EOS fraction");
        Close(f.Floats[$"{name}.explained_variance"][0], e.ExplainedVariance, "val/explained_variance", 1e-5);

        // The update's losses, statistics and gradients (PPO-ptx included).
        using var actor = f.Model(backend, "actor_config", "actor");
        using var critic = f.Model(backend, "critic_config", "critic");
        using var learner = new PpoLearner(actor, critic, options);
        actor.ZeroGradients();
        critic.ZeroGradients();
        var stats = learner.AccumulateGradients(e, [0, 1, 2, 3], 1f);
        double ptx = learner.AccumulatePtxGradients(PtxBatch(f), options.PtxCoef);
        var expected = f.Floats[$"{name}.ppo_stats"];
        float[] actual = [stats.PolicyLoss, stats.ValueLoss, stats.ClipFraction, stats.ApproxKl, stats.Entropy, stats.ExplainedVariance, stats.ValueClipFraction, stats.RatioMean, stats.TokenCount];
        string[] names = ["loss/policy", "loss/value", "policy/clipfrac", "policy/approxkl", "policy/entropy", "explained variance", "val/clipfrac", "val/ratio", "tokens"];
        for (int i = 0; i < names.Length; i++)
        {
            Close(expected[i], actual[i], $"{name} {names[i]}");
        }

        Assert.True(stats.ClipFraction is > 0f and < 1f, "the fixture must clip some ratios and not others");
        Close(f.Floats[$"{name}.ptx_loss"][0], ptx, $"{name} loss/ptx");
        CheckGradients(f, actor, $"{name}.actor");
        CheckGradients(f, critic, $"{name}.critic");

        // One AdamW step of each model, with clipping, at its own learning rate.
        var norms = f.Floats[$"{name}.grad_norms"];
        Close(norms[0], actor.OptimizerStep((float)options.LearningRate, 1, options.Optimizer), $"{name} actor grad norm", 1e-5);
        Close(norms[1], critic.OptimizerStep((float)options.CriticLearningRate!.Value, 1, options.Optimizer), $"{name} critic grad norm", 1e-5);
        CheckParameters(f, actor, $"{name}.actor", (float)options.LearningRate);
        CheckParameters(f, critic, $"{name}.critic", (float)options.CriticLearningRate.Value);
    }

    [Fact]
    public void Micro_batches_weighted_by_their_tokens_give_the_gradient_of_the_whole_minibatch()
    {
        var f = Shared.Value;
        var c = f.Cases.GetProperty("k1");
        var options = Options(c);
        var e = PpoExperience.Build(
            backend, Batch(f), f.Floats["rollout.old_logp"], f.Floats["rollout.ref_logp"], f.Floats["rollout.values"], f.Floats["rollout.scores"], options,
            c.GetProperty("kl_coef").GetSingle());
        using var actor = f.Model(backend, "actor_config", "actor");
        using var critic = f.Model(backend, "critic_config", "critic");
        using var learner = new PpoLearner(actor, critic, options);
        actor.ZeroGradients();
        critic.ZeroGradients();
        int[][] micro = [[3, 0], [2, 1]];
        int total = e.Tokens([0, 1, 2, 3]);
        double policyLoss = 0;
        foreach (var rows in micro)
        {
            float scale = (float)e.Tokens(rows) / total;
            policyLoss += scale * learner.AccumulateGradients(e, rows, scale).PolicyLoss;
        }

        learner.AccumulatePtxGradients(PtxBatch(f), options.PtxCoef);
        Close(f.Floats["k1.ppo_stats"][0], policyLoss, "accumulated policy loss");
        CheckGradients(f, actor, "k1.actor");
        CheckGradients(f, critic, "k1.critic");
    }

    private static PpoOptions Options(JsonElement c) => new()
    {
        BatchSize = 4,
        MaxLength = 16,
        ResponseLength = 8,
        KlEstimator = c.GetProperty("kl_estimator").GetString() == "k3" ? KlEstimator.K3 : KlEstimator.K1,
        KlCoef = c.GetProperty("kl_coef").GetSingle(),
        Gamma = c.GetProperty("gamma").GetSingle(),
        Lam = c.GetProperty("lam").GetSingle(),
        WhitenRewards = c.GetProperty("whiten_rewards").GetBoolean(),
        MissingEosPenalty = c.GetProperty("missing_eos_penalty").ValueKind == JsonValueKind.Null ? null : c.GetProperty("missing_eos_penalty").GetSingle(),
        Temperature = c.GetProperty("temperature").GetSingle(),
        Cliprange = c.GetProperty("cliprange").GetSingle(),
        CliprangeValue = c.GetProperty("cliprange_value").GetSingle(),
        VfCoef = c.GetProperty("vf_coef").GetSingle(),
        PtxCoef = c.GetProperty("ptx_coef").GetSingle(),
        LearningRate = c.GetProperty("learning_rate").GetDouble(),
        CriticLearningRate = c.GetProperty("critic_learning_rate").GetDouble(),
        Optimizer = new AdamWSettings
        {
            Beta1 = c.GetProperty("beta1").GetSingle(),
            Beta2 = c.GetProperty("beta2").GetSingle(),
            Epsilon = c.GetProperty("eps").GetSingle(),
            WeightDecay = c.GetProperty("weight_decay").GetSingle(),
            MaxGradNorm = c.GetProperty("max_grad_norm").GetSingle(),
        },
    };

    private void Close(double expected, double actual, string what, double relative = 5e-6)
    {
        output.WriteLine($"{what}: {actual:R} vs PyTorch {expected:R}");
        Assert.True(Math.Abs(actual - expected) <= relative * Math.Max(1, Math.Abs(expected)), $"{what}: {actual:R}, expected {expected:R}");
    }

    private static void CheckGradients(ObjectiveFixture f, Transformer model, string prefix)
    {
        Objectives.ObjectiveParityTests.CheckGradients(f, model, prefix);
        if (model.HasScalarHead)
        {
            var bias = new float[1];
            model.Backend.CopyToHost<float>(model.Parameters.Gradient(Names.ScoreBias), bias);
            float expected = f.Floats[$"{prefix}.grad.score.bias"][0];
            Assert.InRange(Math.Abs(bias[0] - expected), 0, 2e-6 + (1e-4 * Math.Abs(expected)));
        }
    }

    private static void CheckParameters(ObjectiveFixture f, Transformer model, string prefix, float learningRate)
    {
        foreach (var map in HfWeightMap.For(model.Config))
        {
            var expected = f.Floats[$"{prefix}.after.{map.HfName}"];
            var actual = model.ReadHuggingFaceTensor(map.HfName);
            var grad = f.Floats[$"{prefix}.grad.{map.HfName}"];
            float floor = 1e-4f * grad.Max(Math.Abs);
            for (int i = 0; i < actual.Length; i++)
            {
                // AdamW's first step is g/(|g| + ε)·lr, nearly sign(g)·lr: an element whose gradient is at the rounding
                // floor (the key bias's is exactly 0, as softmax ignores a constant added to every key) may move by any
                // amount up to lr in float32 where float64 keeps it still. Only those are held to that bound.
                if (Math.Abs(grad[i]) < floor)
                {
                    Assert.InRange(actual[i] - expected[i], -learningRate * 1.01f, learningRate * 1.01f);
                    actual[i] = expected[i];
                }
            }

            Approx.Equal(expected, actual, atol: 2e-6f, rtol: 1e-5f, what: $"{prefix} {map.HfName} after AdamW");
        }

        if (model.HasScalarHead)
        {
            Assert.InRange(Math.Abs(model.ScoreBias - f.Floats[$"{prefix}.after.score.bias"][0]), 0, 2e-6);
        }
    }

    /// <summary>The rollout rebuilt from its prompts and responses and packed as the trainer packs (EOS padding).</summary>
    private static RolloutBatch Batch(ObjectiveFixture f)
    {
        var tokens = f.Ints["rollout.tokens"];
        var prompts = f.Ints["rollout.prompt_lengths"];
        var responses = f.Ints["rollout.response_lengths"];
        var ended = f.Ints["rollout.ended"];
        int time = (int)f.Shapes["rollout.tokens"][1], eos = int.Parse(f.Metadata["eos"], System.Globalization.CultureInfo.InvariantCulture);
        var rollouts = Enumerable.Range(0, prompts.Length).Select(b => new Rollout(
            tokens[(b * time)..((b * time) + prompts[b])],
            tokens[((b * time) + prompts[b])..((b * time) + prompts[b] + responses[b])],
            ended[b] != 0)).ToList();
        return RolloutBatch.Pack(rollouts, eos);
    }

    private static SequenceBatch PtxBatch(ObjectiveFixture f)
    {
        var shape = f.Shapes["ptx.tokens"];
        int rows = (int)shape[0], time = (int)shape[1];
        var targets = f.Ints["ptx.targets"];
        return new SequenceBatch(
            rows, time, f.Ints["ptx.tokens"], targets, [.. targets.Select(t => t >= 0 ? 1f : 0f)], new int[rows * time], new int[rows * time], [.. Enumerable.Repeat(time, rows)]);
    }
}
