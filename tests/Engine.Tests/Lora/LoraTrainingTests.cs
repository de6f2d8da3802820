using Engine.Core.Backends;
using Engine.Core.Cpu;
using Engine.Models;
using Engine.Models.Lora;
using Engine.Tests.Objectives;
using Engine.Tests.Support;
using Engine.Training.Data;
using Engine.Training.Objectives;
using Engine.Training.Objectives.Preference;
using Xunit;

namespace Engine.Tests.Lora;

/// <summary>LoRA under the preference objective: the policy's base with adapters off is the reference.</summary>
[Trait("Category", "Training")]
public sealed class LoraTrainingTests : IDisposable
{
    private readonly CpuBackend backend = new(2);

    public void Dispose() => backend.Dispose();

    private Transformer Model(bool trainable)
    {
        var model = new Transformer(SyntheticPreferences.Gpt2Config, backend, trainable);
        model.InitializeWeights(21);
        return model;
    }

    [Fact]
    public void Dpo_with_lora_gives_the_loss_of_dpo_with_a_separate_frozen_reference_at_step_0()
    {
        var batch = SyntheticPreferences.Batches(SyntheticPreferences.Examples(5, 4), 4).Single();
        using var fullPolicy = Model(trainable: true);
        using var frozenCopy = Model(trainable: false);
        using var separate = new DpoObjective(fullPolicy, frozenCopy, new DpoOptions { Beta = 0.1f });
        fullPolicy.ZeroGradients();
        var expected = separate.Step(batch, 1f);

        using var policy = Model(trainable: false);
        policy.AddLora(new LoraConfig(Rank: 4, Alpha: 8, Dropout: 0), seed: 5);
        using var shared = new DpoObjective(policy, policy, new DpoOptions { Beta = 0.1f });
        policy.ZeroGradients();
        var actual = shared.Step(batch, 1f);
        Assert.Equal(expected.Loss, actual.Loss);
        Assert.Equal(expected.Metrics["logps/chosen"], actual.Metrics["logps/chosen"]);
        Assert.Equal(expected.Metrics["logps/rejected"], actual.Metrics["logps/rejected"]);
    }

    [Fact]
    public void The_preference_family_and_kto_with_lora_give_the_losses_of_a_separate_frozen_reference_at_step_0()
    {
        // A weighted list of reference-based losses (every term reads π_ref) and KTO: with B = 0 the LoRA policy is its
        // base, so the policy-as-its-own-reference run must equal the run against a separate frozen copy.
        var pairs = SyntheticPreferences.Examples(7, 4).OfType<PreferenceExample>().ToList();
        var batch = SyntheticPreferences.Batches(pairs, 4).Single();
        var list = new PreferenceOptions { Beta = 0.1f, Losses = [new(PreferenceLossType.Sigmoid, 0.8f), new(PreferenceLossType.ApoZero, 0.5f), new(PreferenceLossType.Sft, 1f)] };
        var unpaired = pairs.SelectMany(p => new[]
        {
            new UnpairedPreferenceExample(p.Prompt, p.Chosen, true) { Source = "synthetic", Line = p.Line },
            new UnpairedPreferenceExample(p.Prompt, p.Rejected, false) { Source = "synthetic", Line = p.Line },
        }).ToList();
        var ktoBatch = new KtoBatches(SyntheticPreferences.Collator, unpaired, unpaired.Count).All().Single();
        var kto = new PreferenceOptions { Beta = 0.1f, Losses = [new(PreferenceLossType.Kto)] };

        using var fullPolicy = Model(trainable: true);
        using var frozenCopy = Model(trainable: false);
        using var policy = Model(trainable: false);
        policy.AddLora(new LoraConfig(Rank: 4, Alpha: 8, Dropout: 0), seed: 5);
        using var listSeparate = new PreferenceObjective(fullPolicy, frozenCopy, list);
        using var listShared = new PreferenceObjective(policy, policy, list);
        AssertSameStep(listSeparate, listShared, batch);

        using var ktoSeparate = new KtoObjective(fullPolicy, frozenCopy, kto);
        using var ktoShared = new KtoObjective(policy, policy, kto);
        AssertSameStep(ktoSeparate, ktoShared, ktoBatch);

        void AssertSameStep<TBatch>(ITrainingObjective<TBatch> separate, ITrainingObjective<TBatch> shared, TBatch input)
        {
            fullPolicy.ZeroGradients();
            policy.ZeroGradients();
            var expected = separate.Step(input, 1f);
            var actual = shared.Step(input, 1f);
            Assert.Equal(expected.Loss, actual.Loss);
            Assert.Equal(expected.Metrics.OrderBy(m => m.Key), actual.Metrics.OrderBy(m => m.Key));
        }
    }

