using System.Diagnostics;
using System.Text.RegularExpressions;
using Engine.Tests.Cli;
using Engine.Tests.Training;
using Engine.Training.Checkpoints;
using Xunit;

namespace Engine.Tests.Reliability;

/// <summary>
/// One run per output directory: a second run on the same --out is refused in one line before it touches anything, the
/// first finishes with its metrics intact, and a lock left by a killed process does not block the next run.
/// </summary>
[Trait("Category", "Training")]
[Collection("Console")]
public sealed partial class ConcurrentRunTests : IDisposable
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(60);
    private readonly TempDirectory dir = new();

    public ConcurrentRunTests() => RunFiles.Prepare(dir);

    public void Dispose() => dir.Dispose();

    [Fact]
    public void A_second_run_on_the_same_out_is_refused_and_the_first_completes_intact()
    {
        const int Steps = 1000;
        string output = dir.Sub("run");
        string[] args = RunFiles.Sft(dir, output, Steps, checkpointInterval: 100);
        using var first = CliHarness.Start(args);
        WaitForStepLine(first);

        var (code, _, error) = CliHarness.Run(args);
        Assert.Equal(1, code);
        var refusal = InUseLine().Match(error.TrimEnd());
        Assert.True(refusal.Success, error);
        Assert.Equal(output, refusal.Groups[1].Value);
        Assert.Equal(first.Id.ToString(System.Globalization.CultureInfo.InvariantCulture), refusal.Groups[2].Value);

        first.StandardOutput.ReadToEnd();
        string firstError = first.StandardError.ReadToEnd();
        Assert.True(first.WaitForExit(Patience), "the first run did not finish");
        Assert.True(first.ExitCode == 0, firstError);
        string metrics = Path.Combine(output, "metrics.jsonl");
        Assert.DoesNotContain((byte)0, File.ReadAllBytes(metrics));
        Assert.Equal(Enumerable.Range(1, Steps), RunFiles.LossSteps(metrics));
        Assert.Empty(Directory.GetFiles(output, "metrics.jsonl.bak-*"));
    }

    [Fact]
    public void A_held_directory_is_refused_before_anything_in_it_changes()
    {
        string output = dir.Sub("run");
        string[] args = RunFiles.Sft(dir, output, steps: 2, checkpointInterval: 0);
        Assert.Equal(0, CliHarness.Run(args).Code);
        var before = RunFiles.Hashes(output);
        using (RunDirectoryLock.Acquire(output))
        {
            foreach (string[] again in (string[][])[args, [.. args, "--resume"]])
            {
                var (code, _, error) = CliHarness.Run(again);
                Assert.Equal(1, code);
                Assert.StartsWith($"engine: error: {output} is in use by process {Environment.ProcessId}", error, StringComparison.Ordinal);
                Assert.Equal(before, RunFiles.Hashes(output));
            }
        }

        // Released, the directory is a normal finished run again: a resume has nothing left to do.
        var (resumed, _, resumeError) = CliHarness.Run([.. args, "--resume"]);
        Assert.True(resumed == 0, resumeError);
    }

    [Fact]
    public void A_held_pipeline_out_is_refused_before_anything_is_written()
    {
        string output = dir.Sub("pipeline");
        using (RunDirectoryLock.Acquire(output))
        {
            var (code, _, error) = CliHarness.Run(["pipeline", "--quick", "--out", output, "--threads", "2"]);
            Assert.Equal(1, code);
            Assert.Contains($"{output} is in use by process {Environment.ProcessId}", error, StringComparison.Ordinal);
        }

        Assert.Equal([RunDirectoryLock.FileName], Directory.EnumerateFileSystemEntries(output).Select(Path.GetFileName));
    }

    [Fact]
    public void The_lock_of_a_run_killed_with_sigkill_does_not_block_the_next_run()
    {
        string output = dir.Sub("run");
        using (var killed = CliHarness.Start(RunFiles.Sft(dir, output, 100_000, checkpointInterval: 0)))
        {
            WaitForStepLine(killed);
            killed.Kill();
            Assert.True(killed.WaitForExit(Patience));
            Assert.StartsWith($"pid {killed.Id}\n", File.ReadAllText(Path.Combine(output, RunDirectoryLock.FileName)), StringComparison.Ordinal);
        }

        var (code, _, error) = CliHarness.Run(RunFiles.Sft(dir, output, steps: 2, checkpointInterval: 0));
        Assert.True(code == 0, error);
        Assert.DoesNotContain("in use", error, StringComparison.Ordinal);
        Assert.Equal([1, 2], RunFiles.LossSteps(Path.Combine(output, "metrics.jsonl")));
    }

    private static void WaitForStepLine(Process process)
    {
        var clock = Stopwatch.StartNew();
        string? line;
        while ((line = process.StandardOutput.ReadLine()) is not null && !line.StartsWith("step ", StringComparison.Ordinal))
        {
            Assert.True(clock.Elapsed < Patience, $"no progress line in {Patience}");
        }

        Assert.True(line is not null, "the run ended before its first step line");
    }

    [GeneratedRegex(@"^engine: error: (\S+) is in use by process (\d+) \(started \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC\); wait for that run to end, or give another --out$")]
    private static partial Regex InUseLine();
}
