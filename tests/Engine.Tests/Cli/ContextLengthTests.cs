using System.Text.Json;
using Engine.Models.Tokenizers;
using Engine.Tests.Training;
using Engine.Training.Options;
using Xunit;

namespace Engine.Tests.Cli;

/// <summary>
/// A max_length left at its default follows the model: <c>engine init --preset tiny</c> (context 256) then a trainer with
/// no max_length runs at 256 with a note, saves and resumes at 256; a value the user set (--set, a TRL alias, --config)
/// beyond the context still fails naming the key.
/// </summary>
[Trait("Category", "Training")]
[Collection("Console")]
public sealed class ContextLengthTests : IDisposable
{
    private const string Note = "engine: note: max_length 256 (the model's context; the default 1024 does not fit)";

    private readonly TempDirectory dir = new();

    public ContextLengthTests()
    {
        string tokenizer = dir.Sub("tokenizer");
        Directory.CreateDirectory(tokenizer);
        BpeTrainer.ByteLevel(["<|endoftext|>"]).Save(Path.Combine(tokenizer, "tokenizer.json"));
        var (code, _, error) = CliHarness.Run(["init", "--preset", "tiny", "--tokenizer", tokenizer, "--out", Model]);
        Assert.True(code == 0, error);
        File.WriteAllLines(Data, Enumerable.Range(0, 4).Select(i => JsonSerializer.Serialize(new { prompt = $"what is {i} plus one?", completion = $" {i + 1}" })));
    }

    private string Model => dir.Sub("tiny");

    private string Data => dir.Sub("sft.jsonl");

    public void Dispose() => dir.Dispose();

    [Fact]
    public void Sft_on_the_tiny_preset_without_max_length_fits_the_context_saves_it_and_resumes()
    {
        string output = dir.Sub("sft");
        string[] sft = ["sft", "--model", Model, "--data", Data, "--out", output, "--set", "max_steps=2", "--set", "checkpoint_interval=1", "--set", "batch_size=2", "--threads", "2"];
        var (code, _, error) = CliHarness.Run(sft);
        Assert.True(code == 0, error);
        Assert.Equal(1, error.Split('\n').Count(line => line.Contains(Note, StringComparison.Ordinal)));
        var states = Directory.GetFiles(output, "trainer_state.json", SearchOption.AllDirectories);
        Assert.NotEmpty(states);
        foreach (string state in states)
        {
            using var json = JsonDocument.Parse(File.ReadAllText(state));
            Assert.Equal(256, json.RootElement.GetProperty("options").GetProperty("max_length").GetInt32());
        }

        // The same command line with --resume resolves to the same max_length: no warning that the options changed.
        Directory.Delete(Path.Combine(output, "final"), recursive: true);
        Directory.Delete(Directory.GetDirectories(output).Order(StringComparer.Ordinal).Last(), recursive: true);
        string[] resume = [.. sft, "--resume"];
        (code, string stdout, error) = CliHarness.Run(resume);
        Assert.True(code == 0, error);
        Assert.Contains("resumed from", stdout, StringComparison.Ordinal);
        Assert.False(error.Contains("differ", StringComparison.Ordinal), error);
    }

    [Fact]
    public void Pretrain_from_a_config_model_and_dpo_without_max_length_fit_the_context()
    {
        // Byte-level tokens: the four documents give more than one row of 256 + 1.
        string text = dir.Sub("text.jsonl");
        File.WriteAllLines(text, Enumerable.Range(0, 4).Select(i => JsonSerializer.Serialize(new { text = $"document {i}: " + string.Concat(Enumerable.Repeat("a few words ", 8)) })));
        var (code, _, error) = CliHarness.Run(["pretrain", "--config-model", Path.Combine(Model, "config.json"), "--data", text, "--out", dir.Sub("pt"), "--set", "max_steps=1", "--set", "batch_size=1", "--threads", "2"]);
        Assert.True(code == 0, error);
        Assert.Contains(Note, error, StringComparison.Ordinal);

        string pairs = dir.Sub("pairs.jsonl");
        File.WriteAllLines(pairs, Enumerable.Range(0, 2).Select(i => JsonSerializer.Serialize(new { prompt = $"{i} plus one is", chosen = $" {i + 1}", rejected = $" {i}" })));
        (code, _, error) = CliHarness.Run(["dpo", "--model", Model, "--data", pairs, "--out", dir.Sub("dpo"), "--loss", "simpo", "--set", "max_steps=1", "--set", "batch_size=2", "--threads", "2"]);
        Assert.True(code == 0, error);
        Assert.Contains(Note, error, StringComparison.Ordinal);
    }

    [Fact]
    public void A_grpo_refused_for_a_max_length_cut_to_the_context_says_where_it_came_from()
    {
        var (code, _, error) = CliHarness.Run(["grpo", "--model", Model, "--prompts", Data, "--reward", "words:0.1,1", "--out", dir.Sub("grpo"), "--threads", "2"]);
        Assert.Equal(1, code);
        Assert.Contains("max_length (256) must exceed max_completion_length (256)", error, StringComparison.Ordinal);
        Assert.Contains("max_length 256 (the model's context; the default 512 does not fit)", error, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("set", "max_length=512", "512")]
    [InlineData("set", "max_seq_length=300", "300")]
    [InlineData("config.yaml", "max_seq_length: 300\n", "300")]
    [InlineData("config.json", "{\"max_length\": 1024}", "1024")]
    public void A_max_length_the_user_set_beyond_the_context_is_an_error_naming_it(string how, string value, string shown)
    {
        string[] given = how == "set" ? ["--set", value] : ["--config", dir.Sub(how)];
        if (how != "set")
        {
            File.WriteAllText(dir.Sub(how), value);
        }

        var (code, _, error) = CliHarness.Run(["sft", "--model", Model, "--data", Data, "--out", dir.Sub("o"), .. given, "--threads", "2"]);
        Assert.Equal(1, code);
        Assert.Contains($"field 'max_length': {shown} exceeds the model's maximum sequence length of 256", error, StringComparison.Ordinal);
        Assert.Contains("--set max_length=256", error, StringComparison.Ordinal);
        Assert.DoesNotContain("note:", error, StringComparison.Ordinal);
    }

    [Fact]
    public void Sets_tells_a_given_key_from_a_default()
    {
        Assert.True(OptionsReader.Sets(null, ["max_length=8"], "max_length"));
        Assert.True(OptionsReader.Sets(null, [" max_seq_length = 8"], "max_length"));
        Assert.False(OptionsReader.Sets(null, ["max_steps=8", "max_length_x=1"], "max_length"));
        Assert.True(OptionsReader.Sets(null, ["optimizer.beta2=0.9"], "optimizer"));
        string yaml = dir.Sub("o.yaml");
        File.WriteAllText(yaml, "learning_rate: 1.0e-3\n");
        Assert.False(OptionsReader.Sets(yaml, [], "max_length"));
        File.WriteAllText(yaml, "max_length: 1024\n");
        Assert.True(OptionsReader.Sets(yaml, [], "max_length"));
    }

    [Fact]
    public void Fit_cuts_only_a_default_that_does_not_fit()
    {
        var notes = new List<string>();
        Assert.Equal(256, ContextLength.Fit(new SftOptions(), 256, set: false, notes.Add).MaxLength);
        Assert.Equal(1024, ContextLength.Fit(new SftOptions(), 256, set: true, notes.Add).MaxLength);
        Assert.Equal(1024, ContextLength.Fit(new SftOptions(), 2048, set: false, notes.Add).MaxLength);
        Assert.Equal(["max_length 256 (the model's context; the default 1024 does not fit)"], notes);
    }
}
