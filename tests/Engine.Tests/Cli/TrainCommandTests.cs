using System.Text.Json;
using Engine.Models;
using Engine.Models.HuggingFace;
using Engine.Tests.Training;
using Xunit;

namespace Engine.Tests.Cli;

/// <summary><c>engine sft</c>, <c>rm</c>, <c>dpo</c> and <c>pretrain</c> end to end on a tiny GPT-2 and a byte-level tokenizer.</summary>
[Trait("Category", "Training")]
[Collection("Console")]
public sealed class TrainCommandTests : IDisposable
{
    private static readonly string[] Fast =
    [
        "--set", "max_steps=4", "--set", "batch_size=2", "--set", "log_interval=1", "--set", "checkpoint_interval=2",
        "--set", "max_length=32", "--set", "learning_rate=1e-3", "--threads", "2",
    ];

    private readonly TempDirectory dir = new();

    public TrainCommandTests()
    {
        CliHarness.SaveTinyModel(Model);

        File.WriteAllLines(dir.Sub("sft.jsonl"), Enumerable.Range(0, 8).Select(i => $$"""{"prompt": "q{{i}} ", "completion": "answer {{i}}"}"""));
        File.WriteAllLines(dir.Sub("pairs.jsonl"), Enumerable.Range(0, 8).Select(i => $$"""{"prompt": "q{{i}} ", "chosen": "good {{i}}", "rejected": "bad"}"""));
        File.WriteAllLines(dir.Sub("text.jsonl"), Enumerable.Range(0, 8).Select(i => $$"""{"text": "document {{i}} with some words in it, long enough to fill rows"}"""));
    }

    private string Model => dir.Sub("model");

    public void Dispose() => dir.Dispose();

    [Fact]
    public void Sft_trains_writes_metrics_checkpoints_and_final_then_resumes()
    {
        string output = dir.Sub("sft");
        var (code, stdout, error) = Run(["sft", "--model", Model, "--data", dir.Sub("sft.jsonl"), "--eval-data", dir.Sub("sft.jsonl"), "--out", output, .. Fast]);
        Assert.True(code == 0, error);
        Assert.Contains("step 4/4", stdout, StringComparison.Ordinal);
        var lines = MetricsLines(output);
        Assert.Equal(4, lines.Count(l => l.TryGetProperty("loss", out _)));
        Assert.Contains(lines, l => l.TryGetProperty("eval_loss", out _));
        Assert.True(File.Exists(Path.Combine(output, "final", "config.json")));
        Assert.True(File.Exists(Path.Combine(output, "final", "tokenizer.json")));

        // A second run into the same directory without --resume refuses; with --resume it continues from checkpoint-2.
        Directory.Delete(Path.Combine(output, "checkpoint-4"), recursive: true);
        Directory.Delete(Path.Combine(output, "final"), recursive: true);
        (code, _, error) = Run(["sft", "--model", Model, "--data", dir.Sub("sft.jsonl"), "--out", output, .. Fast]);
        Assert.Equal(1, code);
        Assert.Contains("resume", error, StringComparison.Ordinal);
        (code, stdout, error) = Run(["sft", "--model", Model, "--data", dir.Sub("sft.jsonl"), "--eval-data", dir.Sub("sft.jsonl"), "--out", output, "--resume", .. Fast]);
        Assert.True(code == 0, error);
        Assert.Contains("resumed from", stdout, StringComparison.Ordinal);
        Assert.Contains("checkpoint-2", stdout, StringComparison.Ordinal);
        Assert.DoesNotContain("step 1/4", stdout, StringComparison.Ordinal);
        Assert.Equal(4, MetricsLines(output).Count(l => l.TryGetProperty("loss", out _)));
        Assert.True(File.Exists(Path.Combine(output, "final", "config.json")));
    }

    [Fact]
    public void Rm_trains_a_scalar_head_and_calibrates_on_demonstrations()
    {
        string output = dir.Sub("rm");
        var (code, stdout, error) = Run(["rm", "--model", Model, "--data", dir.Sub("pairs.jsonl"), "--demos", dir.Sub("sft.jsonl"), "--out", output, .. Fast]);
        Assert.True(code == 0, error);
        Assert.Contains("calibrated on 8 demonstrations", stdout, StringComparison.Ordinal);
        Assert.Contains(MetricsLines(output), l => l.TryGetProperty("rewards/accuracies", out _));
        string final = Path.Combine(output, "final");
        Assert.Equal(HeadKind.Scalar, HfCheckpoint.ReadConfig(final).Model.Head);
        Assert.True(File.Exists(Path.Combine(final, RewardHeadFile.FileName)));
    }

