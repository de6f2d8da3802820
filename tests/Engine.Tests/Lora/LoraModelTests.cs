using Engine.Core;
using Engine.Core.Cpu;
using Engine.Models;
using Engine.Models.HuggingFace;
using Engine.Models.Lora;
using Engine.Tests.Support;
using Xunit;

namespace Engine.Tests.Lora;

/// <summary>What LoRA adapters do to a model beyond the PyTorch fixture: identity at initialisation, disabling, the frozen base, dropout, settings.</summary>
[Trait("Category", "Models")]
public sealed class LoraModelTests : IDisposable
{
    private readonly CpuBackend backend = new(2);

    public void Dispose() => backend.Dispose();

    private static float[] Logits(Transformer model, ModelFixture f)
    {
        int b = (int)f.Shapes["input_ids"][0], t = (int)f.Shapes["input_ids"][1];
        var logits = new float[f.Floats["logits"].Length];
        model.ForwardLogits(f.Ints["input_ids"], b, t, logits);
        return logits;
    }

    private Transformer Base(ModelFixture f)
    {
        var model = new Transformer(HfConfig.Parse(f.ConfigJson, f.Name), backend, trainable: false);
        model.LoadHuggingFaceWeights((hfName, _) => f.Floats.GetValueOrDefault(hfName));
        return model;
    }

    [Theory]
    [InlineData("lora_gpt2")]
    [InlineData("lora_llama")]
    public void Fresh_adapters_leave_the_model_unchanged_and_disabling_them_gives_the_base(string name)
    {
        var f = ModelFixture.Load(name);
        using var plain = Base(f);
        var baseLogits = Logits(plain, f);

        using var model = Base(f);
        var lora = model.AddLora(new LoraConfig(Rank: 4, Alpha: 8, Dropout: 0), seed: 7);
        Assert.Equal(LoraSite.All(model.Config).Count, lora.Sites.Count);
        Approx.BitEqual(baseLogits, Logits(model, f), "B = 0: adapted logits");
        Assert.All(lora.Sites, s => Assert.InRange(lora.Read(s.AName).Max(Math.Abs), 1e-3f, (float)(1 / Math.Sqrt(s.InFeatures))));

        using var trained = LoraParityTests.Load(f, backend);
        var adapted = Logits(trained, f);
        Assert.True(RelativeError(baseLogits, adapted) > 1e-3, "nonzero B must change the logits");
        using (trained.AdaptersDisabled())
        {
            Approx.BitEqual(baseLogits, Logits(trained, f), "adapters disabled");
        }

        Approx.BitEqual(adapted, Logits(trained, f), "adapters enabled again");
    }

    private static double RelativeError(float[] expected, float[] actual)
    {
        double diff = 0, norm = 0;
        for (int i = 0; i < expected.Length; i++)
        {
            diff += (expected[i] - (double)actual[i]) * (expected[i] - (double)actual[i]);
            norm += expected[i] * (double)expected[i];
        }

        return Math.Sqrt(diff / norm);
    }

