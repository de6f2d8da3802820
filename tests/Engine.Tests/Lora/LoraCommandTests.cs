using Engine.Models.Formats;
using Engine.Models.HuggingFace;
using Engine.Models.Lora;
using Engine.Tests.Cli;
using Engine.Tests.Training;
using Xunit;

namespace Engine.Tests.Lora;

/// <summary><c>--lora</c> on the trainers, <c>--adapter</c> on inference, <c>engine lora merge</c> and <c>info --lora</c>, end to end on a tiny GPT-2.</summary>
[Trait("Category", "Training")]
[Collection("Console")]
public sealed class LoraCommandTests : IDisposable
{
    private static readonly string[] Fast =
    [
        "--set", "max_steps=4", "--set", "batch_size=2", "--set", "log_interval=1", "--set", "checkpoint_interval=2",
        "--set", "max_length=32", "--set", "learning_rate=1e-2", "--threads", "2", "--lora", "r=4,alpha=8,dropout=0.1",
    ];

    private readonly TempDirectory dir = new();

    public LoraCommandTests()
    {
        CliHarness.SaveTinyModel(Model);
        File.WriteAllLines(dir.Sub("sft.jsonl"), Enumerable.Range(0, 8).Select(i => $$"""{"prompt": "q{{i}} ", "completion": "answer {{i}}"}"""));
        File.WriteAllLines(dir.Sub("pairs.jsonl"), Enumerable.Range(0, 8).Select(i => $$"""{"prompt": "q{{i}} ", "chosen": "good {{i}}", "rejected": "bad"}"""));
    }

    private string Model => dir.Sub("model");

    public void Dispose() => dir.Dispose();

    [Fact]
    public void Sft_with_lora_writes_peft_adapters_and_resumes_to_the_same_bits()
    {
        string output = dir.Sub("sft");
        var (code, stdout, error) = CliHarness.Run(["sft", "--model", Model, "--data", dir.Sub("sft.jsonl"), "--out", output, .. Fast]);
        Assert.True(code == 0, error);
        Assert.Contains("step 4/4", stdout, StringComparison.Ordinal);
        string final = Path.Combine(output, "final"), checkpoint = Path.Combine(output, "checkpoint-2");
        Assert.True(PeftAdapter.IsAdapter(final));
        Assert.False(File.Exists(Path.Combine(final, HfCheckpoint.ConfigFile)));
        Assert.True(File.Exists(Path.Combine(final, "tokenizer.json")));
        Assert.True(PeftAdapter.IsAdapter(checkpoint));
        Assert.False(File.Exists(Path.Combine(checkpoint, HfCheckpoint.WeightsFile)));
        Assert.Equal(Path.GetFullPath(Model), PeftAdapter.ReadConfig(final).BaseModel);
        using (var adapterFile = SafetensorsFile.Open(Path.Combine(checkpoint, PeftAdapter.WeightsFile)))
        using (var moments = SafetensorsFile.Open(Path.Combine(checkpoint, "optimizer.safetensors")))
        {
            // The optimizer state holds the adapters' moments only: as many values as A and B have, none for the base.
            long adapterValues = adapterFile.Tensors.Sum(t => t.Shape[0] * t.Shape[1]);
            Assert.All(moments.Tensors, t => Assert.Equal(adapterValues, t.Shape[0]));
        }

        var firstRun = File.ReadAllBytes(Path.Combine(final, PeftAdapter.WeightsFile));

        Directory.Delete(Path.Combine(output, "checkpoint-4"), recursive: true);
        Directory.Delete(final, recursive: true);
        (code, stdout, error) = CliHarness.Run(["sft", "--model", Model, "--data", dir.Sub("sft.jsonl"), "--out", output, "--resume", .. Fast]);
        Assert.True(code == 0, error);
        Assert.Contains("checkpoint-2", stdout, StringComparison.Ordinal);
        Assert.Equal(firstRun, File.ReadAllBytes(Path.Combine(final, PeftAdapter.WeightsFile)));
    }