    [Fact]
    public void Dpo_with_a_precomputed_reference_trains_and_saves()
    {
        string output = dir.Sub("dpo");
        var (code, stdout, error) = Run(["dpo", "--model", Model, "--data", dir.Sub("pairs.jsonl"), "--out", output, "--precompute-ref", "--loss", "ipo", "--beta", "0.2", .. Fast]);
        Assert.True(code == 0, error);
        Assert.Contains("reference log-probs: 16 sequences cached", stdout, StringComparison.Ordinal);
        Assert.True(File.Exists(Path.Combine(output, "reference_logprobs.safetensors")));
        Assert.Contains(MetricsLines(output), l => l.TryGetProperty("rewards/margins", out _));
        Assert.True(File.Exists(Path.Combine(output, "final", "config.json")));
    }

    [Fact]
    public void Pretrain_creates_a_model_from_a_config()
    {
        string output = dir.Sub("pretrain");
        var (code, _, error) = Run(["pretrain", "--config-model", Path.Combine(Model, "model.json"), "--tokenizer", Path.Combine(Model, "tokenizer.json"), "--data", dir.Sub("text.jsonl"), "--out", output, .. Fast, "--set", "max_length=16"]);
        Assert.True(code == 0, error);
        Assert.Equal(4, MetricsLines(output).Count);
        Assert.True(File.Exists(Path.Combine(output, "final", "config.json")));
    }

    [Fact]
    public void A_bad_dataset_line_is_one_line_with_file_and_line_unless_skipped()
    {
        string data = dir.Sub("bad.jsonl");
        File.WriteAllLines(data, [.. File.ReadAllLines(dir.Sub("sft.jsonl")).Take(3), "{not json", .. File.ReadAllLines(dir.Sub("sft.jsonl")).Skip(3)]);
        var (code, _, error) = Run(["sft", "--model", Model, "--data", data, "--out", dir.Sub("bad"), .. Fast]);
        Assert.Equal(1, code);
        Assert.StartsWith("engine: error:", error.Trim(), StringComparison.Ordinal);
        Assert.Contains("bad.jsonl:4", error, StringComparison.Ordinal);
        Assert.DoesNotContain("\n", error.Trim(), StringComparison.Ordinal);

        (code, _, error) = Run(["sft", "--model", Model, "--data", data, "--out", dir.Sub("skipped"), "--skip-bad-lines", .. Fast]);
        Assert.True(code == 0, error);
        Assert.Contains("bad.jsonl:4", error, StringComparison.Ordinal);
    }

    [Fact]
    public void A_bad_option_names_its_key()
    {
        string config = dir.Sub("train.yaml");
        File.WriteAllText(config, "max_steps: 2\nlerning_rate: 0.1\n");
        var (code, _, error) = Run(["sft", "--model", Model, "--data", dir.Sub("sft.jsonl"), "--out", dir.Sub("opt"), "--config", config]);
        Assert.Equal(1, code);
        Assert.StartsWith("engine: error:", error.Trim(), StringComparison.Ordinal);
        Assert.Contains("train.yaml:2", error, StringComparison.Ordinal);
        Assert.Contains("lerning_rate", error, StringComparison.Ordinal);
    }

    [Fact]
    public void Logprobs_and_score_print_one_json_line_per_example()
    {
        var (code, stdout, error) = Run(["logprobs", Model, "--data", dir.Sub("pairs.jsonl"), "--batch-size", "3", "--threads", "2"]);
        Assert.True(code == 0, error);
        var lines = stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => JsonDocument.Parse(l).RootElement).ToList();
        Assert.Equal(8, lines.Count);
        Assert.All(lines, l => Assert.True(l.GetProperty("chosen").GetDouble() < 0 && l.GetProperty("rejected").GetDouble() < 0));
        Assert.Equal(6, lines[0].GetProperty("chosen_tokens").GetInt32());

        string output = dir.Sub("rm-score");
        (code, _, error) = Run(["rm", "--model", Model, "--data", dir.Sub("pairs.jsonl"), "--out", output, .. Fast]);
        Assert.True(code == 0, error);
        (code, stdout, error) = Run(["score", Path.Combine(output, "final"), "--data", dir.Sub("sft.jsonl"), "--threads", "2"]);
        Assert.True(code == 0, error);
        lines = [.. stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => JsonDocument.Parse(l).RootElement)];
        Assert.Equal(8, lines.Count);
        Assert.All(lines, l => Assert.True(double.IsFinite(l.GetProperty("reward").GetDouble())));

        (code, _, error) = Run(["score", Model, "--data", dir.Sub("sft.jsonl")]);
        Assert.Equal(1, code);
        Assert.Contains("no scalar (reward) head", error, StringComparison.Ordinal);
    }

    private static List<JsonElement> MetricsLines(string output) =>
        [.. File.ReadAllLines(Path.Combine(output, "metrics.jsonl")).Select(l => JsonDocument.Parse(l).RootElement)];

    internal static (int Code, string Output, string Error) Run(string[] args) => CliHarness.Run(args);
}
