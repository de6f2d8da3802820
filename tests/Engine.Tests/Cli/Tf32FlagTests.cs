using Engine.Tests.Training;
using Xunit;

namespace Engine.Tests.Cli;

/// <summary><c>--tf32</c> on every command with <c>--device</c>, and the trainers' <c>tf32</c> option.</summary>
[Collection("Console")]
public sealed class Tf32FlagTests : IDisposable
{
    private const string CpuNote = "note: --tf32 has no effect on the CPU";

    private static readonly string[] Fast =
    [
        "--set", "max_steps=1", "--set", "batch_size=2", "--set", "max_length=32", "--set", "checkpoint_interval=0", "--threads", "1",
    ];

    private static readonly string[] TinyBench =
        ["bench", "train-step", "--layers", "1", "--dim", "16", "--heads", "2", "--vocab", "31", "--seq", "8", "--batch", "1", "--steps", "1", "--warmup", "0", "--threads", "1"];

    private readonly TempDirectory dir = new();

    public Tf32FlagTests()
    {
        CliHarness.SaveTinyModel(Model);
        File.WriteAllLines(dir.Sub("sft.jsonl"), Enumerable.Range(0, 4).Select(i => $$"""{"prompt": "q{{i}} ", "completion": "answer {{i}}"}"""));
    }

    private string Model => dir.Sub("model");

    public void Dispose() => dir.Dispose();

    [Theory]
    [InlineData("pretrain")]
    [InlineData("sft")]
    [InlineData("rm")]
    [InlineData("dpo")]
    [InlineData("kto")]
    [InlineData("ppo")]
    [InlineData("grpo")]
    [InlineData("generate")]
    [InlineData("bench train-step")]
    [InlineData("pipeline")]
    [InlineData("logprobs")]
    [InlineData("score")]
    [InlineData("lora merge")]
    [InlineData("info")]
    public void Every_command_with_device_offers_tf32(string command)
    {
        var (code, stdout, error) = CliHarness.Run([.. command.Split(' '), "--help"]);
        Assert.True(code == 0, error);
        Assert.Contains("--device", stdout, StringComparison.Ordinal);
        Assert.Contains("--tf32", stdout, StringComparison.Ordinal);
    }

    [Fact]
    public void On_the_cpu_tf32_runs_and_says_it_does_nothing()
    {
        var (code, _, error) = CliHarness.Run([.. TinyBench, "--tf32"]);
        Assert.True(code == 0, error);
        Assert.Contains(CpuNote, error, StringComparison.Ordinal);

        (code, _, error) = CliHarness.Run([.. TinyBench]);
        Assert.True(code == 0, error);
        Assert.DoesNotContain("--tf32", error, StringComparison.Ordinal);
    }

    [Fact]
    [Trait("Category", "CudaEmulated")]
    public void On_the_emulated_device_the_backend_description_shows_tf32()
    {
        string? saved = Environment.GetEnvironmentVariable("ENGINE_CUDA_EMULATED");
        try
        {
            Environment.SetEnvironmentVariable("ENGINE_CUDA_EMULATED", "1");
            var (code, stdout, error) = CliHarness.Run([.. TinyBench, "--device", "cuda", "--tf32"]);
            Assert.True(code == 0, error);
            Assert.Contains(", TF32)", stdout, StringComparison.Ordinal);
            Assert.DoesNotContain(CpuNote, error, StringComparison.Ordinal);

            (code, stdout, error) = CliHarness.Run([.. TinyBench, "--device", "cuda"]);
            Assert.True(code == 0, error);
            Assert.DoesNotContain("TF32", stdout, StringComparison.Ordinal);
        }
        finally
        {
            Environment.SetEnvironmentVariable("ENGINE_CUDA_EMULATED", saved);
        }
    }

    [Fact]
    public void A_trainer_takes_tf32_from_the_flag_set_or_config()
    {
        File.WriteAllText(dir.Sub("config.yaml"), "tf32: true\n");
        string[][] ways = [["--tf32"], ["--set", "tf32=true"], ["--config", dir.Sub("config.yaml")]];
        foreach (var (way, i) in ways.Select((w, i) => (w, i)))
        {
            var (code, _, error) = CliHarness.Run(["sft", "--model", Model, "--data", dir.Sub("sft.jsonl"), "--out", dir.Sub($"out{i}"), .. Fast, .. way]);
            Assert.True(code == 0, error);
            Assert.Contains(CpuNote, error, StringComparison.Ordinal);
        }

        var (plain, _, plainError) = CliHarness.Run(["sft", "--model", Model, "--data", dir.Sub("sft.jsonl"), "--out", dir.Sub("plain"), .. Fast]);
        Assert.True(plain == 0, plainError);
        Assert.DoesNotContain(CpuNote, plainError, StringComparison.Ordinal);
    }

    [Fact]
    public void An_invalid_tf32_value_is_a_clear_options_error()
    {
        var (code, _, error) = CliHarness.Run(["sft", "--model", Model, "--data", dir.Sub("sft.jsonl"), "--out", dir.Sub("bad"), .. Fast, "--set", "tf32=maybe"]);
        Assert.Equal(1, code);
        Assert.Contains("tf32", error, StringComparison.Ordinal);
        Assert.Single(error.Trim().Split('\n'));
    }
}
