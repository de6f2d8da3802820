using System.Text.Json;
using Engine.Tests.Training;
using Xunit;

namespace Engine.Tests.Rl.Grpo;

/// <summary><c>engine grpo</c> end to end on a tiny GPT-2 policy with a byte-level tokenizer and format rewards.</summary>
[Trait("Category", "Training")]
[Collection("Console")]
public sealed class GrpoCommandTests : IDisposable
{
    private static readonly string[] Fast =
    [
        "--set", "max_steps=3", "--set", "batch_size=2", "--set", "num_generations=3", "--set", "max_completion_length=4", "--set", "max_length=24",
        "--set", "checkpoint_interval=1", "--set", "learning_rate=1e-3", "--threads", "2",
    ];

    private readonly TempDirectory dir = new();

    public GrpoCommandTests() => TinyRlModels.Write(dir.Sub("sft"), dir.Sub("rm"), dir.Sub("prompts.jsonl"), i => $"q{i}?");

    public void Dispose() => dir.Dispose();

    [Fact]
    public void Grpo_trains_with_format_rewards_writes_metrics_checkpoints_and_final_then_resumes()
    {
        string output = dir.Sub("grpo");
        string[] args =
        [
            "grpo", "--model", dir.Sub("sft"), "--prompts", dir.Sub("prompts.jsonl"), "--reward", "format:[a-m].*", "--reward-weights", "0.5", "--out", output, "--set", "beta=0.05", .. Fast,
        ];
        var (code, stdout, error) = Run(args);
        Assert.True(code == 0, error);
        Assert.Contains("step 3/3", stdout, StringComparison.Ordinal);
        Assert.Contains("memory plan: grpo on cpu", stdout, StringComparison.Ordinal);
        Assert.Contains("reference", stdout, StringComparison.Ordinal);
        Assert.DoesNotContain("critic", stdout, StringComparison.Ordinal);
        var lines = File.ReadAllLines(Path.Combine(output, "metrics.jsonl")).Select(l => JsonDocument.Parse(l).RootElement).ToList();
        Assert.Equal(3, lines.Count);
        Assert.All(lines, l => Assert.True(l.TryGetProperty("rewards/format/mean", out _) && l.TryGetProperty("kl", out _) && l.TryGetProperty("reward", out _)));
        Assert.True(File.Exists(Path.Combine(output, "final", "model.safetensors")));
        Assert.True(File.Exists(Path.Combine(output, "final", "tokenizer.json")));

        // Without the last checkpoint and final/, --resume continues from checkpoint-2 with the reference loaded per step.
        Directory.Delete(Path.Combine(output, "checkpoint-3"), recursive: true);
        Directory.Delete(Path.Combine(output, "final"), recursive: true);
        (code, stdout, error) = Run([.. args, "--resume", "--ref-per-rollout"]);
        Assert.True(code == 0, error);
        Assert.Contains("resumed from", stdout, StringComparison.Ordinal);
        Assert.Contains("checkpoint-2", stdout, StringComparison.Ordinal);
        Assert.DoesNotContain("step 1/3", stdout, StringComparison.Ordinal);
        Assert.Equal(3, File.ReadAllLines(Path.Combine(output, "metrics.jsonl")).Length);
    }

    [Fact]
    public void Two_format_rewards_are_named_apart_weighted_by_position_and_a_resume_must_keep_them()
    {
        string output = dir.Sub("two");
        string[] args =
        [
            "grpo", "--model", dir.Sub("sft"), "--prompts", dir.Sub("prompts.jsonl"), "--out", output, .. Fast, "--set", "max_steps=2",
            "--reward", "format:[a-m].*", "--reward", "format:.*=?", "--reward", "short=length:1", "--reward-weights", "1,0.5,0.1",
        ];
        var (code, stdout, error) = Run(args);
        Assert.True(code == 0, error);
        Assert.Contains("step 2/2", stdout, StringComparison.Ordinal);
        var lines = File.ReadAllLines(Path.Combine(output, "metrics.jsonl")).Select(l => JsonDocument.Parse(l).RootElement).ToList();
        Assert.Equal(2, lines.Count);
        foreach (var line in lines)
        {
            // ".*=?" matches every completion: the second format reward is scored (1) under its own name.
            Assert.True(line.GetProperty("rewards/format/mean").GetDouble() is >= 0 and <= 1);
            Assert.Equal(1.0, line.GetProperty("rewards/format_2/mean").GetDouble());
            Assert.True(line.GetProperty("rewards/short/mean").GetDouble() is >= -1 and <= 0);
            double total = line.GetProperty("rewards/format/mean").GetDouble() + (0.5 * line.GetProperty("rewards/format_2/mean").GetDouble())
                + (0.1 * line.GetProperty("rewards/short/mean").GetDouble());
            Assert.Equal(total, line.GetProperty("reward").GetDouble(), 5);
        }

        Directory.Delete(Path.Combine(output, "checkpoint-2"), recursive: true);
        (code, _, error) = Run([.. args[..^8], "--reward", "format:[a-m].*", "--reward", "short=length:1", "--resume"]);
        Assert.Equal(1, code);
        Assert.Contains("field 'rewards': the run had the rewards format, format_2, short, this one has format, short; resume with the same --reward list",
            error, StringComparison.Ordinal);
    }

    [Fact]
    public void Without_beta_no_reference_is_planned()
    {
        var (code, stdout, error) = Run(["grpo", "--model", dir.Sub("sft"), "--prompts", dir.Sub("prompts.jsonl"), "--reward", "format:q.*", "--out", dir.Sub("plain"), .. Fast]);
        Assert.True(code == 0, error);
        Assert.Contains("memory plan: grpo on cpu", stdout, StringComparison.Ordinal);
        Assert.DoesNotContain("reference", stdout, StringComparison.Ordinal);
    }

    [Fact]
    public void Bad_inputs_are_one_line_errors()
    {
        string[] common = ["grpo", "--model", dir.Sub("sft"), "--prompts", dir.Sub("prompts.jsonl"), "--out", dir.Sub("bad"), .. Fast];
        var (code, _, error) = Run([.. common, "--reward", "nosuch:x"]);
        Assert.Equal(1, code);
        Assert.Contains("unknown reward 'nosuch'", error, StringComparison.Ordinal);

        (code, _, error) = Run([.. common, "--reward", "format:a", "--reward-weights", "1,2"]);
        Assert.Equal(1, code);
        Assert.Contains("--reward-weights: 2 weights for 1 --reward functions", error, StringComparison.Ordinal);

        (code, _, error) = Run([.. common, "--reward", "format:a", "--reward", "format=words:0.1"]);
        Assert.Equal(1, code);
        Assert.EndsWith("--reward: 'format:a' and 'format=words:0.1' are both named 'format'; give one another name with NAME=KIND:ARGUMENT" + Environment.NewLine,
            error, StringComparison.Ordinal);

        (code, _, error) = Run([.. common, "--reward", "format:a", "--set", "num_generations=1"]);
        Assert.Equal(1, code);
        Assert.Contains("num_generations", error, StringComparison.Ordinal);

        (code, _, error) = Run([.. common, "--reward", "format:a", "--set", "loss_type=ppo"]);
        Assert.Equal(1, code);
        Assert.Contains("loss_type", error, StringComparison.Ordinal);
    }

    private static (int Code, string Output, string Error) Run(string[] args) => Cli.TrainCommandTests.Run(args);
}
