using System.Text.Json;
using Engine.Models.Chat;
using Engine.Tests.Cli;
using Engine.Tests.Training;
using Xunit;

namespace Engine.Tests.Chat.Jinja;

/// <summary>A model directory carrying a real Jinja template: <c>engine sft</c> on chats uses it, the checkpoint keeps it.</summary>
[Trait("Category", "Training")]
[Collection("Console")]
public sealed class JinjaCliTests : IDisposable
{
    private readonly TempDirectory dir = new();

    public void Dispose() => dir.Dispose();

    [Fact]
    public void Sft_trains_with_the_model_s_own_template_and_the_checkpoint_keeps_it()
    {
        string model = dir.Sub("model");
        CliHarness.SaveTinyModel(model, maxLength: 128);
        var fixture = JsonDocument.Parse(File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "Fixtures", "jinja", "chat_templates.json"))).RootElement;
        string smol = fixture.GetProperty("templates").GetProperty("smollm2-instruct").GetProperty("chat_template").GetString()!;
        File.WriteAllText(Path.Combine(model, "tokenizer_config.json"), JsonSerializer.Serialize(new { chat_template = smol, eos_token = "<|im_end|>", bos_token = "<|im_start|>" }));
        string chats = dir.Sub("chats.jsonl");
        File.WriteAllLines(chats, Enumerable.Range(0, 4).Select(i => JsonSerializer.Serialize(new
        {
            messages = new[] { new { role = "user", content = $"{i} plus one?" }, new { role = "assistant", content = $"{i + 1}" } },
        })));

        string run = dir.Sub("sft");
        var (code, _, error) = CliHarness.Run(["sft", "--model", model, "--data", chats, "--out", run, "--set", "max_length=128", "--threads", "2"]);
        Assert.True(code == 0, error);
        Assert.DoesNotContain("differs from the template", error, StringComparison.Ordinal);

        var saved = ChatTemplate.Resolve(null, Path.Combine(run, "final"))!;
        Assert.Equal(ChatTemplateKind.Jinja, saved.Kind);
        Assert.Equal(smol, saved.Jinja);
        Assert.StartsWith("<|im_start|>system\nYou are a helpful AI assistant named SmolLM", saved.Render([new("user", "hi")], addGenerationPrompt: true).Text, StringComparison.Ordinal);

        (code, _, error) = CliHarness.Run(["sft", "--model", model, "--data", chats, "--out", dir.Sub("sft2"), "--chat-template", "llama3", "--set", "max_length=128", "--threads", "2"]);
        Assert.True(code == 0, error);
        Assert.Contains("--chat-template llama3 differs from the template in", error, StringComparison.Ordinal);
    }
}
