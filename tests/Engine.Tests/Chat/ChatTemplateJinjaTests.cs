using System.Text.Json;
using System.Text.Json.Nodes;
using Engine.Models.Chat;
using Engine.Models.HuggingFace;
using Engine.Tests.Training;
using Xunit;

namespace Engine.Tests.Chat;

/// <summary>The Jinja text a checkpoint stores for its template, and reading it back.</summary>
public sealed class ChatTemplateJinjaTests
{
    public static TheoryData<string?> SystemPrompts => new() { null, "You are Qwen, created by Alibaba Cloud. You are a helpful assistant.", "Say 'hi'\nthen stop \\ here" };

    [Theory]
    [MemberData(nameof(SystemPrompts))]
    public void ChatMl_jinja_is_recognised_with_its_default_system_turn(string? system)
    {
        var template = ChatTemplate.ChatMl.WithDefaultSystemPrompt(system);
        var detected = ChatTemplate.Detect(template.Jinja);
        Assert.True(template.SameAs(detected), $"{template.Jinja} read back as {detected} with '{detected?.DefaultSystemPrompt}'");
    }

    [Fact]
    public void Every_template_reads_back_from_its_jinja()
    {
        foreach (var template in new[] { ChatTemplate.ChatMl, ChatTemplate.Llama3, ChatTemplate.Alpaca })
        {
            Assert.True(template.SameAs(ChatTemplate.Detect(template.Jinja)), template.Name);
        }

        Assert.False(ChatTemplate.ChatMl.SameAs(ChatTemplate.Llama3));
        Assert.False(ChatTemplate.ChatMl.SameAs(ChatTemplate.ChatMl.WithDefaultSystemPrompt("x")));
    }

    [Fact]
    public void SaveChatTemplate_keeps_the_other_fields_and_overrides_a_jinja_file()
    {
        using var dir = new TempDirectory();
        Assert.Null(ChatTemplate.Resolve(null, dir.Path));
        File.WriteAllText(dir.Sub("tokenizer_config.json"), """{"eos_token": "<|im_end|>", "model_max_length": 512}""");
        Assert.Null(ChatTemplate.Resolve(null, dir.Path));

        HfCheckpoint.SaveChatTemplate(dir.Path, ChatTemplate.Llama3);
        var config = JsonNode.Parse(File.ReadAllText(dir.Sub("tokenizer_config.json")))!.AsObject();
        Assert.Equal("<|im_end|>", (string?)config["eos_token"]);
        Assert.Equal(512, (int?)config["model_max_length"]);
        Assert.Same(ChatTemplate.Llama3, ChatTemplate.Resolve(null, dir.Path));

        File.WriteAllText(dir.Sub("chat_template.jinja"), ChatTemplate.Alpaca.Jinja);
        HfCheckpoint.SaveChatTemplate(dir.Path, ChatTemplate.ChatMl);
        Assert.Same(ChatTemplate.ChatMl, ChatTemplate.Resolve(null, dir.Path));
        Assert.Equal(ChatTemplate.ChatMl.Jinja, JsonSerializer.Deserialize<JsonObject>(File.ReadAllText(dir.Sub("tokenizer_config.json")))!["chat_template"]!.GetValue<string>());
    }
}