    [Fact]
    public void Dpo_with_lora_needs_no_reference_copy_and_its_adapter_serves_inference_and_merges()
    {
        string output = dir.Sub("dpo");
        var (code, stdout, error) = CliHarness.Run(["dpo", "--model", Model, "--data", dir.Sub("pairs.jsonl"), "--out", output, "--precompute-ref", .. Fast]);
        Assert.True(code == 0, error);
        Assert.Contains("reference log-probs: 16 sequences cached", stdout, StringComparison.Ordinal);
        (code, _, error) = CliHarness.Run(["dpo", "--model", Model, "--data", dir.Sub("pairs.jsonl"), "--out", dir.Sub("dpo-resident"), .. Fast]);
        Assert.True(code == 0, error);
        string adapter = Path.Combine(output, "final");

        string merged = dir.Sub("merged");
        (code, stdout, error) = CliHarness.Run(["lora", "merge", "--base", Model, "--adapter", adapter, "--out", merged]);
        Assert.True(code == 0, error);
        Assert.Contains("merged 4 adapted layers", stdout, StringComparison.Ordinal);
        Assert.True(File.Exists(Path.Combine(merged, HfCheckpoint.ConfigFile)));

        string[] generate = ["--prompt", "q1 ", "--temperature", "0", "--max-new-tokens", "12", "--threads", "1"];
        var (c1, withAdapter, e1) = CliHarness.Run(["generate", Model, "--adapter", adapter, .. generate]);
        var (c2, fromMerged, e2) = CliHarness.Run(["generate", merged, .. generate]);
        var (c3, plain, e3) = CliHarness.Run(["generate", Model, .. generate]);
        Assert.True(c1 == 0 && c2 == 0 && c3 == 0, e1 + e2 + e3);
        Assert.Equal(fromMerged, withAdapter);

        var (c4, logprobsAdapter, e4) = CliHarness.Run(["logprobs", Model, "--adapter", adapter, "--data", dir.Sub("sft.jsonl"), "--threads", "1"]);
        var (c5, logprobsMerged, e5) = CliHarness.Run(["logprobs", merged, "--data", dir.Sub("sft.jsonl"), "--threads", "1"]);
        Assert.True(c4 == 0 && c5 == 0, e4 + e5);
        Assert.Equal(logprobsMerged.Split('\n').Length, logprobsAdapter.Split('\n').Length);
        _ = plain;

        (code, _, error) = CliHarness.Run(["generate", Model, "--adapter", dir.Sub("nowhere"), .. generate]);
        Assert.Equal(1, code);
        Assert.Contains("--adapter", error, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("dpo", "--loss", "simpo")]
    [InlineData("dpo", "--loss", "sigmoid,bco_pair,sft")]
    [InlineData("kto", "--beta", "0.1")]
    [InlineData("pretrain", "--set", "seed=3")]
    public void Every_trainer_that_takes_lora_trains_adapters_only(string command, string flag, string value)
    {
        // A flag a trainer accepted but ignored would train every weight and write a full checkpoint: each must write
        // a PEFT adapter (no config.json, no full weights) and leave the base checkpoint untouched.
        string data = command switch { "kto" => dir.Sub("kto.jsonl"), "pretrain" => dir.Sub("text.jsonl"), _ => dir.Sub("pairs.jsonl") };
        File.WriteAllLines(dir.Sub("kto.jsonl"), Enumerable.Range(0, 8).Select(i => $$"""{"prompt": "q{{i}} ", "completion": "{{(i % 2 == 0 ? "good" : "bad")}} {{i}}", "label": {{(i % 2 == 0 ? "true" : "false")}}}"""));
        File.WriteAllLines(dir.Sub("text.jsonl"), Enumerable.Range(0, 8).Select(i => $$"""{"text": "some text {{i}}"}"""));
        var baseBytes = File.ReadAllBytes(Path.Combine(Model, HfCheckpoint.WeightsFile));
        string output = dir.Sub($"{command}-{value}");
        var (code, _, error) = CliHarness.Run([command, "--model", Model, "--data", data, "--out", output, flag, value, .. Fast]);
        Assert.True(code == 0, error);
        string final = Path.Combine(output, "final");
        Assert.True(PeftAdapter.IsAdapter(final), $"{command} {value}: final/ is not an adapter");
        Assert.False(File.Exists(Path.Combine(final, HfCheckpoint.WeightsFile)));
        Assert.Equal(baseBytes, File.ReadAllBytes(Path.Combine(Model, HfCheckpoint.WeightsFile)));
    }

    [Fact]
    public void Pretraining_random_weights_with_lora_is_refused()
    {
        var (code, _, error) = CliHarness.Run(
            ["pretrain", "--config-model", Path.Combine(Model, HfCheckpoint.ConfigFile), "--tokenizer", Path.Combine(Model, "tokenizer.json"),
             "--data", dir.Sub("sft.jsonl"), "--out", dir.Sub("pt"), .. Fast]);
        Assert.Equal(1, code);
        Assert.Contains("--lora", error, StringComparison.Ordinal);
        Assert.Contains("--model", error, StringComparison.Ordinal);
    }

    [Fact]
    public void Rm_with_lora_saves_the_scalar_head_with_the_adapter_and_scores_as_the_merged_model()
    {
        string output = dir.Sub("rm");
        string[] args = ["rm", "--model", Model, "--data", dir.Sub("pairs.jsonl"), "--out", output, "--demos", dir.Sub("sft.jsonl"), .. Fast];
        var (code, stdout, error) = CliHarness.Run(args);
        Assert.True(code == 0, error);
        Assert.Contains("calibrated on", stdout, StringComparison.Ordinal);
        string final = Path.Combine(output, "final");
        var (config, _) = PeftAdapter.ReadConfig(final);
        Assert.Equal([LoraConfig.ScoreModule], config.ModulesToSave);
        using (var adapterFile = SafetensorsFile.Open(Path.Combine(final, PeftAdapter.WeightsFile)))
        {
            // PEFT's names for a saved module: the module's own tensor names under base_model.model.
            Assert.Contains("base_model.model.score.weight", adapterFile.Names);
            Assert.Contains("base_model.model.score.bias", adapterFile.Names);
        }

        var first = File.ReadAllBytes(Path.Combine(final, PeftAdapter.WeightsFile));
        Directory.Delete(Path.Combine(output, "checkpoint-4"), recursive: true);
        Directory.Delete(final, recursive: true);
        (code, stdout, error) = CliHarness.Run([.. args, "--resume"]);
        Assert.True(code == 0, error);
        Assert.Contains("checkpoint-2", stdout, StringComparison.Ordinal);
        Assert.Equal(first, File.ReadAllBytes(Path.Combine(final, PeftAdapter.WeightsFile)));

        // The adapter over the language-model base scores as the merged reward model, and not as the untrained head.
        string merged = dir.Sub("rm-merged");
        (code, _, error) = CliHarness.Run(["lora", "merge", "--base", Model, "--adapter", final, "--out", merged]);
        Assert.True(code == 0, error);
        var (c1, withAdapter, e1) = CliHarness.Run(["score", Model, "--adapter", final, "--data", dir.Sub("pairs.jsonl"), "--threads", "1"]);
        var (c2, fromMerged, e2) = CliHarness.Run(["score", merged, "--data", dir.Sub("pairs.jsonl"), "--threads", "1"]);
        Assert.True(c1 == 0 && c2 == 0, e1 + e2);
        var a = Scores(withAdapter);
        var m = Scores(fromMerged);
        Assert.Equal(24, a.Count);   // chosen, rejected and their margin for each of the 8 pairs
        Assert.Equal(a.Count, m.Count);
        Assert.All(a.Zip(m), p => Assert.Equal(p.Second, p.First, 1e-4));
    }

    // Every number of the score command's JSONL output, in order.
    private static List<double> Scores(string output) =>
        [.. output.Split('\n', StringSplitOptions.RemoveEmptyEntries)
            .SelectMany(line => System.Text.Json.JsonDocument.Parse(line).RootElement.EnumerateObject())
            .Where(p => p.Value.ValueKind == System.Text.Json.JsonValueKind.Number)
            .Select(p => p.Value.GetDouble())];

    [Fact]
    public void Info_shows_trainable_parameters_and_memory_with_and_without_lora()
    {
        var (code, stdout, error) = CliHarness.Run(["info", Model, "--lora", "r=4,alpha=8", "--batch", "2", "--seq", "16"]);
        Assert.True(code == 0, error);
        Assert.Contains("LoRA: r=4, alpha=8", stdout, StringComparison.Ordinal);
        Assert.Contains("trainable parameters", stdout, StringComparison.Ordinal);

        (code, stdout, error) = CliHarness.Run(["info", "--plan", "dpo", "--actor", Model, "--lora", "r=4", "--minibatch", "4", "--prompt-length", "8", "--response-length", "8"]);
        Assert.True(code == 0, error);
        Assert.Contains("adapters off", stdout, StringComparison.Ordinal);
        Assert.Contains("LoRA r=4", stdout, StringComparison.Ordinal);
    }
}
