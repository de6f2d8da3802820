using Engine.Core;
using Engine.Models.Lora;
using Engine.Training;
using Engine.Training.Options;
using Engine.Tests.Cli;
using Engine.Tests.Training;
using Xunit;

namespace Engine.Tests.Lora;

/// <summary>The <c>lora:</c> block of a trainer's configuration file: PEFT's key names, errors, and <c>--lora</c> over it.</summary>
[Trait("Category", "Training")]
[Collection("Console")]
public sealed class LoraOptionsTests : IDisposable
{
    private readonly TempDirectory dir = new();

    public void Dispose() => dir.Dispose();

    [Fact]
    public void Yaml_and_json_blocks_read_pefts_keys_into_the_adapter_settings()
    {
        const string yaml = "learning_rate: 1e-4\nlora:\n  r: 8\n  lora_alpha: 16\n  lora_dropout: 0\n  target_modules: [c_attn, c_proj]\n  use_rslora: true\n";
        const string json = """{"learning_rate": 1e-4, "lora": {"r": 8, "lora_alpha": 16, "lora_dropout": 0, "target_modules": ["c_attn", "c_proj"], "use_rslora": true}}""";
        var fromYaml = OptionsReader.Parse<SftOptions>(yaml, "sft.yaml", OptionsFormat.Yaml).Lora!.ToConfig("sft.yaml");
        var fromJson = OptionsReader.Parse<SftOptions>(json, "sft.json", OptionsFormat.Json).Lora!.ToConfig("sft.json");
        Assert.Equal((8, 16.0, 0.0, true), (fromYaml.Rank, fromYaml.Alpha, fromYaml.Dropout, fromYaml.UseRsLora));
        Assert.Equal(["c_attn", "c_proj"], fromYaml.TargetModules);
        Assert.Equal(fromYaml.Scale, fromJson.Scale);
        Assert.Equal(fromYaml.TargetModules, fromJson.TargetModules);

        // A block left at its defaults is --lora's defaults; no block is full training; target_modules may be one string.
        Assert.Equal(new LoraConfig().Scale, OptionsReader.Parse<SftOptions>("lora: {}", "s.yaml", OptionsFormat.Yaml).Lora!.ToConfig("s.yaml").Scale);
        Assert.Null(OptionsReader.Parse<SftOptions>("seed: 1", "s.yaml", OptionsFormat.Yaml).Lora);
        var set = OptionsReader.Apply(new SftOptions(), ["lora.target_modules=q_proj+v_proj", "lora.r=2"]).Lora!;
        Assert.Equal(["q_proj", "v_proj"], set.TargetModules);
        Assert.Equal(2, set.R);
        Assert.Equal([LoraConfig.AllLinear], OptionsReader.Parse<SftOptions>("lora: {target_modules: all-linear}", "s.yaml", OptionsFormat.Yaml).Lora!.TargetModules);
    }

    [Fact]
    public void Unknown_keys_bad_values_and_bad_targets_are_refused_with_the_key()
    {
        var e = Assert.Throws<OptionsException>(() => OptionsReader.Parse<SftOptions>("lora:\n  r: 8\n  lora_alpah: 16\n", "sft.yaml", OptionsFormat.Yaml));
        Assert.Equal("lora.lora_alpah", e.Key);
        Assert.StartsWith("sft.yaml:3: key 'lora.lora_alpah'", e.Message, StringComparison.Ordinal);
        Assert.Contains("did you mean 'lora_alpha'", e.Message, StringComparison.Ordinal);

        e = Assert.Throws<OptionsException>(() => OptionsReader.Parse<SftOptions>("""{"lora": {"target_modules": [1, ""]}}""", "s.json", OptionsFormat.Json));
        Assert.Equal("lora.target_modules", e.Key);
        e = Assert.Throws<OptionsException>(() => OptionsReader.Parse<SftOptions>("lora: 16", "s.yaml", OptionsFormat.Yaml));
        Assert.Equal("lora", e.Key);

        var block = OptionsReader.Parse<SftOptions>("lora: {r: 0}", "s.yaml", OptionsFormat.Yaml).Lora!;
        var bad = Assert.Throws<InputException>(() => block.ToConfig("s.yaml"));
        Assert.StartsWith("s.yaml: field 'lora.r'", bad.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void The_config_block_trains_an_adapter_and_the_flag_overrides_its_keys()
    {
        string model = dir.Sub("model");
        CliHarness.SaveTinyModel(model);
        File.WriteAllLines(dir.Sub("sft.jsonl"), Enumerable.Range(0, 4).Select(i => $$"""{"prompt": "q{{i}} ", "completion": "answer {{i}}"}"""));
        File.WriteAllText(dir.Sub("sft.yaml"), "max_steps: 1\nbatch_size: 2\nmax_length: 32\nlora:\n  r: 4\n  lora_alpha: 8\n  target_modules: [c_attn]\n");
        string[] common = ["sft", "--model", model, "--data", dir.Sub("sft.jsonl"), "--config", dir.Sub("sft.yaml"), "--threads", "2"];

        var (code, _, error) = CliHarness.Run([.. common, "--out", dir.Sub("file")]);
        Assert.True(code == 0, error);
        var (config, _) = PeftAdapter.ReadConfig(Path.Combine(dir.Sub("file"), "final"));
        Assert.Equal((4, 8.0), (config.Rank, config.Alpha));
        Assert.Equal(["c_attn"], config.TargetModules);

        (code, _, error) = CliHarness.Run([.. common, "--out", dir.Sub("flag"), "--lora", "r=2"]);
        Assert.True(code == 0, error);
        (config, _) = PeftAdapter.ReadConfig(Path.Combine(dir.Sub("flag"), "final"));
        Assert.Equal((2, 8.0), (config.Rank, config.Alpha));
        Assert.Equal(["c_attn"], config.TargetModules);

        File.WriteAllText(dir.Sub("bad.yaml"), "lora:\n  rank: 4\n");
        (code, _, error) = CliHarness.Run(["sft", "--model", model, "--data", dir.Sub("sft.jsonl"), "--config", dir.Sub("bad.yaml"), "--out", dir.Sub("bad")]);
        Assert.Equal(1, code);
        Assert.Contains("key 'lora.rank'", error, StringComparison.Ordinal);

        // Pretraining from random weights (--config-model) refuses the block rather than adapt weights that know nothing.
        (code, _, error) = CliHarness.Run(
            ["pretrain", "--config-model", Path.Combine(model, "config.json"), "--tokenizer", Path.Combine(model, "tokenizer.json"),
             "--data", dir.Sub("sft.jsonl"), "--config", dir.Sub("sft.yaml"), "--out", dir.Sub("pretrain")]);
        Assert.Equal(1, code);
        Assert.Contains("--lora adapts a trained model", error, StringComparison.Ordinal);
    }
}
