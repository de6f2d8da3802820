using Engine.Core.Backends;
using Engine.Core.Cpu;
using Engine.Models;
using Engine.Models.HuggingFace;
using Engine.Training.Data;
using Engine.Training.Objectives;
using Xunit;

namespace Engine.Tests.Objectives;

/// <summary>What the DPO and reward-model objectives do beyond the fixture: identities, scaling, calibration and errors.</summary>
[Trait("Category", "Training")]
public sealed class ObjectiveBehaviourTests : IDisposable
{
    private readonly CpuBackend backend = new(2);

    public void Dispose() => backend.Dispose();

    private Transformer Model(ulong seed, HeadKind head = HeadKind.LanguageModel, bool trainable = true)
    {
        var model = new Transformer(SyntheticPreferences.Gpt2Config with { Head = head }, backend, trainable);
        model.InitializeWeights(seed);
        return model;
    }

    private static float[] Gradients(Transformer model)
    {
        var g = new float[model.Parameters.ElementCount];
        model.Backend.CopyToHost<float>(model.Parameters.Gradients, g);
        return g;
    }

    [Theory]
    [InlineData(PairwiseLossType.Sigmoid, 0.6931471805599453)]
    [InlineData(PairwiseLossType.Hinge, 1.0)]
    [InlineData(PairwiseLossType.Ipo, 25.0)]
    public void A_policy_equal_to_its_reference_has_zero_rewards_and_the_loss_at_zero(PairwiseLossType loss, double expected)
    {
        using var policy = Model(1);
        using var reference = Model(1, trainable: false);
        var batch = SyntheticPreferences.Batches(SyntheticPreferences.Examples(3, 6, rankingEvery: 2), 6).Single();
        using var objective = new DpoObjective(policy, reference, new DpoOptions { Loss = loss, Beta = 0.1f });
        policy.ZeroGradients();
        var result = objective.Step(batch, 1f);
        Assert.Equal(expected, result.Loss, 1e-5);
        Assert.Equal(0.0, result.Metrics["rewards/chosen"], 1e-6);
        Assert.Equal(0.0, result.Metrics["rewards/margins"], 1e-6);
        Assert.Equal(0.0, result.Metrics["rewards/accuracies"]);
        Assert.True(result.Metrics["logps/chosen"] < 0);
        Assert.Equal(batch.Groups, result.Weight, 1e-5);
        Assert.Contains(Gradients(policy), g => g != 0);
    }

    [Fact]
    public void The_loss_scale_scales_every_gradient_and_gradients_accumulate()
    {
        using var policy = Model(2);
        using var reference = Model(3, trainable: false);
        var batch = SyntheticPreferences.Batches(SyntheticPreferences.Examples(4, 4), 4).Single();
        using var objective = new DpoObjective(policy, reference);
        policy.ZeroGradients();
        objective.Step(batch, 1f);
        var full = Gradients(policy);
        policy.ZeroGradients();
        objective.Step(batch, 0.5f);
        objective.Step(batch, 0.5f);
        var twoHalves = Gradients(policy);
        Tests.Support.Approx.Equal(full, twoHalves, atol: 1e-7f, rtol: 1e-5f, what: "two half-scaled steps");
    }

    [Fact]
    public void Evaluate_leaves_gradients_untouched()
    {
        using var model = Model(5, HeadKind.Scalar);
        var batch = SyntheticPreferences.Batches(SyntheticPreferences.Examples(4, 4), 4).Single();
        using var objective = new RewardModelObjective(model);
        model.ZeroGradients();
        var evaluated = objective.Evaluate(batch);
        Assert.All(Gradients(model), g => Assert.Equal(0f, g));
        var stepped = objective.Step(batch, 1f);
        Assert.Equal(evaluated.Loss, stepped.Loss, 1e-6);
    }

    [Fact]
    public void Margins_are_subtracted_unless_turned_off()
    {
        using var model = Model(6, HeadKind.Scalar);
        var examples = SyntheticPreferences.Examples(7, 4).Cast<PreferenceExample>().Select(p => p with { Margin = 2.0 }).ToList();
        var batch = SyntheticPreferences.Batches(examples, 4).Single();
        var plain = SyntheticPreferences.Batches(SyntheticPreferences.Examples(7, 4), 4).Single();
        using var with = new RewardModelObjective(model);
        using var without = new RewardModelObjective(model, new RewardModelOptions { UseMargins = false });
        Assert.Equal(without.Evaluate(plain).Loss, without.Evaluate(batch).Loss, 1e-6);
        Assert.True(with.Evaluate(batch).Loss > without.Evaluate(batch).Loss + 0.5);
        Assert.Equal(with.Evaluate(batch).Metrics["rewards/accuracies"], without.Evaluate(batch).Metrics["rewards/accuracies"]);
    }

