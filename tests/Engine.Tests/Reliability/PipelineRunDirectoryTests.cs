using Engine.Tests.Cli;
using Engine.Tests.Training;
using Xunit;

namespace Engine.Tests.Reliability;

/// <summary>
/// <c>engine pipeline</c> into the directory of an earlier run checks that run's options before writing anything: another
/// --seed is refused in one line naming --out and --seed, and so is a second run without --resume.
/// </summary>
[Trait("Category", "Training")]
[Collection("Console")]
public sealed class PipelineRunDirectoryTests : IDisposable
{
    private readonly TempDirectory dir = new();

    public void Dispose() => dir.Dispose();

    [Fact]
    public void Another_seed_or_a_second_run_without_resume_is_refused_before_anything_is_written()
    {
        string output = dir.Sub("pipeline");
        string[] args = ["pipeline", "--quick", "--out", output, "--threads", "2"];
        var (code, _, error) = CliHarness.Run(args);
        Assert.True(code == 0, error);
        var before = RunFiles.Hashes(output);

        (string[] Args, string Message)[] refused =
        [
            ([.. args, "--seed", "2", "--resume"], $"engine: error: {output}: --out holds a pipeline run with --seed 1, this run has --seed 2; give the same options to continue it, or another --out"),
            ([.. args, "--seed", "2"], $"engine: error: {output}: --out holds a pipeline run with --seed 1, this run has --seed 2; give the same options to continue it, or another --out"),
            (args, $"engine: error: {output}: --out holds an earlier pipeline run; continue it with --resume, or give another --out"),
        ];
        foreach (var (again, message) in refused)
        {
            var (againCode, _, againError) = CliHarness.Run(again);
            Assert.Equal(1, againCode);
            Assert.Equal(message, againError.TrimEnd());
            Assert.Equal(before, RunFiles.Hashes(output));
        }
    }
}
