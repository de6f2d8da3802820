using System.Text.Json;
using Engine.Tests.Cli;
using Engine.Tests.Training;
using Xunit;

namespace Engine.Tests.Objectives.Preference;

/// <summary><c>engine dpo --loss …</c> with the preference family and <c>engine kto</c>, end to end on a tiny GPT-2.</summary>
[Trait("Category", "Training")]
[Collection("Console")]
public sealed class PreferenceCommandTests : IDisposable
{
    private static readonly string[] Fast =
    [
        "--set", "max_steps=2", "--set", "batch_size=2", "--set", "log_interval=1", "--set", "checkpoint_interval=1",
        "--set", "max_length=32", "--set", "learning_rate=1e-3", "--threads", "2",
    ];

    private readonly TempDirectory dir = new();

    private readonly PreferenceFiles files;

    public PreferenceCommandTests() => files = new PreferenceFiles(dir).Write();

    private string Model => files.Model;

    private string Pairs => files.Pairs;

    private string Unpaired => files.Unpaired;

    public void Dispose() => dir.Dispose();

    [Fact]
    public void Simpo_needs_no_reference_and_refuses_one()
    {
        string output = dir.Sub("simpo");
        var (code, _, error) = CliHarness.Run(["dpo", "--model", Model, "--data", Pairs, "--out", output, "--loss", "simpo", "--beta", "2", .. Fast]);
        Assert.True(code == 0, error);
        Assert.Contains(Metrics(output), l => l.TryGetProperty("rewards/margins", out _) && l.TryGetProperty("logps/chosen", out _));

        (code, _, error) = CliHarness.Run(["dpo", "--model", Model, "--data", Pairs, "--out", dir.Sub("simpo-ref"), "--loss", "simpo", "--ref", Model, .. Fast]);
        Assert.Equal(1, code);
        Assert.Contains("--loss simpo is reference-free", error, StringComparison.Ordinal);
    }

    [Fact]
    public void A_weighted_loss_list_logs_each_term_and_resumes_the_bco_baseline()
    {
        string output = dir.Sub("mpo");
        string[] args = ["dpo", "--model", Model, "--data", Pairs, "--out", output, "--loss", "sigmoid,bco_pair,sft", "--loss-weights", "0.8,0.2,1.0", .. Fast, "--set", "max_steps=3"];
        var (code, _, error) = CliHarness.Run(args);
        Assert.True(code == 0, error);
        var last = Metrics(output).Last(l => l.TryGetProperty("loss", out _));
        foreach (string key in new[] { "loss/sigmoid", "loss/bco_pair", "loss/sft", "nll_loss", "bco_baseline", "rewards/accuracies" })
        {
            Assert.True(last.TryGetProperty(key, out _), $"metrics.jsonl has no {key}");
        }

        using (var state = JsonDocument.Parse(File.ReadAllText(Path.Combine(output, "checkpoint-3", "trainer_state.json"))))
        {
            Assert.Equal(3.0, state.RootElement.GetProperty("objective_state").GetProperty("bco_reward_count").GetDouble());
        }

        // Step 3 again from checkpoint-2: the running baseline must come back from the checkpoint (a fresh one would
        // average one micro-batch instead of three).
        double baseline = last.GetProperty("bco_baseline").GetDouble();
        Directory.Delete(Path.Combine(output, "checkpoint-3"), recursive: true);
        Directory.Delete(Path.Combine(output, "final"), recursive: true);
        (code, _, error) = CliHarness.Run([.. args, "--resume"]);
        Assert.True(code == 0, error);
        Assert.Equal(baseline, Metrics(output).Last(l => l.TryGetProperty("loss", out _)).GetProperty("bco_baseline").GetDouble());
    }

    [Fact]
    public void Kto_trains_on_unpaired_data_and_logs_the_kl_baseline()
    {
        string output = dir.Sub("kto");
        var (code, _, error) = CliHarness.Run(["kto", "--model", Model, "--data", Unpaired, "--out", output, "--undesirable-weight", "1.5", .. Fast]);
        Assert.True(code == 0, error);
        Assert.Contains(Metrics(output), l => l.TryGetProperty("kl", out _) && l.TryGetProperty("rewards/chosen", out _));
        Assert.True(File.Exists(Path.Combine(output, "final", "config.json")));
    }

    [Theory]
    [InlineData("dpo", "--loss", "sigmoid,nope", "--loss: unknown loss 'nope'")]
    [InlineData("dpo", "--loss-weights", "1,2", "--loss-weights: 2 weights for 1 losses")]
    [InlineData("dpo", "--loss", "kto", "use engine kto")]
    [InlineData("dpo", "--loss", "exo_pair,exo_pair", "names a loss twice")]
    [InlineData("kto", "--undesirable-weight", "-1", "--undesirable-weight")]
    public void Bad_flags_are_one_line_naming_the_flag(string command, string flag, string value, string expected)
    {
        string data = command == "kto" ? Unpaired : Pairs;
        var (code, _, error) = CliHarness.Run([command, "--model", Model, "--data", data, "--out", dir.Sub("bad"), flag, value, .. Fast]);
        Assert.Equal(1, code);
        Assert.Contains(expected, error, StringComparison.Ordinal);
        Assert.DoesNotContain("\n", error.Trim(), StringComparison.Ordinal);
    }

    [Fact]
    public void Kto_on_preference_pairs_names_the_file_and_line()
    {
        var (code, _, error) = CliHarness.Run(["kto", "--model", Model, "--data", Pairs, "--out", dir.Sub("kto-pairs"), .. Fast]);
        Assert.Equal(1, code);
        Assert.Contains("pairs.jsonl:1", error, StringComparison.Ordinal);
        Assert.Contains("prompt/completion/label", error, StringComparison.Ordinal);
    }

    private static List<JsonElement> Metrics(string output) =>
        [.. File.ReadAllLines(Path.Combine(output, "metrics.jsonl")).Select(l => JsonDocument.Parse(l).RootElement)];
}
