using System.Text.Json;
using Engine.Core.Backends;
using Engine.Core.Cpu;
using Engine.Models;
using Engine.Models.HuggingFace;
using Engine.Models.Lora;
using Engine.Tests.Support;
using Xunit;
using Xunit.Abstractions;

namespace Engine.Tests.Lora;

/// <summary>
/// LoRA against float64 PyTorch references with PEFT's formula written out (tests/fixtures/generate_lora_fixtures.py):
/// GPT-2 (Conv1D c_attn/c_proj/c_fc) and Qwen2-style Llama (q/k/v/o/gate/up/down, rsLoRA) with adapters on every target.
/// </summary>
[Trait("Category", "Parity")]
public class LoraParityTests(ITestOutputHelper output)
{
    public static TheoryData<string> Fixtures => new(["lora_gpt2", "lora_llama"]);

    [Theory]
    [MemberData(nameof(Fixtures))]
    public void Logits_loss_and_the_gradient_of_every_A_and_B_match(string name)
    {
        using var backend = new CpuBackend(2);
        LogitsLossAndGradients(name, backend, output);
    }

    [Theory]
    [MemberData(nameof(Fixtures))]
    public void Ten_AdamW_steps_match_and_the_base_stays_bit_identical(string name)
    {
        using var backend = new CpuBackend(2);
        TenAdamWSteps(name, backend, output);
    }

    /// <summary>Logits, loss and every A/B gradient against the fixture, on <paramref name="backend"/>.</summary>
    internal static void LogitsLossAndGradients(string name, Backend backend, ITestOutputHelper output)
    {
        var f = ModelFixture.Load(name);
        using var model = Load(f, backend);
        int b = (int)f.Shapes["input_ids"][0], t = (int)f.Shapes["input_ids"][1];
        var logits = new float[f.Floats["logits"].Length];
        model.ForwardLogits(f.Ints["input_ids"], b, t, logits);
        Approx.RelativeNorm(f.Floats["logits"], logits, 1e-5, $"{name} logits");

        model.ZeroGradients();
        double loss = model.ForwardBackward(f.Ints["input_ids"], f.Ints["targets"], b, t);
        output.WriteLine($"{name}: loss {loss:R} vs PyTorch {f.Floats["loss"][0]:R}");
        Assert.InRange(Math.Abs(loss - f.Floats["loss"][0]), 0, 2e-6);
        var lora = model.Lora!;
        Assert.Equal(f.Floats.Keys.Count(k => k.StartsWith("grad.", StringComparison.Ordinal)), 2 * lora.Sites.Count);
        foreach (var site in lora.Sites)
        {
            foreach (var tensor in new[] { site.AName, site.BName })
            {
                Approx.RelativeNorm(f.Floats["grad." + tensor], lora.Read(tensor, gradient: true), 1e-5, $"{name} grad {tensor}");
            }
        }
    }

    /// <summary>Ten AdamW steps of the adapters against the fixture's trajectory, the base bit-identical, on <paramref name="backend"/>.</summary>
    internal static void TenAdamWSteps(string name, Backend backend, ITestOutputHelper output)
    {
        var f = ModelFixture.Load(name);
        using var model = Load(f, backend);
        var baseBefore = BaseValues(model);
        int b = (int)f.Shapes["input_ids"][0], t = (int)f.Shapes["input_ids"][1];
        var opt = f.Optimizer;
        var settings = new AdamWSettings
        {
            Beta1 = opt.GetProperty("beta1").GetSingle(),
            Beta2 = opt.GetProperty("beta2").GetSingle(),
            Epsilon = opt.GetProperty("eps").GetSingle(),
            WeightDecay = opt.GetProperty("weight_decay").GetSingle(),
            MaxGradNorm = opt.GetProperty("max_grad_norm").GetSingle(),
        };
        float lr = opt.GetProperty("lr").GetSingle();
        var expectedLoss = f.Floats["trajectory.loss"];
        var expectedNorm = f.Floats["trajectory.grad_norm"];
        for (int step = 0; step < expectedLoss.Length; step++)
        {
            model.ZeroGradients();
            double loss = model.ForwardBackward(f.Ints["input_ids"], f.Ints["targets"], b, t);
            double norm = model.OptimizerStep(lr, step + 1, settings);
            output.WriteLine($"step {step}: loss {loss:F7} (torch {expectedLoss[step]:F7}), grad norm {norm:F7} (torch {expectedNorm[step]:F7})");
            Assert.InRange(Math.Abs(loss - expectedLoss[step]), 0, 1e-5 * Math.Max(1, expectedLoss[step]));
            Assert.InRange(Math.Abs(norm - expectedNorm[step]), 0, 1e-5 * Math.Max(1, expectedNorm[step]));
        }

        foreach (var site in model.Lora!.Sites)
        {
            foreach (var tensor in new[] { site.AName, site.BName })
            {
                Approx.RelativeNorm(f.Floats["final." + tensor], model.Lora.Read(tensor), 1e-5, $"{name} {tensor} after 10 steps");
            }
        }

        var baseAfter = BaseValues(model);
        Approx.BitEqual(baseBefore, baseAfter, $"{name} base weights after training");
    }

    /// <summary>The fixture's base model, frozen, with adapters on the fixture's targets holding the fixture's A and B.</summary>
    internal static Transformer Load(ModelFixture f, Backend backend)
    {
        var model = new Transformer(HfConfig.Parse(f.ConfigJson, f.Name), backend, trainable: false);
        model.LoadHuggingFaceWeights((hfName, _) => f.Floats.GetValueOrDefault(hfName));
        using var json = JsonDocument.Parse(f.Metadata["lora"]);
        var l = json.RootElement;
        var config = new LoraConfig(
            l.GetProperty("r").GetInt32(), l.GetProperty("lora_alpha").GetDouble(), l.GetProperty("lora_dropout").GetDouble(),
            [.. l.GetProperty("target_modules").EnumerateArray().Select(e => e.GetString()!)], l.GetProperty("use_rslora").GetBoolean());
        var lora = model.AddLora(config, seed: 1);
        foreach (var site in lora.Sites)
        {
            lora.Write(site.AName, f.Floats[site.AName]);
            lora.Write(site.BName, f.Floats[site.BName]);
        }

        return model;
    }

    private static float[] BaseValues(Transformer model)
    {
        var host = new float[model.Parameters.ElementCount];
        model.Backend.CopyToHost<float>(model.Parameters.Values, host);
        return host;
    }
}