    [Fact]
    public void The_base_is_frozen_only_adapters_have_gradients_and_moments()
    {
        var f = ModelFixture.Load("lora_llama");
        using var model = LoraParityTests.Load(f, backend);
        Assert.False(model.Parameters.Trainable);
        Assert.True(model.IsTrainable);
        Assert.Same(model.Lora!.Parameters, model.TrainableParameters);
        long expected = model.Lora.Sites.Sum(s => (long)4 * (s.InFeatures + s.OutFeatures));
        Assert.Equal(expected, model.TrainableParameters.ElementCount);
        Assert.Throws<InvalidOperationException>(() => model.Parameters.Gradients);
        Assert.True(model.HeadGradient.IsEmpty);

        using var full = new Transformer(model.Config, backend, trainable: true);
        Assert.Contains("frozen base", Assert.Throws<InvalidOperationException>(() => full.AddLora(new LoraConfig(), 1)).Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Adapter_dropout_is_training_only_and_its_gradient_matches_finite_differences()
    {
        var f = ModelFixture.Load("lora_gpt2");
        using var model = Base(f);
        var lora = model.AddLora(new LoraConfig(Rank: 4, Alpha: 8, Dropout: 0.3, Targets: ["c_attn", "c_fc"]), seed: 3);
        foreach (var site in lora.Sites)
        {
            lora.Write(site.AName, f.Floats[site.AName]);
            lora.Write(site.BName, f.Floats[site.BName]);
        }

        int b = (int)f.Shapes["input_ids"][0], t = (int)f.Shapes["input_ids"][1];
        var ids = f.Ints["input_ids"];
        var targets = f.Ints["targets"];
        model.DropoutSeed = 11;
        model.ZeroGradients();
        double loss = model.ForwardBackward(ids, targets, b, t);
        var site0 = lora.Sites[0];
        var gradA = lora.Read(site0.AName, gradient: true);
        model.ZeroGradients();
        Assert.Equal(loss, model.ForwardBackward(ids, targets, b, t));
        Approx.BitEqual(gradA, lora.Read(site0.AName, gradient: true), "same seed, same masks");

        var inference = Logits(model, f);

        // Central differences of the training loss (same dropout seed) against the analytic gradient of A's largest entries.
        var a = lora.Read(site0.AName);
        foreach (int i in Enumerable.Range(0, a.Length).OrderByDescending(i => Math.Abs(gradA[i])).Take(3))
        {
            const float Eps = 1e-2f;
            double Loss(float delta)
            {
                var copy = (float[])a.Clone();
                copy[i] += delta;
                lora.Write(site0.AName, copy);
                return model.ForwardBackward(ids, targets, b, t);
            }

            double numeric = (Loss(Eps) - Loss(-Eps)) / (2 * Eps);
            Assert.InRange(numeric, gradA[i] - (0.02 * Math.Abs(gradA[i])) - 1e-4, gradA[i] + (0.02 * Math.Abs(gradA[i])) + 1e-4);
        }

        lora.Write(site0.AName, a);
        model.DropoutSeed = 12;
        model.ZeroGradients();
        Assert.NotEqual(loss, model.ForwardBackward(ids, targets, b, t));
        using var noDropout = Base(f);
        var same = noDropout.AddLora(new LoraConfig(Rank: 4, Alpha: 8, Dropout: 0, Targets: ["c_attn", "c_fc"]), seed: 3);
        foreach (var site in same.Sites)
        {
            same.Write(site.AName, f.Floats[site.AName]);
            same.Write(site.BName, f.Floats[site.BName]);
        }

        Approx.BitEqual(Logits(noDropout, f), inference, "inference never drops");
    }

    [Fact]
    public void Settings_parse_from_the_command_line_form_and_bad_ones_name_the_flag()
    {
        var c = LoraConfig.Parse("r=8, alpha=16, dropout=0.1, targets=q_proj+v_proj, rslora=true");
        Assert.Equal(8, c.Rank);
        Assert.Equal(16, c.Alpha);
        Assert.Equal(0.1, c.Dropout);
        Assert.Equal(["q_proj", "v_proj"], c.TargetModules);
        Assert.Equal(16 / Math.Sqrt(8), c.Scale, 12);
        Assert.Equal(2.0, new LoraConfig(Rank: 16, Alpha: 32).Scale);
        Assert.Equal([LoraConfig.AllLinear], new LoraConfig().TargetModules);

        Assert.StartsWith("--lora: field 'rank'", Assert.Throws<InputException>(() => LoraConfig.Parse("rank=x")).Message, StringComparison.Ordinal);
        Assert.Contains("unknown key", Assert.Throws<InputException>(() => LoraConfig.Parse("depth=3")).Message, StringComparison.Ordinal);
        Assert.Contains("[0, 1)", Assert.Throws<InputException>(() => LoraConfig.Parse("dropout=1")).Message, StringComparison.Ordinal);
        var gpt2 = TransformerConfig.Gpt2(50, 16, layers: 1, channels: 16, heads: 2);
        var error = Assert.Throws<InputException>(() => LoraSite.Targeted(gpt2, LoraConfig.Parse("targets=q_proj"), "--lora"));
        Assert.Contains("'q_proj' is not a linear layer of this model (it has c_attn, c_proj, c_fc", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Llama_sites_split_the_fused_projections_as_peft_names_them()
    {
        var f = ModelFixture.Load("lora_llama");
        var sites = LoraSite.All(HfConfig.Parse(f.ConfigJson, f.Name));
        var layer0 = sites.Where(s => s.Layer == 0).ToDictionary(s => s.ShortName);
        Assert.Equal(["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"], sites.Where(s => s.Layer == 0).Select(s => s.ShortName));
        Assert.Equal((0, 48), (layer0["q_proj"].Column, layer0["q_proj"].OutFeatures));
        Assert.Equal((48, 16), (layer0["k_proj"].Column, layer0["k_proj"].OutFeatures));
        Assert.Equal((64, 16), (layer0["v_proj"].Column, layer0["v_proj"].OutFeatures));
        Assert.Equal((80, 80), (layer0["up_proj"].Column, layer0["up_proj"].OutFeatures));
        Assert.Equal("model.layers.0.self_attn.k_proj", layer0["k_proj"].Module);
        Assert.False(layer0["k_proj"].FanInFanOut);
    }
}
