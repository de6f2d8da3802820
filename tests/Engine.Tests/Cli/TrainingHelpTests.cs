using System.Text.Json;
using System.Text.RegularExpressions;
using Engine.Training.Options;
using Engine.Training.Rl.OnlineDpo;
using Engine.Training.Rl.Ppo;
using Xunit;

namespace Engine.Tests.Cli;

/// <summary>Every training command's <c>--help</c> lists every key its options record accepts, with the default and a meaning.</summary>
[Collection("Console")]
public sealed class TrainingHelpTests
{
    public static TheoryData<string, TrainerOptions> Commands => new()
    {
        { "pretrain", new PretrainOptions() },
        { "sft", new SftOptions() },
        { "rm", new TrainerOptions() },
        { "dpo", new TrainerOptions() },
        { "dpo", new OnlineDpoOptions() },
        { "kto", new TrainerOptions() },
        { "ppo", new PpoOptions() },
    };

    [Theory]
    [MemberData(nameof(Commands))]
    public void Help_lists_every_key_with_its_default(string command, TrainerOptions defaults)
    {
        var (code, help, error) = CliHarness.Run([command, "--help"]);
        Assert.True(code == 0, error);
        // An optional block left out (lora: null) is described by its keys' defaults.
        var values = JsonDocument.Parse(OptionsReader.ToJson(defaults with { Lora = new LoraOptions() })).RootElement;
        var keys = typeof(OptionsReader).GetMethod(nameof(OptionsReader.Keys))!.MakeGenericMethod(defaults.GetType()).Invoke(null, null) as IReadOnlyList<string>;
        Assert.NotEmpty(keys!);
        foreach (string key in keys!)
        {
            var value = key.Split('.').Aggregate(values, (node, part) => node.GetProperty(part));
            string shown = value.ValueKind switch
            {
                JsonValueKind.String => value.GetString()!,
                JsonValueKind.Null => "null",
                _ => value.GetRawText(),
            };
            Assert.Matches(new Regex($@"(?m)^\s+{Regex.Escape(key)}\s+{Regex.Escape(shown)}\s+\S"), help);
        }

        Assert.Contains("max_steps", help, StringComparison.Ordinal);
        Assert.Contains("0 = epochs", help, StringComparison.Ordinal);
    }

    [Fact]
    public void Every_key_has_a_description()
    {
        foreach (var defaults in new TrainerOptions[] { new SftOptions(), new PretrainOptions(), new OnlineDpoOptions(), new PpoOptions() })
        {
            Assert.All(OptionsReader.Describe(defaults), k => Assert.False(string.IsNullOrWhiteSpace(k.Description), k.Key));
        }
    }

    [Fact]
    public void Few_steps_are_warned_about_only_when_epochs_decide_them()
    {
        var options = new SftOptions { BatchSize = 4 };
        Assert.Equal(
            "this run is 3 optimizer steps (1 epoch of 3 batches of 4 rows, 4 rows and up to 4,096 tokens per step); too few for a model to learn much: raise epochs or max_steps (--set epochs=7)",
            TrainingPlan.FewStepsWarning(options, totalSteps: 3, batchesPerEpoch: 3));
        Assert.Null(TrainingPlan.FewStepsWarning(options with { MaxSteps = 3 }, 3, 3));
        Assert.Null(TrainingPlan.FewStepsWarning(options, 20, 20));
    }
}
