using System.Diagnostics;
using Engine.Core.Backends;
using Engine.Core.Cpu;
using Engine.Models;
using Engine.Training.Data;
using Engine.Training.Objectives;
using Engine.Training.Objectives.Preference;
using Xunit;
using Xunit.Abstractions;

namespace Engine.Tests.Objectives.Preference;

/// <summary>
/// Each family learns the synthetic task (<see cref="SyntheticPreferences"/>, K = 3 rankings among the pairs): the
/// held-out accuracy of chosen over rejected rises — reference-free (SimPO, ORPO), a weighted reference-based list
/// (sigmoid + APO-zero + NCA + NLL), and unpaired KTO (judged on held-out pairs by its implicit reward).
/// </summary>
[Trait("Category", "Learning")]
public class PreferenceLearningTests(ITestOutputHelper output)
{
    private static readonly AdamWSettings Adam = new() { WeightDecay = 0f, MaxGradNorm = 1f };

    [Theory]
    [InlineData("simpo", 2f)]
    [InlineData("orpo", 0.5f)]
    [InlineData("sigmoid,apo_zero,nca_pair,sft", 0.1f)]
    public void Paired_families_raise_held_out_accuracy(string losses, float beta)
    {
        using var backend = new CpuBackend(2);
        using var policy = Policy(backend);
        var options = new PreferenceOptions
        {
            Losses = [.. losses.Split(',').Select(n => new PreferenceLossTerm(PreferenceOptions.Parse(n), n == "sft" ? 0.1f : 1f))],
            Beta = beta,
        };
        var train = SyntheticPreferences.Batches(SyntheticPreferences.Examples(41, 256, rankingEvery: 4), 16);
        var heldOut = SyntheticPreferences.Batches(SyntheticPreferences.Examples(42, 128), 64);
        var cache = options.ReferenceFree ? null : Reference(backend, [.. train, .. heldOut]);
        using var objective = new PreferenceObjective(policy, cache, options);

        double before = Accuracy(objective, heldOut);
        var clock = Stopwatch.StartNew();
        int step = Train(policy, objective, train);
        double after = Accuracy(objective, heldOut);
        output.WriteLine($"{losses}: held-out accuracy {before:F3} → {after:F3} after {step} steps ({clock.Elapsed.TotalSeconds:F1} s)");
        Assert.True(after >= 0.85 && after > before + 0.2, $"{losses}: held-out accuracy {before:F3} → {after:F3}");
    }

    [Fact]
    public void Kto_on_unpaired_labels_raises_held_out_accuracy()
    {
        using var backend = new CpuBackend(2);
        using var policy = Policy(backend);
        var pairs = SyntheticPreferences.Examples(51, 256).Cast<PreferenceExample>().ToList();
        var unpaired = pairs.SelectMany(p => new[]
        {
            new UnpairedPreferenceExample(p.Prompt, p.Chosen, true) { Source = "synthetic", Line = p.Line },
            new UnpairedPreferenceExample(p.Prompt, p.Rejected, false) { Source = "synthetic", Line = p.Line },
        }).OrderBy(e => e.Completion.Text!.GetHashCode(StringComparison.Ordinal)).ToList();
        var train = new KtoBatches(SyntheticPreferences.Collator, unpaired, 16).All();
        var heldOut = SyntheticPreferences.Batches(SyntheticPreferences.Examples(52, 128), 64);
        var cache = Reference(backend, [.. train.Select(b => b.Rows), .. heldOut]);
        using var kto = new KtoObjective(policy, cache, new PreferenceOptions { Losses = [new(PreferenceLossType.Kto)], Beta = 0.1f });
        using var judge = new PreferenceObjective(policy, cache, new PreferenceOptions { Beta = 0.1f });

        double before = Accuracy(judge, heldOut);
        int step = Train(policy, kto, train);
        double after = Accuracy(judge, heldOut);
        output.WriteLine($"kto: held-out accuracy {before:F3} → {after:F3} after {step} steps");
        Assert.True(after >= 0.85, $"kto: held-out accuracy {before:F3} → {after:F3}");
    }

    // Two epochs of the minimal loop the shared trainer wraps: zero gradients → Step → AdamW. Returns the steps taken.
    private static int Train<TBatch>(Transformer policy, ITrainingObjective<TBatch> objective, IReadOnlyList<TBatch> batches)
    {
        int step = 0;
        for (int epoch = 0; epoch < 2; epoch++)
        {
            foreach (var batch in batches)
            {
                policy.ZeroGradients();
                objective.Step(batch, 1f);
                policy.OptimizerStep(3e-3f, ++step, Adam);
            }
        }

        return step;
    }

    private static Transformer Policy(Backend backend)
    {
        var policy = new Transformer(SyntheticPreferences.Gpt2Config, backend);
        policy.InitializeWeights(21);
        return policy;
    }

    // The starting policy's log-probs of every row, computed once (the reference of the reference-based losses).
    private static ReferenceLogProbCache Reference(Backend backend, IReadOnlyList<PreferenceBatch> batches)
    {
        using var reference = new Transformer(SyntheticPreferences.Gpt2Config, backend, trainable: false);
        reference.InitializeWeights(21);
        return ReferenceLogProbCache.Compute(reference, batches);
    }

    private static double Accuracy(PreferenceObjective objective, List<PreferenceBatch> batches)
    {
        double sum = 0, weight = 0;
        foreach (var batch in batches)
        {
            var result = objective.Evaluate(batch);
            sum += result.Metrics["rewards/accuracies"] * result.Weight;
            weight += result.Weight;
        }

        return sum / weight;
    }
}
