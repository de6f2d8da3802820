using System.Text.Json;
using Engine.Cli.Bench;
using Engine.Cli.Commands;
using Engine.Core.Cpu;
using Engine.Models;
using Xunit;

namespace Engine.Tests.Cli;

[Collection("Console")]
public class BenchCommandTests
{
    [Theory]
    [InlineData(Architecture.Gpt2, 0)]
    [InlineData(Architecture.Llama, 2)]
    public void Train_step_benchmark_trains_and_reports(Architecture arch, int kvHeads)
    {
        var options = new TrainStepOptions
        {
            Architecture = arch, Layers = 2, Channels = 32, Heads = 4, KvHeads = kvHeads, Vocab = 97, Sequence = 16, Batch = 2, Steps = 6, Warmup = 1,
        };
        using var backend = new CpuBackend(2);
        var result = TrainStepBenchmark.Run(options, backend);

        Assert.Equal(6, result.StepMilliseconds.Count);
        Assert.True(result.MillisecondsPerStep > 0);
        Assert.Equal(32 / (result.MillisecondsPerStep / 1000.0), result.TokensPerSecond, 6);
        // The same batch every step: AdamW must drive its loss down from about ln(V).
        Assert.InRange(result.Losses[0], Math.Log(97) - 0.5, Math.Log(97) + 0.5);
        Assert.True(result.Losses[^1] < result.Losses[0] - 0.05, $"loss went {result.Losses[0]} -> {result.Losses[^1]}");
        Assert.Contains(result.OpTable, r => r.Op == OpKind.Matmul && r.Backward);
        Assert.Contains(result.OpTable, r => r.Op == OpKind.Attention && !r.Backward);

        using var doc = JsonDocument.Parse(BenchCommand.ToJson(options, result));
        Assert.True(doc.RootElement.GetProperty("ms_per_step").GetDouble() > 0);
        Assert.True(doc.RootElement.GetProperty("tokens_per_second").GetDouble() > 0);
    }

    [Fact]
    public void The_gradient_checkpointing_flag_recomputes_with_the_same_losses_and_a_smaller_plan()
    {
        var options = new TrainStepOptions { Layers = 3, Channels = 32, Heads = 4, Vocab = 97, Sequence = 16, Batch = 2, Steps = 2, Warmup = 1 };
        using var backend = new CpuBackend(2);
        var plain = TrainStepBenchmark.Run(options, backend);
        var recomputed = TrainStepBenchmark.Run(options with { GradientCheckpointing = true }, backend);
        Assert.Equal(plain.Losses, recomputed.Losses);
        Assert.True(recomputed.ActivationBytes < plain.ActivationBytes, $"{recomputed.ActivationBytes} vs {plain.ActivationBytes} bytes");
        using var doc = JsonDocument.Parse(BenchCommand.ToJson(options with { GradientCheckpointing = true }, recomputed));
        Assert.True(doc.RootElement.GetProperty("gradient_checkpointing").GetBoolean());
        Assert.Equal(recomputed.ActivationBytes, doc.RootElement.GetProperty("activation_bytes").GetInt64());
    }

    [Fact]
    public void Bad_arguments_give_one_line_and_exit_code_1()
    {
        var error = new StringWriter();
        var saved = Console.Error;
        Console.SetError(error);
        try
        {
            int code = Engine.Cli.Program.Main(["bench", "train-step", "--heads", "3", "--dim", "32", "--layers", "1", "--vocab", "10", "--seq", "4", "--batch", "1", "--steps", "1"]);
            Assert.Equal(1, code);
        }
        finally
        {
            Console.SetError(saved);
        }

        string text = error.ToString().Trim();
        Assert.StartsWith("engine: error:", text);
        Assert.Contains("--heads: 3 must divide --dim (32)", text);
        Assert.DoesNotContain("\n", text);
    }
}
