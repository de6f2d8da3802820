using System.Text.Json.Nodes;
using Engine.Tests.Cli;
using Engine.Tests.Training;
using Xunit;

namespace Engine.Tests.Reliability;

/// <summary>
/// What a run finds in its output directory: metrics of an earlier run never lost (rewound with a backup, damaged lines
/// named), hostile or damaged trainer_state.json refused in one line without touching anything, a checkpoint of another
/// model refused, and temporaries of an interrupted save swept.
/// </summary>
[Trait("Category", "Training")]
[Collection("Console")]
public sealed class RunDirectoryTests : IDisposable
{
    private readonly TempDirectory dir = new();

    public RunDirectoryTests() => RunFiles.Prepare(dir);

    public void Dispose() => dir.Dispose();

    // A finished tiny SFT run in run/: its directory and arguments.
    private (string Output, string[] Args) Finished(int steps, int checkpointInterval)
    {
        string output = dir.Sub("run");
        string[] args = RunFiles.Sft(dir, output, steps, checkpointInterval);
        var (code, _, error) = CliHarness.Run(args);
        Assert.True(code == 0, error);
        return (output, args);
    }

    [Fact]
    public void Resume_keeps_every_parsable_metrics_line_up_to_the_checkpoint_and_backs_up_the_file()
    {
        var (output, args) = Finished(steps: 8, checkpointInterval: 4);

        // As if killed after step 8's metrics line but before its checkpoint, with line 2 written over.
        Directory.Delete(Path.Combine(output, "checkpoint-8"), recursive: true);
        Directory.Delete(Path.Combine(output, "final"), recursive: true);
        string metrics = Path.Combine(output, "metrics.jsonl");
        var lines = File.ReadAllLines(metrics);
        lines[1] = "\0\0\0{\"step\": 2, \"lo";
        File.WriteAllLines(metrics, lines);
        byte[] before = File.ReadAllBytes(metrics);

        var (code, _, error) = CliHarness.Run([.. args, "--resume"]);
        Assert.True(code == 0, error);
        Assert.Contains($"{metrics}:2: not a JSON metrics object; dropped", error, StringComparison.Ordinal);
        Assert.Contains("dropped 4 after it", error, StringComparison.Ordinal);
        Assert.Equal(before, File.ReadAllBytes(RunFiles.SingleBackup(metrics)));
        Assert.Equal([1, 3, 4, 5, 6, 7, 8], RunFiles.LossSteps(metrics));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void A_run_that_starts_afresh_moves_an_earlier_metrics_file_aside(bool resume)
    {
        string output = dir.Sub("run");
        Directory.CreateDirectory(output);
        string metrics = Path.Combine(output, "metrics.jsonl");
        File.WriteAllLines(metrics, ["{\"step\": 1, \"loss\": 5}", "{\"step\": 2, \"loss\": 4}"]);
        byte[] before = File.ReadAllBytes(metrics);

        string[] args = RunFiles.Sft(dir, output, steps: 2, checkpointInterval: 0);
        var (code, _, error) = CliHarness.Run(resume ? [.. args, "--resume"] : args);
        Assert.True(code == 0, error);
        string backup = RunFiles.SingleBackup(metrics);
        Assert.Contains($"is moved to {backup}", error, StringComparison.Ordinal);
        Assert.Equal(before, File.ReadAllBytes(backup));
        Assert.Equal([1, 2], RunFiles.LossSteps(metrics));
    }

    public static TheoryData<string, string> HostileStates => new()
    {
        { "files", """{"../model/config.json": {"size": 1, "sha256": "00"}}""" },
        { "files", """{"/dev/zero": {"size": 1, "sha256": "00"}}""" },
        { "rng_state", "[1]" },
        { "global_step", "99" },
        { "log_history", "[" + string.Join(",", Enumerable.Repeat("{}", 2000)) + "]" },
    };

    [Theory]
    [MemberData(nameof(HostileStates))]
    public void A_hostile_trainer_state_is_refused_in_one_line_and_nothing_changes(string field, string value)
    {
        var (output, args) = Finished(steps: 2, checkpointInterval: 0);
        string stateFile = Path.Combine(output, "checkpoint-2", "trainer_state.json");
        var state = JsonNode.Parse(File.ReadAllText(stateFile))!.AsObject();
        if (field == "files")
        {
            foreach (var (name, digest) in JsonNode.Parse(value)!.AsObject().ToList())
            {
                state["files"]![name] = digest!.DeepClone();
            }
        }
        else
        {
            state[field] = JsonNode.Parse(value);
        }

        File.WriteAllText(stateFile, state.ToJsonString());
        var before = RunFiles.Hashes(output);

        var (code, _, error) = CliHarness.Run([.. args, "--resume"]);
        Assert.Equal(1, code);
        Assert.Contains($"{stateFile}: field '{field}': ", error, StringComparison.Ordinal);
        Assert.EndsWith("no complete checkpoint to resume from (each is named in a warning above, with what is wrong)", error.TrimEnd(), StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", error, StringComparison.Ordinal);
        Assert.Equal(before, RunFiles.Hashes(output));
    }

    [Fact]
    public void A_checkpoint_with_a_path_outside_it_is_skipped_for_the_older_good_one()
    {
        var (output, args) = Finished(steps: 4, checkpointInterval: 2);
        string stateFile = Path.Combine(output, "checkpoint-4", "trainer_state.json");
        var state = JsonNode.Parse(File.ReadAllText(stateFile))!.AsObject();
        state["files"]!["../../sft.jsonl"] = JsonNode.Parse("""{"size": 1, "sha256": "00"}""");
        File.WriteAllText(stateFile, state.ToJsonString());

        var (code, stdout, error) = CliHarness.Run([.. args, "--resume"]);
        Assert.True(code == 0, error);
        Assert.Contains($"skipping damaged checkpoint {Path.Combine(output, "checkpoint-4")}, trying an older one: {stateFile}: field 'files': '../../sft.jsonl' points outside", error, StringComparison.Ordinal);
        Assert.Contains($"resumed from {Path.Combine(output, "checkpoint-2")}", stdout, StringComparison.Ordinal);
    }

    [Fact]
    public void Resuming_with_a_model_of_another_architecture_is_one_line_and_changes_nothing()
    {
        var (output, args) = Finished(steps: 2, checkpointInterval: 0);
        CliHarness.SaveTinyModel(dir.Sub("deeper"), layers: 2);
        var before = RunFiles.Hashes(output);
        args[Array.IndexOf(args, "--model") + 1] = dir.Sub("deeper");
        var (code, _, error) = CliHarness.Run([.. args, "--resume"]);
        Assert.Equal(1, code);
        Assert.StartsWith($"engine: error: {Path.Combine(output, "checkpoint-2", "optimizer.safetensors")}: field 'parameter_layout': ", error, StringComparison.Ordinal);
        Assert.Single(error.TrimEnd().Split('\n'));
        Assert.Equal(before, RunFiles.Hashes(output));
    }

    [Fact]
    public void Temporaries_of_an_interrupted_save_are_removed_at_the_next_start_with_a_line_saying_so()
    {
        var (output, args) = Finished(steps: 4, checkpointInterval: 2);
        Directory.Delete(Path.Combine(output, "checkpoint-4"), recursive: true);
        string guid = Guid.NewGuid().ToString("N");
        string[] leftovers =
        [
            Path.Combine(output, $".tmp-checkpoint-4-{guid}", "model.safetensors"),
            Path.Combine(output, $"latest.{guid}.tmp"),
            Path.Combine(output, $"metrics.jsonl.{guid}.tmp"),
            Path.Combine(output, "final", $"model.safetensors.{guid}.tmp"),
        ];
        foreach (string file in leftovers)
        {
            Directory.CreateDirectory(Path.GetDirectoryName(file)!);
            File.WriteAllText(file, "partial");
        }

        string mine = Path.Combine(output, "notes.tmp");
        File.WriteAllText(mine, "not a save's temporary");

        var (code, _, error) = CliHarness.Run([.. args, "--resume"]);
        Assert.True(code == 0, error);
        Assert.Contains("removed 4 temporary file(s) left by an interrupted save", error, StringComparison.Ordinal);
        Assert.All(leftovers, f => Assert.False(File.Exists(f), f));
        Assert.False(Directory.Exists(Path.GetDirectoryName(leftovers[0])));
        Assert.True(File.Exists(mine));
        Assert.Equal([mine], Directory.GetFiles(output, "*.tmp", SearchOption.AllDirectories));
    }
}