    [Fact]
    public void Calibration_centres_the_demonstrations_and_is_saved_with_the_model()
    {
        using var model = Model(8, HeadKind.Scalar);
        var demonstrations = SyntheticPreferences.Examples(9, 10)
            .Cast<PreferenceExample>()
            .Select(p => (Example)new PromptCompletionExample(p.Prompt, p.Chosen))
            .ToList();
        var batches = SyntheticPreferences.Collator.Batches(demonstrations, 4).ToList();
        using var objective = new RewardModelObjective(model);

        var stats = objective.Calibrate(batches);
        Assert.Equal(10, stats.Count);
        Assert.InRange(stats.Mean, -1e-6, 1e-6);
        Assert.True(stats.Std > 0);
        Assert.Same(stats, model.RewardStatistics);

        // Scored again with the shifted bias, the demonstrations average 0 and keep their spread.
        var scores = new List<double>();
        foreach (var b in batches)
        {
            var positions = Enumerable.Range(0, b.Batch).Select(r => Enumerable.Range(0, b.Time).Last(t => b.Targets[(r * b.Time) + t] >= 0) + 1).ToArray();
            scores.AddRange(model.Score(b.Tokens, b.Batch, b.Time, positions).Select(x => (double)x));
        }

        Assert.InRange(scores.Average(), -1e-5, 1e-5);
        double std = Math.Sqrt(scores.Sum(x => x * x) / scores.Count);
        Assert.Equal(stats.Std, std, 1e-4);

        string dir = Directory.CreateTempSubdirectory("engine-calibrated-").FullName;
        try
        {
            HfCheckpoint.Save(model, dir);
            using var loaded = HfCheckpoint.Load(dir, backend);
            Assert.Equal(model.ScoreBias, loaded.ScoreBias);
            Assert.Equal(stats, loaded.RewardStatistics);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void Calibration_refuses_packed_rows_and_empty_input()
    {
        using var model = Model(8, HeadKind.Scalar);
        using var objective = new RewardModelObjective(model);
        var packer = new SequenceCollator(
            new FuncTextEncoder(t => [.. t.Select(c => c - 'a' + 2)], eosTokenId: 1),
            new CollatorOptions { MaxLength = 24, Packing = true });
        var packed = packer.Batches([new PromptCompletionExample(TextOrChat.FromText("ab"), TextOrChat.FromText("gh")), new PromptCompletionExample(TextOrChat.FromText("cd"), TextOrChat.FromText("ij"))], 1).ToList();
        Assert.Contains("without packing", Assert.Throws<ArgumentException>(() => objective.Calibrate(packed)).Message, StringComparison.Ordinal);
        Assert.Throws<ArgumentException>(() => objective.Calibrate([]));
    }

    [Fact]
    public void Objectives_refuse_the_wrong_head_and_bad_settings()
    {
        using var lm = Model(1);
        using var rm = Model(1, HeadKind.Scalar);
        using var reference = Model(1, trainable: false);
        Assert.Contains("scalar head", Assert.Throws<ArgumentException>(() => new RewardModelObjective(lm)).Message, StringComparison.Ordinal);
        Assert.Contains("scalar head", Assert.Throws<ArgumentException>(() => new DpoObjective(rm, reference)).Message, StringComparison.Ordinal);
        Assert.Throws<ArgumentException>(() => new DpoObjective(lm, rm));
        Assert.Contains("separate", Assert.Throws<ArgumentException>(() => new DpoObjective(lm, lm)).Message, StringComparison.Ordinal);
        using var otherVocab = new Transformer(SyntheticPreferences.Gpt2Config with { VocabSize = 40 }, backend, trainable: false);
        Assert.Contains("vocabulary", Assert.Throws<ArgumentException>(() => new DpoObjective(lm, otherVocab)).Message, StringComparison.Ordinal);
        Assert.Throws<ArgumentException>(() => new DpoObjective(lm, reference, new DpoOptions { Beta = 0f }));
        Assert.Throws<ArgumentException>(() => new DpoObjective(lm, reference, new DpoOptions { Loss = PairwiseLossType.Hinge, LabelSmoothing = 0.1f }));
        Assert.Throws<ArgumentException>(() => new DpoObjective(lm, reference, new DpoOptions { Loss = PairwiseLossType.Robust, LabelSmoothing = 0.5f }));
        Assert.Throws<ArgumentOutOfRangeException>(() => new RewardModelObjective(rm, new RewardModelOptions { CenterRewardsCoefficient = -1f }));
    }
}
