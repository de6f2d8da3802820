using System.Diagnostics;
using System.Text.Json;
using System.Text.RegularExpressions;
using Engine.Tests.Training;
using Engine.Training.Checkpoints;
using Xunit;

namespace Engine.Tests.Cli;

/// <summary>
/// Ctrl+C end to end: the built <c>engine</c> runs as a child process, gets SIGINT after its first progress line, and
/// must exit with 130, name a checkpoint that verifies, and continue from it with <c>--resume</c>.
/// </summary>
[Trait("Category", "Training")]
[Collection("Console")]
public sealed partial class CancelCommandTests : IDisposable
{
    private const int Steps = 1500;
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(60);
    private readonly TempDirectory dir = new();

    public CancelCommandTests()
    {
        CliHarness.SaveTinyModel(dir.Sub("model"));
        File.WriteAllLines(dir.Sub("sft.jsonl"), Enumerable.Range(0, 8).Select(i => $$"""{"prompt": "q{{i}} ", "completion": "answer {{i}}"}"""));
    }

    public void Dispose() => dir.Dispose();

    [Fact]
    public void Sft_stopped_by_sigint_leaves_a_complete_checkpoint_that_resume_finishes()
    {
        // About 2 ms a step: seconds uninterrupted, so the signal lands long before the end.
        string output = dir.Sub("sft");
        string[] args =
        [
            "sft", "--model", dir.Sub("model"), "--data", dir.Sub("sft.jsonl"), "--out", output, "--set", $"max_steps={Steps}", "--set", "batch_size=2",
            "--set", "log_interval=1", "--set", "checkpoint_interval=0", "--set", "max_length=32", "--threads", "2",
        ];
        var (code, _, error) = InterruptAfter(args, line => line.StartsWith("step ", StringComparison.Ordinal));
        Assert.True(code == 130, $"exit {code}: {error}");
        var match = CancelledLine().Match(error);
        Assert.True(match.Success, error);
        int step = int.Parse(match.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture);
        string checkpoint = match.Groups[2].Value;
        Assert.InRange(step, 1, Steps - 1);
        Assert.Equal(Path.Combine(output, $"checkpoint-{step}"), checkpoint);
        Assert.Equal(step, CheckpointStore.Verify(checkpoint).GlobalStep);
        Assert.False(Directory.Exists(Path.Combine(output, "final")));

        var (resumed, stdout, resumeError) = CliHarness.Run([.. args, "--resume"]);
        Assert.True(resumed == 0, resumeError);
        Assert.Contains($"sft: {Steps} steps", stdout, StringComparison.Ordinal);
        Assert.Contains($"resumed from {checkpoint}", stdout, StringComparison.Ordinal);
        Assert.DoesNotContain($"step {step}/{Steps} ", stdout, StringComparison.Ordinal);
        Assert.True(File.Exists(Path.Combine(output, "final", "model.safetensors")));
        var steps = File.ReadAllLines(Path.Combine(output, "metrics.jsonl"))
            .Select(l => JsonDocument.Parse(l).RootElement)
            .Where(l => l.TryGetProperty("loss", out _))
            .Select(l => l.GetProperty("step").GetInt32());
        Assert.Equal(Enumerable.Range(1, Steps), steps);
    }

    [Fact]
    public void Pipeline_stopped_by_sigint_names_the_stage_checkpoint_and_resumes_from_it()
    {
        // The full-size pipeline pretrains for minutes; it is stopped in its first steps, twice.
        string output = dir.Sub("pipeline");
        string[] args = ["pipeline", "--out", output, "--threads", "2"];
        static bool Pretraining(string line) => line.StartsWith("pretrain: step ", StringComparison.Ordinal);
        var (code, _, error) = InterruptAfter(args, Pretraining);
        Assert.True(code == 130, $"exit {code}: {error}");
        var match = PipelineCancelledLine().Match(error);
        Assert.True(match.Success, error);
        string checkpoint = match.Groups[2].Value;
        Assert.Equal(Path.Combine(output, "pretrain", "checkpoint-" + match.Groups[1].Value), checkpoint);
        int step = CheckpointStore.Verify(checkpoint).GlobalStep;
        Assert.Equal(int.Parse(match.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture), step);

        // --resume continues pretraining after that step (and is stopped again).
        var (again, stdout, againError) = InterruptAfter([.. args, "--resume"], Pretraining);
        Assert.True(again == 130, $"exit {again}: {againError}");
        var first = PipelineStepLine().Match(stdout);
        Assert.True(first.Success, stdout);
        Assert.Equal(step + 1, int.Parse(first.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture));
        match = PipelineCancelledLine().Match(againError);
        Assert.True(match.Success, againError);
        Assert.True(CheckpointStore.Verify(match.Groups[2].Value).GlobalStep > step);
    }

    /// <summary>
    /// Runs the built engine, sends <paramref name="signal"/> (INT by default) once a stdout line satisfies
    /// <paramref name="trigger"/>, and waits for it to exit.
    /// </summary>
    internal static (int Code, string Output, string Error) InterruptAfter(string[] args, Func<string, bool> trigger, string signal = "INT")
    {
        using var process = CliHarness.Start(args);
        var error = process.StandardError.ReadToEndAsync();
        var output = new System.Text.StringBuilder();
        var clock = Stopwatch.StartNew();
        string? line;
        while ((line = process.StandardOutput.ReadLine()) is not null)
        {
            output.AppendLine(line);
            if (trigger(line))
            {
                CliHarness.Interrupt(process, signal);
                break;
            }

            Assert.True(clock.Elapsed < Patience, $"no progress line in {Patience}:\n{output}");
        }

        Assert.True(line is not null, $"the command ended before it was interrupted:\n{output}\n{error.Result}");
        output.Append(process.StandardOutput.ReadToEnd());
        if (!process.WaitForExit(Patience))
        {
            process.Kill();
            Assert.Fail($"still running {Patience} after SIG{signal}:\n{output}");
        }

        return (process.ExitCode, output.ToString(), error.Result);
    }

    [GeneratedRegex(@"^engine: cancelled at step (\d+); checkpoint (\S+); continue with --resume$", RegexOptions.Multiline)]
    internal static partial Regex CancelledLine();

    [GeneratedRegex(@"^engine: pipeline cancelled: pretrain stopped at step (\d+); checkpoint (\S+); continue with --resume$", RegexOptions.Multiline)]
    private static partial Regex PipelineCancelledLine();

    [GeneratedRegex(@"^pretrain: step (\d+)/", RegexOptions.Multiline)]
    private static partial Regex PipelineStepLine();
}
