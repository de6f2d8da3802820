using System.Text.Json;
using Engine.Core.Cpu;
using Engine.Models;
using Engine.Models.HuggingFace;
using Engine.Tests.Support;
using Xunit;

namespace Engine.Tests.Cli;

[Collection("Console")]
public sealed class InfoCommandTests : IDisposable
{
    private readonly string dir = Directory.CreateTempSubdirectory("engine-info-").FullName;

    public void Dispose() => Directory.Delete(dir, recursive: true);

    [Fact]
    public void Info_on_a_saved_checkpoint_prints_config_parameters_and_memory()
    {
        var config = HfConfig.Parse(ModelFixture.Load("llama_tiny").ConfigJson);
        using (var backend = new CpuBackend(1))
        using (var model = new Transformer(config, backend))
        {
            HfCheckpoint.Save(model, dir);
        }

        var (code, stdout, _) = Run("info", dir, "--batch", "2", "--seq", "16");
        Assert.Equal(0, code);
        long p = Transformer.ParameterCount(config);
        Assert.Contains("model_type: qwen2", stdout, StringComparison.Ordinal);
        Assert.Contains($"parameters: {p:N0}", stdout, StringComparison.Ordinal);
        Assert.Contains("model.safetensors, ", stdout, StringComparison.Ordinal);
        Assert.Contains("F32", stdout, StringComparison.Ordinal);

        (code, stdout, _) = Run("info", dir, "--batch", "2", "--seq", "16", "--json");
        Assert.Equal(0, code);
        using var doc = JsonDocument.Parse(stdout);
        var mem = doc.RootElement.GetProperty("memory_bytes");
        long activations;
        using (var backend = new CpuBackend(1))
        using (var model = new Transformer(config, backend))
        {
            model.ZeroGradients();
            model.ForwardBackward(new int[32], new int[32], 2, 16);
            activations = model.ActivationBytes;
        }

        // The estimate is the plan the model really allocates, and the optimizer state is 16 bytes per parameter.
        Assert.Equal(activations, mem.GetProperty("activations").GetInt64());
        Assert.Equal(16 * p + activations, mem.GetProperty("total").GetInt64());
        Assert.Equal(p, doc.RootElement.GetProperty("parameters").GetInt64());

        // With gradient checkpointing: the plan a recomputing model allocates, smaller for two layers or more.
        using (var backend = new CpuBackend(1))
        using (var model = new Transformer(config, backend) { GradientCheckpointing = true })
        {
            model.ForwardBackward(new int[32], new int[32], 2, 16);
            var checkpointed = doc.RootElement.GetProperty("gradient_checkpointing_memory_bytes");
            Assert.Equal(model.ActivationBytes, checkpointed.GetProperty("activations").GetInt64());
            Assert.True(config.Layers < 2 || model.ActivationBytes < activations);
        }
    }

    [Fact]
    public void Info_works_on_a_config_json_alone()
    {
        string path = Path.Combine(dir, "config.json");
        File.WriteAllText(path, HfConfig.ToJson(TransformerConfig.Gpt2(50257, 1024, 12, 768, 12)));
        var (code, stdout, _) = Run("info", path);
        Assert.Equal(0, code);
        Assert.Contains("with gradient_checkpointing", stdout, StringComparison.Ordinal);
        Assert.Contains("parameters: 124,439,808", stdout, StringComparison.Ordinal);
        Assert.Contains("weights: none (config only)", stdout, StringComparison.Ordinal);
        Assert.Contains("B=1 T=1024", stdout, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("missing-dir")]
    [InlineData("bad-config")]
    public void Errors_are_one_line_and_exit_code_1(string kind)
    {
        string path = Path.Combine(dir, kind);
        if (kind == "bad-config")
        {
            Directory.CreateDirectory(path);
            File.WriteAllText(Path.Combine(path, "config.json"), "{\"model_type\": \"gpt2\", \"n_embd\": true}");
        }

        var (code, _, stderr) = Run("info", path);
        Assert.Equal(1, code);
        Assert.StartsWith("engine: error:", stderr.Trim(), StringComparison.Ordinal);
        Assert.DoesNotContain('\n', stderr.Trim());
    }

    private static (int Code, string Stdout, string Stderr) Run(params string[] args) => CliRun.Engine(args);
}