    [Fact]
    public void Dpo_against_the_base_matches_the_merged_policy_and_its_adapter_gradients()
    {
        // Nonzero B: the policy differs from its base. DPO(LoRA policy, its base) must equal DPO(merged policy, a frozen
        // base copy), and dB = s·dW[block]·Aᵀ from the merged model's weight gradient, so the reference pass run between
        // the policy's forward and backward left the policy's activations and dropout state intact.
        var batch = SyntheticPreferences.Batches(SyntheticPreferences.Examples(6, 4), 4).Single();
        using var policy = Model(trainable: false);
        var lora = policy.AddLora(new LoraConfig(Rank: 2, Alpha: 4, Dropout: 0, Targets: ["c_attn"]), seed: 9);
        var rng = new Random(3);
        foreach (var site in lora.Sites)
        {
            lora.Write(site.BName, [.. Enumerable.Range(0, site.OutFeatures * 2).Select(_ => (float)(rng.NextDouble() - 0.5) * 0.2f)]);
        }

        using var merged = Model(trainable: true);
        using var mergedFrom = Model(trainable: false);
        mergedFrom.AddLora(lora.Config, seed: 9);
        foreach (var p in lora.Parameters.Parameters)
        {
            mergedFrom.Lora!.Write(p.Name, lora.Read(p.Name));
        }

        mergedFrom.MergeLora();
        merged.Backend.Copy(merged.Parameters.Values, mergedFrom.Parameters.Values);
        using var frozenBase = Model(trainable: false);
        using var reference = new DpoObjective(merged, frozenBase, new DpoOptions { Beta = 0.1f });

        // Residual dropout on: the reference pass between forward and backward must not change the policy's masks.
        foreach (var m in new[] { merged, policy })
        {
            m.ResidualDropout = 0.1f;
            m.DropoutSeed = 77;
        }

        merged.ZeroGradients();
        var expected = reference.Step(batch, 1f);

        using var shared = new DpoObjective(policy, policy, new DpoOptions { Beta = 0.1f });
        policy.ZeroGradients();
        var actual = shared.Step(batch, 1f);
        Assert.Equal(expected.Loss, actual.Loss, 1e-5);
        Assert.NotEqual(0.6931471805599453, actual.Loss, 1e-3);

        var site0 = lora.Sites[0];
        var dW = new float[site0.OutFeatures * site0.InFeatures];
        merged.Backend.CopyToHost<float>(merged.Parameters.Gradient(site0.EngineWeight), dW);
        var a = lora.Read(site0.AName);
        var expectedDb = new float[site0.OutFeatures * 2];
        for (int o = 0; o < site0.OutFeatures; o++)
        {
            for (int k = 0; k < 2; k++)
            {
                double sum = 0;
                for (int i = 0; i < site0.InFeatures; i++)
                {
                    sum += dW[(o * site0.InFeatures) + i] * (double)a[(k * site0.InFeatures) + i];
                }

                expectedDb[(o * 2) + k] = (float)(lora.Config.Scale * sum);
            }
        }

        Approx.RelativeNorm(expectedDb, lora.Read(site0.BName, gradient: true), 1e-4, "dB from the merged model's dW");
    }
}
