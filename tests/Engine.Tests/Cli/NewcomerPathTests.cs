using System.Text.Json;
using Engine.Models.Chat;
using Engine.Models.HuggingFace;
using Engine.Models.Tokenizers;
using Engine.Tests.Training;
using Xunit;

namespace Engine.Tests.Cli;

/// <summary>
/// The path a newcomer takes: <c>engine init</c> → <c>engine sft</c> on chats with <c>--chat-template</c> →
/// <c>engine generate --chat</c> with no template flag (the checkpoint carries it), and the warnings and errors met on the way.
/// </summary>
[Trait("Category", "Training")]
[Collection("Console")]
public sealed class NewcomerPathTests : IDisposable
{
    private readonly TempDirectory dir = new();

    public NewcomerPathTests()
    {
        Directory.CreateDirectory(Tokenizer);
        BpeTrainer.ByteLevel(["<|endoftext|>", "<|im_start|>", "<|im_end|>"]).Save(Path.Combine(Tokenizer, "tokenizer.json"));
        File.WriteAllLines(Chats, Enumerable.Range(0, 6).Select(i => JsonSerializer.Serialize(new
        {
            messages = new[] { new { role = "user", content = $"what is {i} plus one?" }, new { role = "assistant", content = $"{i + 1}" } },
        })));
    }

    private string Tokenizer => dir.Sub("tokenizer");

    private string Chats => dir.Sub("chats.jsonl");

    public void Dispose() => dir.Dispose();

    [Fact]
    public void Init_then_sft_with_a_template_then_generate_chat_without_one()
    {
        string model = dir.Sub("model");
        var (code, _, error) = CliHarness.Run(["init", "--preset", "tiny", "--tokenizer", Tokenizer, "--out", model]);
        Assert.True(code == 0, error);
        Assert.Null(ChatTemplate.Resolve(null, model));

        // Defaults (max_length follows the context): 6 chats at batch_size 8 are one step, which the run says before it starts.
        string run = dir.Sub("sft");
        (code, _, error) = CliHarness.Run(["sft", "--model", model, "--data", Chats, "--chat-template", "chatml", "--out", run, "--threads", "2"]);
        Assert.True(code == 0, error);
        Assert.Contains("engine: warning: this run is 1 optimizer step (1 epoch of 1 batch of 8 rows", error, StringComparison.Ordinal);
        Assert.Contains("--set epochs=20", error, StringComparison.Ordinal);

        string final = Path.Combine(run, "final");
        Assert.Equal(ChatTemplateKind.ChatMl, ChatTemplate.Resolve(null, final)?.Kind);
        var checkpoint = Directory.GetDirectories(run, "checkpoint-*").Single();
        Assert.Equal(ChatTemplateKind.ChatMl, ChatTemplate.FromTokenizerDirectory(checkpoint)?.Kind);

        (code, string output, error) = CliHarness.Run(["generate", final, "--chat", "--prompt", "what is 2 plus one?", "--max-new-tokens", "3", "--temperature", "0", "--threads", "2"]);
        Assert.True(code == 0, error);
        Assert.DoesNotContain("warning", error, StringComparison.Ordinal);
        Assert.False(string.IsNullOrEmpty(output));

        // A flag that disagrees with the checkpoint's template wins, with a warning naming both.
        (code, _, error) = CliHarness.Run(["generate", final, "--chat", "--chat-template", "llama3", "--prompt", "hi", "--max-new-tokens", "1", "--threads", "2"]);
        Assert.True(code == 0, error);
        Assert.Contains("engine: warning: --chat-template llama3 differs from the template in", error, StringComparison.Ordinal);
        Assert.Contains("(chatml); using llama3", error, StringComparison.Ordinal);

        // A later stage (DPO from the SFT checkpoint) renders chats with the saved template, no flag needed.
        string pairs = dir.Sub("pairs.jsonl");
        File.WriteAllLines(pairs, Enumerable.Range(0, 2).Select(i => JsonSerializer.Serialize(new
        {
            prompt = new[] { new { role = "user", content = $"{i}?" } },
            chosen = new[] { new { role = "assistant", content = "yes" } },
            rejected = new[] { new { role = "assistant", content = "no" } },
        })));
        (code, _, error) = CliHarness.Run(["dpo", "--model", final, "--data", pairs, "--out", dir.Sub("dpo"), "--set", "max_steps=1", "--set", "batch_size=2", "--threads", "2"]);
        Assert.True(code == 0, error);
    }

    [Fact]
    public void Errors_name_flags_and_files_not_types()
    {
        string model = dir.Sub("model");
        CliHarness.SaveTinyModel(model, maxLength: 64);

        // Chats with no template anywhere: the error says which flag gives one.
        var (code, _, error) = CliHarness.Run(["sft", "--model", model, "--data", Chats, "--out", dir.Sub("a"), "--set", "max_steps=1", "--threads", "2"]);
        Assert.Equal(1, code);
        Assert.Contains("--chat-template", error, StringComparison.Ordinal);
        Assert.DoesNotContain("collator", error, StringComparison.Ordinal);

        // Chats given to pretraining: the line, what it has, and what to run instead.
        (code, _, error) = CliHarness.Run(["pretrain", "--model", model, "--data", Chats, "--out", dir.Sub("b"), "--set", "max_steps=1", "--threads", "2"]);
        Assert.Equal(1, code);
        Assert.Contains($"{Chats}:1: pretraining reads 'text' lines, this one has messages; use engine sft for it", error, StringComparison.Ordinal);
        Assert.DoesNotContain("Example", error, StringComparison.Ordinal);
        Assert.DoesNotContain("Parameter", error, StringComparison.Ordinal);

        // A second run into a used --out: the flags to pass, not the option record's property names.
        string[] sft = ["sft", "--model", model, "--data", Chats, "--chat-template", "chatml", "--out", dir.Sub("c"), "--set", "max_steps=1", "--set", "checkpoint_interval=1", "--threads", "2"];
        (code, _, error) = CliHarness.Run(sft);
        Assert.True(code == 0, error);
        Directory.Delete(Path.Combine(dir.Sub("c"), "final"), recursive: true);
        (code, _, error) = CliHarness.Run(sft);
        Assert.Equal(1, code);
        Assert.Contains("pass --resume", error, StringComparison.Ordinal);
        Assert.Contains("another --out directory", error, StringComparison.Ordinal);
        Assert.DoesNotContain("output_directory", error, StringComparison.Ordinal);

        // Bad generation settings and a prompt longer than the context name their keys and flags, not C# parameters.
        (code, _, error) = CliHarness.Run(["generate", model, "--prompt", "hi", "--top-p", "0", "--threads", "2"]);
        Assert.Equal(1, code);
        Assert.Contains("top_p must be in (0, 1]", error, StringComparison.Ordinal);
        Assert.DoesNotContain("Parameter", error, StringComparison.Ordinal);
        (code, _, error) = CliHarness.Run(["generate", model, "--prompt", new string('x', 100), "--threads", "2"]);
        Assert.Equal(1, code);
        Assert.Contains("--prompt: 100 tokens do not fit the model's context of 64", error, StringComparison.Ordinal);
    }
}
