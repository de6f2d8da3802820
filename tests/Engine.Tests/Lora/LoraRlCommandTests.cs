using System.Globalization;
using System.Text.Json;
using Engine.Models;
using Engine.Models.HuggingFace;
using Engine.Models.Lora;
using Engine.Tests.Rl;
using Engine.Tests.Support;
using Engine.Tests.Training;
using Engine.Training.Rl.Memory;
using Xunit;

namespace Engine.Tests.Lora;

/// <summary><c>engine ppo --lora</c>, <c>engine dpo --online --lora</c> and <c>engine grpo --lora</c>: the actor's base is the reference, one copy of it.</summary>
[Trait("Category", "Training")]
[Collection("Console")]
public sealed class LoraRlCommandTests : IDisposable
{
    private readonly TempDirectory dir = new();

    public LoraRlCommandTests()
    {
        TinyRlModels.Write(dir.Sub("sft"), dir.Sub("rm"), dir.Sub("prompts.jsonl"), i => $"q{i}?");
    }

    public void Dispose() => dir.Dispose();

    [Fact]
    public void Ppo_with_lora_trains_the_actor_adapters_and_resumes_to_the_same_bits()
    {
        string output = dir.Sub("ppo");
        string[] args =
        [
            "ppo", "--actor", dir.Sub("sft"), "--reward", dir.Sub("rm"), "--prompts", dir.Sub("prompts.jsonl"), "--out", output,
            "--set", "max_steps=2", "--set", "batch_size=2", "--set", "response_length=4", "--set", "max_length=24", "--set", "checkpoint_interval=1",
            "--set", "learning_rate=1e-2", "--threads", "2", "--lora", "r=2,alpha=4,dropout=0",
        ];
        var (code, stdout, error) = CliRun.Engine(args);
        Assert.True(code == 0, error);
        Assert.Contains("the policy's base with adapters off", stdout, StringComparison.Ordinal);
        string final = Path.Combine(output, "final");
        Assert.True(PeftAdapter.IsAdapter(final));
        Assert.True(File.Exists(Path.Combine(final, "critic", HfCheckpoint.ConfigFile)));
        var first = File.ReadAllBytes(Path.Combine(final, PeftAdapter.WeightsFile));

        Directory.Delete(Path.Combine(output, "checkpoint-2"), recursive: true);
        Directory.Delete(final, recursive: true);
        (code, stdout, error) = CliRun.Engine([.. args, "--resume"]);
        Assert.True(code == 0, error);
        Assert.Contains("checkpoint-1", stdout, StringComparison.Ordinal);
        Assert.Equal(first, File.ReadAllBytes(Path.Combine(final, PeftAdapter.WeightsFile)));
    }

    [Fact]
    public void Ppo_with_lora_and_ref_prints_a_plan_that_counts_the_reference_weights()
    {
        var (code, stdout, error) = CliRun.Engine(
        [
            "ppo", "--actor", dir.Sub("sft"), "--reward", dir.Sub("rm"), "--ref", dir.Sub("sft"), "--prompts", dir.Sub("prompts.jsonl"), "--out", dir.Sub("ppo-ref"),
            "--set", "max_steps=1", "--set", "batch_size=2", "--set", "response_length=4", "--set", "max_length=24", "--threads", "2", "--lora", "r=2,alpha=4,dropout=0",
        ]);
        Assert.True(code == 0, error);

        // The reference loaded from --ref is resident beside the actor's base: all of its parameters in fp32.
        long parameters = Transformer.ParameterCount(HfCheckpoint.ReadConfig(dir.Sub("sft")).Model);
        string row = stdout.Split('\n').Single(l => l.StartsWith("  reference ", StringComparison.Ordinal));
        string expected = string.Create(CultureInfo.InvariantCulture, $"  {"reference",-10} {$"{parameters / 1e6:F2}M",9} {MemoryPlan.FormatBytes(parameters * 4),11} ");
        Assert.StartsWith(expected, row, StringComparison.Ordinal);
        Assert.DoesNotContain("adapters off", stdout, StringComparison.Ordinal);
        Assert.Contains("LoRA r=2", stdout, StringComparison.Ordinal);
    }

    [Fact]
    public void Online_dpo_with_lora_plans_one_base_copy_and_saves_an_adapter()
    {
        string output = dir.Sub("online");
        var (code, stdout, error) = CliRun.Engine(
        [
            "dpo", "--online", "--policy", dir.Sub("sft"), "--reward", dir.Sub("rm"), "--prompts", dir.Sub("prompts.jsonl"), "--out", output,
            "--set", "max_steps=2", "--set", "batch_size=2", "--set", "max_new_tokens=4", "--set", "samples_per_prompt=3",
            "--set", "max_length=32", "--set", "learning_rate=1e-3", "--threads", "2", "--lora", "r=2,alpha=4",
        ]);
        Assert.True(code == 0, error);
        Assert.Contains("adapters off", stdout, StringComparison.Ordinal);
        Assert.True(PeftAdapter.IsAdapter(Path.Combine(output, "final")));
    }

    [Fact]
    public void Grpo_with_lora_and_beta_uses_the_base_as_reference_and_resumes_to_the_same_bits()
    {
        string output = dir.Sub("grpo");
        string[] args =
        [
            "grpo", "--model", dir.Sub("sft"), "--prompts", dir.Sub("prompts.jsonl"), "--reward", "format:[a-m].*", "--out", output,
            "--set", "beta=0.05", "--set", "max_steps=2", "--set", "batch_size=2", "--set", "num_generations=3", "--set", "max_completion_length=4",
            "--set", "max_length=24", "--set", "checkpoint_interval=1", "--set", "learning_rate=1e-2", "--threads", "2", "--lora", "r=2,alpha=4,dropout=0",
        ];
        var (code, stdout, error) = CliRun.Engine(args);
        Assert.True(code == 0, error);
        Assert.Contains("memory plan: grpo", stdout, StringComparison.Ordinal);
        Assert.Contains("the policy's base with adapters off", stdout, StringComparison.Ordinal);
        Assert.Contains("LoRA r=2", stdout, StringComparison.Ordinal);

        // B starts at zero: the policy equals its base, so the first step's KL to the reference is exactly 0.
        var first = JsonDocument.Parse(File.ReadLines(Path.Combine(output, "metrics.jsonl")).First()).RootElement;
        Assert.Equal(0.0, first.GetProperty("kl").GetDouble());
        string final = Path.Combine(output, "final");
        Assert.True(PeftAdapter.IsAdapter(final));
        Assert.True(File.Exists(Path.Combine(final, "tokenizer.json")));
        Assert.False(File.Exists(Path.Combine(final, HfCheckpoint.WeightsFile)));
        Assert.True(PeftAdapter.IsAdapter(Path.Combine(output, "checkpoint-1")));
        var adapter = File.ReadAllBytes(Path.Combine(final, PeftAdapter.WeightsFile));

        Directory.Delete(Path.Combine(output, "checkpoint-2"), recursive: true);
        Directory.Delete(final, recursive: true);
        (code, stdout, error) = CliRun.Engine([.. args, "--resume"]);
        Assert.True(code == 0, error);
        Assert.Contains("checkpoint-1", stdout, StringComparison.Ordinal);
        Assert.Equal(adapter, File.ReadAllBytes(Path.Combine(final, PeftAdapter.WeightsFile)));
    }
}
