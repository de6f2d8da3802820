using System.Text.Json;
using Engine.Core;
using Engine.Core.Cpu;
using Engine.Models;
using Engine.Models.HuggingFace;
using Engine.Models.Presets;
using Engine.Models.Tokenizers;
using Engine.Tests.Training;
using Xunit;

namespace Engine.Tests.Cli;

/// <summary><c>engine init</c> and <see cref="ModelPresets"/>: published shapes, a fresh checkpoint, and training from it.</summary>
[Collection("Console")]
public sealed class InitCommandTests : IDisposable
{
    private readonly TempDirectory dir = new();

    public void Dispose() => dir.Dispose();

    // The numbers of each model's published config.json (see the preset descriptions for the repositories).
    [Theory]
    [InlineData("gpt2", "gpt2", 12, 768, 12, 12, 3072, 1024, 50257, 10000.0, 1e-5f, true, 50256, 50256, 124.4)]
    [InlineData("gpt2-medium", "gpt2", 24, 1024, 16, 16, 4096, 1024, 50257, 10000.0, 1e-5f, true, 50256, 50256, 354.8)]
    [InlineData("smollm2-135m", "llama", 30, 576, 9, 3, 1536, 8192, 49152, 100000.0, 1e-5f, true, 0, 0, 134.5)]
    [InlineData("smollm2-360m", "llama", 32, 960, 15, 5, 2560, 8192, 49152, 100000.0, 1e-5f, true, 0, 0, 361.8)]
    [InlineData("qwen2.5-0.5b", "qwen2", 24, 896, 14, 2, 4864, 32768, 151936, 1000000.0, 1e-6f, true, 151643, 151643, 494.0)]
    [InlineData("llama-3.2-1b", "llama", 16, 2048, 32, 8, 8192, 131072, 128256, 500000.0, 1e-5f, true, 128000, 128001, 1235.8)]
    public void Presets_carry_the_published_numbers(
        string name, string type, int layers, int channels, int heads, int kvHeads, int mlp, int positions, int vocab, double theta, float eps, bool tied, int bos, int eos, double millions)
    {
        var preset = ModelPresets.Get(name);
        var m = preset.Config.Model;
        Assert.Equal(type, preset.Config.ModelType);
        Assert.Equal((layers, channels, heads, kvHeads, mlp, positions, vocab), (m.Layers, m.Channels, m.Heads, m.KvHeadCount, m.MlpChannels, m.MaxSequenceLength, m.VocabSize));
        Assert.Equal(eps, m.NormEpsilon);
        Assert.Equal(tied, m.TiedEmbeddings);
        Assert.Equal(type == "qwen2", m.AttentionBias);
        if (type != "gpt2")
        {
            Assert.Equal(theta, m.RopeTheta);
        }

        Assert.Equal(bos, preset.Config.BosTokenId);
        Assert.Equal([eos], preset.Config.EosTokenIds);
        Assert.Equal(millions, Math.Round(preset.ParameterCount / 1e6, 1));

        // The config.json it writes reads back to the same model.
        Assert.Equal(m, HfConfig.Parse(HfConfig.ToJson(preset.Config)));
    }

    [Fact]
    public void Help_lists_the_presets_and_an_unknown_preset_is_one_line()
    {
        var (code, output, _) = CliHarness.Run(["init", "--help"]);
        Assert.Equal(0, code);
        foreach (var preset in ModelPresets.All)
        {
            Assert.Contains(preset.Name, output, StringComparison.Ordinal);
        }

        Assert.Throws<InputException>(() => ModelPresets.Get("gpt5"));
    }

