using System.Text.Json;
using Engine.Core.Cpu;
using Engine.Models;
using Engine.Models.HuggingFace;
using Engine.Models.Tokenizers;
using Engine.Tests.Support;
using Engine.Tests.Training;
using Xunit;

namespace Engine.Tests.Rl;

/// <summary><c>engine dpo --online</c> end to end on a tiny GPT-2, a byte-level tokenizer and a random reward model.</summary>
[Trait("Category", "Training")]
[Collection("Console")]
public sealed class OnlineDpoCliTests : IDisposable
{
    private static readonly string[] Fast =
    [
        "--set", "max_steps=2", "--set", "batch_size=2", "--set", "log_interval=1", "--set", "max_new_tokens=4", "--set", "samples_per_prompt=3",
        "--set", "max_length=32", "--set", "learning_rate=1e-3", "--threads", "2",
    ];

    private readonly TempDirectory dir = new();

    public OnlineDpoCliTests()
    {
        TinyRlModels.Write(Policy, Reward, dir.Sub("prompts.jsonl"), i => $"question {i}:");
    }

    private string Policy => dir.Sub("policy");

    private string Reward => dir.Sub("rm");

    public void Dispose() => dir.Dispose();

    [Fact]
    public void Dpo_online_prints_the_memory_plan_trains_and_saves()
    {
        string output = dir.Sub("online");
        var (code, stdout, stderr) = CliRun.Engine(
        [
            "dpo", "--online", "--policy", Policy, "--reward", Reward, "--prompts", dir.Sub("prompts.jsonl"), "--out", output, "--beta", "0.2", .. Fast,
        ]);
        Assert.True(code == 0, stderr);
        Assert.Contains("memory plan: online-dpo on cpu: rollout 6 × (prompt", stdout, StringComparison.Ordinal);
        Assert.Contains("step 2/2", stdout, StringComparison.Ordinal);
        Assert.Contains("online dpo: ", stdout, StringComparison.Ordinal);
        var lines = File.ReadAllLines(Path.Combine(output, "metrics.jsonl")).Select(l => JsonDocument.Parse(l).RootElement).ToList();
        Assert.Equal(2, lines.Count);
        Assert.All(lines, l => Assert.True(double.IsFinite(l.GetProperty("objective/scores").GetDouble())));
        Assert.True(File.Exists(Path.Combine(output, "final", "config.json")));
        using var state = JsonDocument.Parse(File.ReadAllText(Path.Combine(output, "checkpoint-2", "trainer_state.json")));
        Assert.Equal(0.2, state.RootElement.GetProperty("options").GetProperty("dpo").GetProperty("beta").GetDouble(), 6);
    }

    [Theory]
    [InlineData("no-reward", "--online needs --reward")]
    [InlineData("precompute", "--precompute-ref and --eval-data do not apply")]
    [InlineData("reward-offline", "--reward applies to --online only")]
    [InlineData("samples", "samples_per_prompt must be at least 2")]
    [InlineData("lm-reward", "has no scalar (reward) head")]
    [InlineData("not-prompts", "text.jsonl:1")]
    public void Bad_online_flags_are_one_line_errors(string kind, string message)
    {
        File.WriteAllText(dir.Sub("text.jsonl"), """{"text": "no prompt here"}""" + "\n");
        string[] common = ["dpo", "--policy", Policy, "--prompts", dir.Sub("prompts.jsonl"), "--out", dir.Sub("bad-" + kind)];
        string[] args = kind switch
        {
            "no-reward" => [.. common, "--online"],
            "precompute" => [.. common, "--online", "--reward", Reward, "--precompute-ref"],
            "reward-offline" => [.. common, "--reward", Reward],
            "samples" => [.. common, "--online", "--reward", Reward, "--set", "samples_per_prompt=1"],
            "lm-reward" => [.. common, "--online", "--reward", Policy, .. Fast],
            _ => ["dpo", "--online", "--policy", Policy, "--reward", Reward, "--prompts", dir.Sub("text.jsonl"), "--out", dir.Sub("bad-text"), "--set", "max_new_tokens=4"],
        };
        var (code, _, stderr) = CliRun.Engine(args);
        Assert.Equal(1, code);
        Assert.StartsWith("engine: error:", stderr.Trim(), StringComparison.Ordinal);
        Assert.Contains(message, stderr, StringComparison.Ordinal);
        Assert.DoesNotContain('\n', stderr.Trim());
    }
}
