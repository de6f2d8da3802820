using System.Text.Json;
using Engine.Tests.Cli;
using Engine.Tests.Training;
using Xunit;

namespace Engine.Tests.Objectives.Preference;

/// <summary><c>engine pipeline --stages simpo,orpo,kto</c>: the optional stages join the evaluation table after the default six.</summary>
[Trait("Category", "Training")]
[Collection("Console")]
public sealed class PreferencePipelineTests : IDisposable
{
    private readonly TempDirectory dir = new();

    public void Dispose() => dir.Dispose();

    [Fact]
    public void Quick_run_with_optional_stages_evaluates_them_after_the_default_seven()
    {
        string output = dir.Sub("pipeline");
        var (code, stdout, error) = CliHarness.Run(["pipeline", "--quick", "--out", output, "--seed", "3", "--threads", "2", "--stages", "simpo,orpo,kto"]);
        Assert.True(code == 0, $"exit {code}: {error}\n{stdout}");
        using var summary = JsonDocument.Parse(File.ReadAllText(Path.Combine(output, "summary.json")));
        var stages = summary.RootElement.GetProperty("stages").EnumerateArray().ToList();
        Assert.Equal<string>(
            ["pretrain", "sft", "rm", "ppo", "dpo", "online_dpo", "grpo", "simpo", "orpo", "kto"], [.. stages.Select(s => s.GetProperty("stage").GetString()!)]);
        foreach (var stage in stages.Skip(7))
        {
            Assert.InRange(stage.GetProperty("accuracy").GetDouble(), 0.0, 1.0);
            Assert.Equal(JsonValueKind.Number, stage.GetProperty("kl_to_sft").ValueKind);
        }
    }

    [Fact]
    public void An_unknown_stage_is_one_line_naming_the_flag()
    {
        var (code, _, error) = CliHarness.Run(["pipeline", "--quick", "--out", dir.Sub("bad"), "--stages", "simpo,ipo"]);
        Assert.Equal(1, code);
        Assert.Contains("--stages: unknown stage 'ipo'", error, StringComparison.Ordinal);
        Assert.False(Directory.Exists(dir.Sub("bad")));
    }
}
