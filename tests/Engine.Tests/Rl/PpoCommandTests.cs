using System.Text.Json;
using Engine.Core.Cpu;
using Engine.Models;
using Engine.Models.HuggingFace;
using Engine.Models.Tokenizers;
using Engine.Tests.Training;
using Engine.Training.Rl.Ppo;
using Xunit;

namespace Engine.Tests.Rl;

/// <summary><c>engine ppo</c> end to end on a tiny GPT-2 actor and reward model with a byte-level tokenizer.</summary>
[Trait("Category", "Training")]
[Collection("Console")]
public sealed class PpoCommandTests : IDisposable
{
    private static readonly string[] Fast =
    [
        "--set", "max_steps=3", "--set", "batch_size=2", "--set", "response_length=4", "--set", "max_length=24", "--set", "checkpoint_interval=1",
        "--set", "num_ppo_epochs=2", "--set", "learning_rate=1e-3", "--threads", "2",
    ];

    private readonly TempDirectory dir = new();

    public PpoCommandTests()
    {
        TinyRlModels.Write(dir.Sub("sft"), dir.Sub("rm"), dir.Sub("prompts.jsonl"), i => $"q{i}?");
        File.WriteAllLines(dir.Sub("text.jsonl"), Enumerable.Range(0, 8).Select(i => $$"""{"text": "document {{i}} with some words in it, long enough to fill rows"}"""));
    }

    public void Dispose() => dir.Dispose();

    [Fact]
    public void Ppo_trains_writes_metrics_checkpoints_and_final_then_resumes()
    {
        string output = dir.Sub("ppo");
        string[] args = ["ppo", "--actor", dir.Sub("sft"), "--reward", dir.Sub("rm"), "--prompts", dir.Sub("prompts.jsonl"), "--ptx-data", dir.Sub("text.jsonl"), "--out", output, .. Fast];
        var (code, stdout, error) = Run(args);
        Assert.True(code == 0, error);
        Assert.Contains("step 3/3", stdout, StringComparison.Ordinal);
        Assert.Contains("memory plan: ppo on cpu", stdout, StringComparison.Ordinal);
        Assert.Contains("score", stdout, StringComparison.Ordinal);
        var lines = File.ReadAllLines(Path.Combine(output, "metrics.jsonl")).Select(l => JsonDocument.Parse(l).RootElement).ToList();
        Assert.Equal(3, lines.Count);
        Assert.All(lines, l => Assert.True(l.TryGetProperty("loss/ptx_avg", out _) && l.TryGetProperty("objective/kl", out _)));
        Assert.True(File.Exists(Path.Combine(output, "final", "model.safetensors")));
        Assert.True(File.Exists(Path.Combine(output, "final", "tokenizer.json")));
        Assert.Equal(HeadKind.Scalar, HfCheckpoint.ReadConfig(Path.Combine(output, "final", PpoTrainer.CriticDirectory)).Model.Head);
        Assert.Equal(HeadKind.LanguageModel, HfCheckpoint.ReadConfig(Path.Combine(output, "final")).Model.Head);

        // Without the last checkpoint and final/, --resume continues from checkpoint-2 with the reference loaded per rollout.
        Directory.Delete(Path.Combine(output, "checkpoint-3"), recursive: true);
        Directory.Delete(Path.Combine(output, "final"), recursive: true);
        (code, stdout, error) = Run([.. args, "--resume", "--ref-per-rollout"]);
        Assert.True(code == 0, error);
        Assert.Contains("resumed from", stdout, StringComparison.Ordinal);
        Assert.Contains("log-probs cached per rollout: not resident", stdout, StringComparison.Ordinal);
        Assert.Contains("checkpoint-2", stdout, StringComparison.Ordinal);
        Assert.DoesNotContain("step 1/3", stdout, StringComparison.Ordinal);
        Assert.Equal(3, File.ReadAllLines(Path.Combine(output, "metrics.jsonl")).Length);
    }

    [Fact]
    public void Bad_inputs_are_one_line_errors()
    {
        string[] common = ["--prompts", dir.Sub("prompts.jsonl"), "--out", dir.Sub("bad"), .. Fast];
        var (code, _, error) = Run(["ppo", "--actor", dir.Sub("sft"), "--reward", dir.Sub("sft"), .. common]);
        Assert.Equal(1, code);
        Assert.Contains("no scalar (reward) head", error, StringComparison.Ordinal);

        (code, _, error) = Run(["ppo", "--actor", dir.Sub("sft"), "--reward", dir.Sub("rm"), .. common, "--set", "cliprange=-1"]);
        Assert.Equal(1, code);
        Assert.Contains("cliprange", error, StringComparison.Ordinal);

        (code, _, error) = Run(["ppo", "--actor", dir.Sub("sft"), "--reward", dir.Sub("rm"), .. common, "--set", "kl_estimatr=k3"]);
        Assert.Equal(1, code);
        Assert.Contains("did you mean 'kl_estimator'", error, StringComparison.Ordinal);

        File.WriteAllLines(dir.Sub("pairs.jsonl"), ["""{"text": "no prompt here"}"""]);
        (code, _, error) = Run(["ppo", "--actor", dir.Sub("sft"), "--reward", dir.Sub("rm"), "--prompts", dir.Sub("pairs.jsonl"), "--out", dir.Sub("bad2"), .. Fast]);
        Assert.Equal(1, code);
        Assert.Contains("pairs.jsonl:1", error, StringComparison.Ordinal);
    }

    private static (int Code, string Output, string Error) Run(string[] args) => Cli.TrainCommandTests.Run(args);
}
