using System.Diagnostics;
using Engine.Core;
using Engine.Core.Cpu;
using Engine.Models;
using Engine.Models.Formats;
using Engine.Models.HuggingFace;
using Engine.Models.Lora;
using Engine.Tests.Docs;
using Engine.Tests.Support;
using Engine.Tests.Training;
using Xunit;

namespace Engine.Tests.Lora;

/// <summary>Adapters in PEFT's files: round trip, an independent reader, merging, and bad files.</summary>
[Trait("Category", "Models")]
public sealed class LoraFileTests : IDisposable
{
    private readonly CpuBackend backend = new(2);
    private readonly TempDirectory dir = new();

    public void Dispose()
    {
        backend.Dispose();
        dir.Dispose();
    }

    private static float[] Logits(Transformer model, ModelFixture f)
    {
        int b = (int)f.Shapes["input_ids"][0], t = (int)f.Shapes["input_ids"][1];
        var logits = new float[f.Floats["logits"].Length];
        model.ForwardLogits(f.Ints["input_ids"], b, t, logits);
        return logits;
    }

    [Theory]
    [InlineData("lora_gpt2")]
    [InlineData("lora_llama")]
    public void An_adapter_saved_in_peft_layout_loads_back_and_merges_to_the_same_logits(string name)
    {
        var f = ModelFixture.Load(name);
        using var adapted = LoraParityTests.Load(f, backend);
        adapted.Lora!.BaseModel = "tiny/" + name;
        var expected = Logits(adapted, f);
        string adapterDir = dir.Sub("adapter-" + name);
        PeftAdapter.Save(adapted.Lora, adapterDir);

        using (var weights = SafetensorsFile.Open(Path.Combine(adapterDir, PeftAdapter.WeightsFile)))
        {
            var site = adapted.Lora.Sites[0];
            var a = weights.GetTensor(PeftAdapter.Prefix + site.AName);
            Assert.Equal(new long[] { 4, site.InFeatures }, a.Shape.ToArray());
            Assert.Equal(new long[] { site.OutFeatures, 4 }, weights.GetTensor(PeftAdapter.Prefix + site.BName).Shape.ToArray());
            Assert.Equal(2 * adapted.Lora.Sites.Count, weights.Names.Count);
        }

        var (config, baseModel) = PeftAdapter.ReadConfig(adapterDir);
        Assert.Equal(adapted.Lora.Config with { Targets = config.Targets }, config);
        Assert.Equal("tiny/" + name, baseModel);

        using var reloaded = new Transformer(adapted.Config, backend, trainable: false);
        reloaded.LoadHuggingFaceWeights((hfName, _) => f.Floats.GetValueOrDefault(hfName));
        PeftAdapter.Load(reloaded, adapterDir);
        Approx.BitEqual(expected, Logits(reloaded, f), "reloaded adapter");

        reloaded.MergeLora();
        Assert.Null(reloaded.Lora);
        Approx.RelativeNorm(expected, Logits(reloaded, f), 1e-5, "merged model");
    }

    [PythonFact]
    public void An_independent_reader_finds_the_names_and_shapes_peft_expects()
    {
        foreach (var name in new[] { "lora_gpt2", "lora_llama" })
        {
            var f = ModelFixture.Load(name);
            using var model = LoraParityTests.Load(f, backend);
            string baseDir = dir.Sub("base-" + name), adapterDir = dir.Sub("peft-" + name);
            HfCheckpoint.Save(model, baseDir);
            PeftAdapter.Save(model.Lora!, adapterDir);
            var (code, output) = Check(adapterDir, baseDir);
            Assert.True(code == 0, output);
            Assert.Contains($"\"tensors\": {2 * model.Lora!.Sites.Count}", output, StringComparison.Ordinal);

            // The reader is not a rubber stamp: a wrong shape fails it.
            var writer = new SafetensorsWriter();
            var site = model.Lora.Sites[0];
            writer.AddF32(PeftAdapter.Prefix + site.AName, new float[4 * (site.InFeatures + 1)], 4, site.InFeatures + 1);
            writer.Save(Path.Combine(adapterDir, PeftAdapter.WeightsFile));
            (code, output) = Check(adapterDir, baseDir);
            Assert.Equal(1, code);
            Assert.Contains("expected F32", output, StringComparison.Ordinal);
        }
    }

    [Fact]
    public void Bad_adapter_files_fail_with_the_file_and_field()
    {
        var f = ModelFixture.Load("lora_gpt2");
        using var model = LoraParityTests.Load(f, backend);
        string adapterDir = dir.Sub("bad");
        PeftAdapter.Save(model.Lora!, adapterDir);
        string config = Path.Combine(adapterDir, PeftAdapter.ConfigFile);
        string text = File.ReadAllText(config);

        File.WriteAllText(config, text.Replace("\"LORA\"", "\"IA3\"", StringComparison.Ordinal));
        Assert.Contains("field 'peft_type'", Assert.Throws<InputException>(() => PeftAdapter.ReadConfig(adapterDir)).Message, StringComparison.Ordinal);
        File.WriteAllText(config, text.Replace("\"r\": 4", "\"r\": \"four\"", StringComparison.Ordinal));
        Assert.Contains("field 'r'", Assert.Throws<InputException>(() => PeftAdapter.ReadConfig(adapterDir)).Message, StringComparison.Ordinal);
        File.WriteAllText(config, text.Replace("\"r\": 4", "\"r\": 8", StringComparison.Ordinal));
        using var base2 = new Transformer(model.Config, backend, trainable: false);
        var error = Assert.Throws<InputException>(() => PeftAdapter.Load(base2, adapterDir));
        Assert.Contains(PeftAdapter.WeightsFile, error.Message, StringComparison.Ordinal);
        Assert.Contains("this model needs", error.Message, StringComparison.Ordinal);
        Assert.Contains("no adapter_config.json", Assert.Throws<InputException>(() => PeftAdapter.ReadConfig(dir.Sub("none"))).Message, StringComparison.Ordinal);
    }

    private static (int Code, string Output) Check(string adapterDir, string baseDir)
    {
        string script = Path.Combine(ReadmeSnippets.RepositoryRoot(), "tests", "fixtures", "check_peft_adapter.py");
        var info = new ProcessStartInfo(PythonFactAttribute.Python) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var arg in new[] { script, adapterDir, baseDir })
        {
            info.ArgumentList.Add(arg);
        }

        using var process = Process.Start(info)!;
        string output = process.StandardOutput.ReadToEnd() + process.StandardError.ReadToEnd();
        process.WaitForExit();
        return (process.ExitCode, output);
    }
}
