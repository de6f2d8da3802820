using System.Text.Json;
using Engine.Models.Tokenizers;
using Engine.Tests.Training;
using Engine.Training.Options;
using Engine.Training.Rl.Grpo;
using Engine.Training.Rl.OnlineDpo;
using Engine.Training.Rl.Ppo;
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
    public void Grpo_on_the_tiny_preset_with_its_defaults_halves_the_completion_length_saves_both_and_resumes()
    {
        // Only --model, --prompts, --reward and max_steps: max_length 512 → 256 (the context), max_completion_length 256 → 128.
        string prompts = dir.Sub("prompts.jsonl");
        File.WriteAllLines(prompts, Enumerable.Range(0, 8).Select(i => JsonSerializer.Serialize(new { prompt = $"what is {i} plus one?" })));
        string output = dir.Sub("grpo");
        string[] grpo = ["grpo", "--model", Model, "--prompts", prompts, "--reward", "format:[0-9].*", "--out", output, "--set", "max_steps=2", "--set", "checkpoint_interval=1", "--threads", "2"];
        var (code, stdout, error) = CliHarness.Run(grpo);
        Assert.True(code == 0, error);
        Assert.Contains("step 2/2", stdout, StringComparison.Ordinal);
        Assert.Equal(1, error.Split('\n').Count(line => line.Contains(
            "engine: note: max_length 256 (the model's context; the default 512 does not fit), max_completion_length 128 (half of max_length; the default 256 leaves no room for a prompt)",
            StringComparison.Ordinal)));
        foreach (string state in Directory.GetFiles(output, "trainer_state.json", SearchOption.AllDirectories))
        {
            using var json = JsonDocument.Parse(File.ReadAllText(state));
            Assert.Equal(256, json.RootElement.GetProperty("options").GetProperty("max_length").GetInt32());
            Assert.Equal(128, json.RootElement.GetProperty("options").GetProperty("max_completion_length").GetInt32());
        }

        // The same command line with --resume resolves to the same lengths: no warning that the options changed.
        Directory.Delete(Path.Combine(output, "final"), recursive: true);
        Directory.Delete(Path.Combine(output, "checkpoint-2"), recursive: true);
        (code, stdout, error) = CliHarness.Run([.. grpo, "--resume"]);
        Assert.True(code == 0, error);
        Assert.Contains("resumed from", stdout, StringComparison.Ordinal);
        Assert.False(error.Contains("differ", StringComparison.Ordinal), error);
    }

    [Theory]
    [InlineData("max_completion_length=256", "max_length (256) must exceed max_completion_length (256)", "max_length 256 (the model's context; the default 512 does not fit)")]
    [InlineData("max_completion_length=300", "max_length (256) must exceed max_completion_length (300)", "max_length 256 (the model's context; the default 512 does not fit)")]
    [InlineData("max_length=64", "max_length (64) must exceed max_completion_length (64)", null)]
    public void A_grpo_with_a_completion_length_the_user_set_that_leaves_no_prompt_is_refused_naming_it(string set, string message, string? note)
    {
        // max_length=64 set with max_completion_length=64 set: both the user's, neither changed.
        string[] more = set.StartsWith("max_length", StringComparison.Ordinal) ? ["--set", "max_completion_length=64"] : [];
        var (code, _, error) = CliHarness.Run(["grpo", "--model", Model, "--prompts", Data, "--reward", "words:0.1,1", "--out", dir.Sub("grpo"), "--set", set, .. more, "--threads", "2"]);
        Assert.Equal(1, code);
        Assert.Contains(message, error, StringComparison.Ordinal);
        Assert.DoesNotContain("half of max_length", error, StringComparison.Ordinal);
        if (note is not null)
        {
            Assert.Contains(note, error, StringComparison.Ordinal);
        }
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
        Func<string, bool> none = _ => false, all = _ => true;
        Assert.Equal(256, ContextLength.Fit(new SftOptions(), 256, none, notes.Add).MaxLength);
        Assert.Equal(1024, ContextLength.Fit(new SftOptions(), 256, all, notes.Add).MaxLength);
        Assert.Equal(1024, ContextLength.Fit(new SftOptions(), 2048, none, notes.Add).MaxLength);
        Assert.Equal(["max_length 256 (the model's context; the default 1024 does not fit)"], notes);
    }

    [Fact]
    public void Fit_halves_a_default_generated_length_that_leaves_no_prompt_in_every_sampling_trainer()
    {
        var notes = new List<string>();
        Func<string, bool> none = _ => false;

        // GRPO: 512 → 256 (context), then 256 → 128. PPO's 53 and online DPO's 64 only in a context of 32 (SaveTinyModel's).
        var grpo = ContextLength.Fit(new GrpoOptions(), 256, none, notes.Add, GrpoOptions.Completion);
        Assert.Equal((256, 128), (grpo.MaxLength, grpo.MaxCompletionLength));
        Assert.Equal(53, ContextLength.Fit(new PpoOptions(), 256, none, notes.Add, PpoOptions.Response).ResponseLength);
        var ppo = ContextLength.Fit(new PpoOptions(), 32, none, notes.Add, PpoOptions.Response);
        Assert.Equal((32, 16), (ppo.MaxLength, ppo.ResponseLength));
        var online = ContextLength.Fit(new OnlineDpoOptions(), 32, none, notes.Add, OnlineDpoOptions.Response);
        Assert.Equal((32, 16), (online.MaxLength, online.MaxNewTokens));
        Assert.Equal(
            [
                "max_length 256 (the model's context; the default 512 does not fit), max_completion_length 128 (half of max_length; the default 256 leaves no room for a prompt)",
                "max_length 256 (the model's context; the default 512 does not fit)",
                "max_length 32 (the model's context; the default 512 does not fit), response_length 16 (half of max_length; the default 53 leaves no room for a prompt)",
                $"max_length 32 (the model's context; the default {new OnlineDpoOptions().MaxLength} does not fit), max_new_tokens 16 (half of max_length; the default 64 leaves no room for a prompt)",
            ],
            notes);

        // A max_length the user set below the default completion halves the completion alone; a completion the user set is kept.
        notes.Clear();
        var set = ContextLength.Fit(new GrpoOptions { MaxLength = 100 }, 256, key => key == "max_length", notes.Add, GrpoOptions.Completion);
        Assert.Equal((100, 50), (set.MaxLength, set.MaxCompletionLength));
        Assert.Equal(["max_completion_length 50 (half of max_length; the default 256 leaves no room for a prompt)"], notes);
        var kept = ContextLength.Fit(new GrpoOptions(), 256, key => key == "max_completion_length", notes.Add, GrpoOptions.Completion);
        Assert.Equal((256, 256), (kept.MaxLength, kept.MaxCompletionLength));
    }
}
