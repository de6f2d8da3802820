using Engine.Core.Cpu;
using Engine.Models;
using Engine.Models.Chat;
using Engine.Models.Generation;
using Engine.Models.HuggingFace;
using Engine.Models.Tokenizers;
using Engine.Tests.Training;
using Xunit;

namespace Engine.Tests.Cli;

/// <summary><c>engine generate</c> on a tiny GPT-2 and a byte-level tokenizer.</summary>
[Collection("Console")]
public sealed class GenerateCommandTests : IDisposable
{
    private readonly TempDirectory dir = new();

    public GenerateCommandTests()
    {
        var config = TransformerConfig.Gpt2(257, 64, layers: 1, channels: 16, heads: 2);
        using var backend = new CpuBackend(1);
        using var model = new Transformer(config, backend);
        model.InitializeWeights(11);
        HfCheckpoint.Save(model, Model, new HfSaveOptions { Config = HfModelConfig.For(config) with { EosTokenIds = [256] } });
        BpeTrainer.ByteLevel(["<|endoftext|>"]).Save(Path.Combine(Model, "tokenizer.json"));
    }

    private string Model => dir.Sub("model");

    public void Dispose() => dir.Dispose();

    [Fact]
    public void Greedy_output_is_the_generators_greedy_tokens_decoded()
    {
        var (code, stdout, error) = Run(["generate", Model, "--prompt", "hello world", "--temperature", "0", "--max-new-tokens", "12", "--threads", "1"]);
        Assert.True(code == 0, error);
        Assert.Equal(Expected("hello world") + Environment.NewLine, stdout);
    }

    [Fact]
    public void Chat_renders_the_prompt_with_the_template_and_generation_prompt()
    {
        var (code, stdout, error) = Run(["generate", Model, "--prompt", "hi", "--chat", "--chat-template", "chatml", "--temperature", "0", "--max-new-tokens", "8", "--threads", "1"]);
        Assert.True(code == 0, error);
        string rendered = ChatTemplate.ChatMl.Render([new ChatMessage(ChatMessage.User, "hi")], addGenerationPrompt: true).Text;
        Assert.EndsWith("<|im_start|>assistant\n", rendered, StringComparison.Ordinal);
        Assert.Equal(Expected(rendered) + Environment.NewLine, stdout);
        Assert.NotEqual(Expected("hi") + Environment.NewLine, stdout);
    }

    [Fact]
    public void Sampling_with_a_seed_is_repeatable()
    {
        string[] args = ["generate", Model, "--prompt", "abc", "--temperature", "1", "--top-k", "20", "--top-p", "0.9", "--seed", "5", "--max-new-tokens", "10", "--threads", "1"];
        var first = Run(args);
        var second = Run(args);
        Assert.True(first.Code == 0, first.Error);
        Assert.Equal(first.Output, second.Output);
    }

    [Fact]
    public void A_bad_model_dir_is_one_line_and_exit_1()
    {
        var (code, stdout, error) = Run(["generate", dir.Sub("missing"), "--prompt", "x"]);
        Assert.Equal(1, code);
        Assert.Equal("", stdout);
        Assert.StartsWith("engine: error:", error.Trim(), StringComparison.Ordinal);
        Assert.DoesNotContain("\n", error.Trim(), StringComparison.Ordinal);

        (code, _, error) = Run(["generate", Model, "--prompt", "x", "--stop", "<|nope|>"]);
        Assert.Equal(1, code);
        Assert.Contains("--stop", error, StringComparison.Ordinal);
    }

    [Fact]
    public void Incremental_decoding_holds_back_an_incomplete_utf8_tail()
    {
        var tokenizer = Tokenizer.FromFile(Path.Combine(Model, "tokenizer.json"));
        int[] bytes = tokenizer.Encode("é€", addSpecialTokens: false);
        var stream = new Engine.Cli.Commands.GenerateCommand.TextStream(tokenizer, [256]);
        string printed = string.Concat(bytes.Select(stream.Add)) + stream.Add(256) + stream.Finish();
        Assert.Equal("é€", printed);
        Assert.DoesNotContain('\uFFFD', printed);
    }

    /// <summary>What Generator produces greedily for <paramref name="prompt"/>, decoded without the stop token.</summary>
    private string Expected(string prompt)
    {
        var tokenizer = Tokenizer.FromFile(Path.Combine(Model, "tokenizer.json"));
        using var backend = new CpuBackend(1);
        using var model = HfCheckpoint.Load(Model, backend, trainable: false);
        using var generator = new Generator(model);
        var options = new GenerationOptions { Temperature = 0, MaxNewTokens = prompt == "hello world" ? 12 : 8, StopTokens = [256] };
        var tokens = generator.Generate([tokenizer.Encode(prompt, addSpecialTokens: false)], options)[0].Tokens.Where(t => t != 256).ToArray();
        return tokenizer.Decode(tokens);
    }

    private static (int Code, string Output, string Error) Run(string[] args) => Engine.Tests.Support.CliRun.Engine(args);
}
