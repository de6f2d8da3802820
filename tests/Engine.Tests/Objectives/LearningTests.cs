using System.Diagnostics;
using Engine.Core.Cpu;
using Engine.Models;
using Engine.Training.Objectives;
using Xunit;
using Xunit.Abstractions;

namespace Engine.Tests.Objectives;

/// <summary>
/// The objectives learn: tiny models (C = 32, L = 2, T ≤ 24) trained with a minimal loop (zero gradients → Step →
/// AdamW) on generated preferences, judged on held-out pairs. The shared trainer wraps the same three calls.
/// </summary>
[Trait("Category", "Learning")]
public class LearningTests(ITestOutputHelper output)
{
    private static readonly AdamWSettings Adam = new() { WeightDecay = 0f, MaxGradNorm = 1f };

    [Fact]
    public void Reward_model_ranks_held_out_pairs()
    {
        using var backend = new CpuBackend(2);
        using var model = new Transformer(SyntheticPreferences.Gpt2Config with { Head = HeadKind.Scalar }, backend);
        model.InitializeWeights(7);
        using var objective = new RewardModelObjective(model);
        var train = SyntheticPreferences.Batches(SyntheticPreferences.Examples(11, 480, rankingEvery: 4), 16);
        var heldOut = SyntheticPreferences.Batches(SyntheticPreferences.Examples(12, 128), 64);

        double before = Evaluate(objective, heldOut, "rewards/accuracies");
        var clock = Stopwatch.StartNew();
        int step = 0;
        for (int epoch = 0; epoch < 2; epoch++)
        {
            foreach (var batch in train)
            {
                model.ZeroGradients();
                var result = objective.Step(batch, 1f);
                model.OptimizerStep(2e-3f, ++step, Adam);
                if (step % 20 == 0)
                {
                    output.WriteLine($"step {step}: loss {result.Loss:F4}, accuracy {result.Metrics["rewards/accuracies"]:F3}");
                }
            }
        }

        double after = Evaluate(objective, heldOut, "rewards/accuracies");
        output.WriteLine($"held-out accuracy {before:F3} → {after:F3} after {step} steps ({clock.Elapsed.TotalSeconds:F1} s)");
        Assert.True(after >= 0.9, $"held-out pairwise accuracy {after:F3} < 0.9");
    }

    [Fact]
    public void Dpo_raises_the_held_out_margin_and_accuracy()
    {
        using var backend = new CpuBackend(2);
        using var policy = new Transformer(SyntheticPreferences.Gpt2Config, backend);
        policy.InitializeWeights(21);
        var train = SyntheticPreferences.Batches(SyntheticPreferences.Examples(31, 256), 16);
        var heldOut = SyntheticPreferences.Batches(SyntheticPreferences.Examples(32, 128), 64);

        // The reference is the starting policy, its log-probs computed once and the model freed: the cached path.
        ReferenceLogProbCache cache;
        using (var reference = new Transformer(SyntheticPreferences.Gpt2Config, backend, trainable: false))
        {
            reference.InitializeWeights(21);
            cache = ReferenceLogProbCache.Compute(reference, [.. train, .. heldOut]);
        }

        using var objective = new DpoObjective(policy, cache, new DpoOptions { Beta = 0.1f });
        double marginBefore = Evaluate(objective, heldOut, "rewards/margins");
        Assert.Equal(0.0, marginBefore, 1e-4);

        var clock = Stopwatch.StartNew();
        int step = 0;
        for (int epoch = 0; epoch < 2; epoch++)
        {
            foreach (var batch in train)
            {
                policy.ZeroGradients();
                var result = objective.Step(batch, 1f);
                policy.OptimizerStep(3e-3f, ++step, Adam);
                if (step % 8 == 0)
                {
                    output.WriteLine($"step {step}: loss {result.Loss:F4}, margin {result.Metrics["rewards/margins"]:F3}");
                }
            }
        }

        double margin = Evaluate(objective, heldOut, "rewards/margins");
        double accuracy = Evaluate(objective, heldOut, "rewards/accuracies");
        output.WriteLine($"held-out margin {marginBefore:F4} → {margin:F4}, accuracy {accuracy:F3} after {step} steps ({clock.Elapsed.TotalSeconds:F1} s)");
        Assert.True(margin > 0.5, $"held-out implicit-reward margin {margin:F4} did not grow past 0.5");
        Assert.True(accuracy >= 0.9, $"held-out accuracy {accuracy:F3} < 0.9");
    }

    private static double Evaluate(ITrainingObjective<PreferenceBatch> objective, List<PreferenceBatch> batches, string metric)
    {
        double sum = 0, weight = 0;
        foreach (var batch in batches)
        {
            var result = objective.Evaluate(batch);
            sum += result.Metrics[metric] * result.Weight;
            weight += result.Weight;
        }

        return sum / weight;
    }
}
