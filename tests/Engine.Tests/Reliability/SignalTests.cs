using Engine.Tests.Cli;
using Engine.Tests.Training;
using Engine.Training.Checkpoints;
using Xunit;

namespace Engine.Tests.Reliability;

/// <summary>
/// SIGTERM (what kill, timeout and schedulers send) and SIGHUP stop a run as Ctrl+C does: a checkpoint of the step
/// reached, exit 128 + the signal's number, and a --resume that ends on the bits of a run never stopped.
/// </summary>
[Trait("Category", "Training")]
[Collection("Console")]
public sealed class SignalTests : IDisposable
{
    private const int Steps = 600;
    private readonly TempDirectory dir = new();

    public SignalTests() => RunFiles.Prepare(dir);

    public void Dispose() => dir.Dispose();

    [Theory]
    [InlineData("TERM", 143)]
    [InlineData("HUP", 129)]
    public void A_stop_signal_writes_a_checkpoint_and_resume_reaches_the_bits_of_an_uninterrupted_run(string signal, int exitCode)
    {
        var (straight, _, straightError) = CliHarness.Run(RunFiles.Sft(dir, dir.Sub("straight"), Steps, checkpointInterval: 0));
        Assert.True(straight == 0, straightError);

        string output = dir.Sub("stopped");
        string[] args = RunFiles.Sft(dir, output, Steps, checkpointInterval: 0);
        var (code, _, error) = CancelCommandTests.InterruptAfter(args, line => line.StartsWith("step ", StringComparison.Ordinal), signal);
        Assert.True(code == exitCode, $"exit {code}: {error}");
        Assert.Contains($"engine: SIG{signal} received; stopping after the current step with a checkpoint", error, StringComparison.Ordinal);
        var match = CancelCommandTests.CancelledLine().Match(error);
        Assert.True(match.Success, error);
        int step = int.Parse(match.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture);
        Assert.InRange(step, 1, Steps - 1);
        Assert.Equal(step, CheckpointStore.Verify(match.Groups[2].Value).GlobalStep);
        Assert.False(Directory.Exists(Path.Combine(output, "final")));

        var (resumed, _, resumeError) = CliHarness.Run([.. args, "--resume"]);
        Assert.True(resumed == 0, resumeError);
        Assert.Equal(
            File.ReadAllBytes(Path.Combine(dir.Sub("straight"), "final", "model.safetensors")),
            File.ReadAllBytes(Path.Combine(output, "final", "model.safetensors")));
        Assert.Equal(TrainingHarness.Metrics(dir.Sub("straight")), TrainingHarness.Metrics(output));
        Assert.Empty(Directory.GetFiles(output, "*.tmp", SearchOption.AllDirectories));
    }
}