    [Fact]
    public void Init_tiny_writes_a_loadable_checkpoint_and_refuses_a_non_empty_out()
    {
        string output = dir.Sub("tiny");
        var (code, stdout, error) = CliHarness.Run(["init", "--preset", "tiny", "--out", output, "--seed", "3"]);
        Assert.True(code == 0, error);
        Assert.Contains("wrote", stdout, StringComparison.Ordinal);
        using var backend = new CpuBackend(1);
        using var loaded = HfCheckpoint.Load(output, backend, trainable: false);
        Assert.Equal(ModelPresets.Get("tiny").Config.Model, loaded.Config);

        // The library call makes the same weights from the same seed.
        using var fresh = ModelPresets.Create("tiny", backend, seed: 3, trainable: false);
        Assert.Equal(fresh.ReadHuggingFaceTensor("model.embed_tokens.weight"), loaded.ReadHuggingFaceTensor("model.embed_tokens.weight"));

        (code, _, error) = CliHarness.Run(["init", "--preset", "tiny", "--out", output]);
        Assert.Equal(1, code);
        Assert.Single(error.TrimEnd().Split('\n'));
        Assert.Contains("not empty", error, StringComparison.Ordinal);
    }

    [Fact]
    public void Init_with_explicit_sizes_needs_a_vocabulary_and_rejects_sizes_that_do_not_fit()
    {
        var (code, _, error) = CliHarness.Run(["init", "--arch", "llama", "--layers", "1", "--dim", "32", "--heads", "4", "--out", dir.Sub("a")]);
        Assert.Equal(1, code);
        Assert.Contains("--vocab", error, StringComparison.Ordinal);
        (code, _, error) = CliHarness.Run(["init", "--arch", "llama", "--layers", "1", "--dim", "30", "--heads", "4", "--vocab", "64", "--out", dir.Sub("b")]);
        Assert.Equal(1, code);
        Assert.Contains("--dim 30 is not divisible by --heads 4", error, StringComparison.Ordinal);
        (code, _, error) = CliHarness.Run(["init", "--arch", "qwen2", "--layers", "1", "--dim", "32", "--heads", "4", "--kv-heads", "2", "--vocab", "64", "--max-length", "48", "--out", dir.Sub("c")]);
        Assert.True(code == 0, error);
        var config = HfCheckpoint.ReadConfig(dir.Sub("c"));
        Assert.Equal(("qwen2", 2, 64, 48), (config.ModelType, config.Model.KvHeadCount, config.Model.VocabSize, config.Model.MaxSequenceLength));
    }

    [Fact]
    public void Init_with_a_tokenizer_copies_it_takes_its_ids_and_sft_needs_no_tokenizer_flag()
    {
        string tok = dir.Sub("tok");
        Directory.CreateDirectory(tok);
        BpeTrainer.ByteLevel(["<|endoftext|>"]).Save(Path.Combine(tok, "tokenizer.json"));
        File.WriteAllText(Path.Combine(tok, "tokenizer_config.json"), """{"eos_token": "<|endoftext|>"}""");
        string model = dir.Sub("model");
        var (code, _, error) = CliHarness.Run(["init", "--arch", "gpt2", "--layers", "1", "--dim", "16", "--heads", "2", "--max-length", "32", "--tokenizer", tok, "--out", model]);
        Assert.True(code == 0, error);
        var config = HfCheckpoint.ReadConfig(model);
        Assert.Equal(257, config.Model.VocabSize);
        Assert.Equal([256], config.EosTokenIds);
        Assert.True(File.Exists(Path.Combine(model, "tokenizer.json")));
        Assert.True(File.Exists(Path.Combine(model, "tokenizer_config.json")));

        string data = dir.Sub("text.jsonl");
        File.WriteAllLines(data, Enumerable.Range(0, 4).Select(i => JsonSerializer.Serialize(new { text = $"document {i} with a few words" })));
        (code, _, error) = CliHarness.Run(["pretrain", "--model", model, "--data", data, "--out", dir.Sub("run"), "--set", "max_steps=2", "--set", "batch_size=2", "--set", "max_length=16", "--threads", "2"]);
        Assert.True(code == 0, error);
        Assert.True(File.Exists(Path.Combine(dir.Sub("run"), "final", "tokenizer.json")));
    }
}
