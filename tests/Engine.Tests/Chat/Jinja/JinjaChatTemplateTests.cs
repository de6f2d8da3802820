using System.Text.Json;
using Engine.Core;
using Engine.Models.Chat;
using Engine.Tests.Training;
using Engine.Training.Data;
using Xunit;

namespace Engine.Tests.Chat.Jinja;

/// <summary>Real templates as <see cref="ChatTemplate"/>s: loading, assistant masks from the template itself, SFT collation.</summary>
public sealed class JinjaChatTemplateTests
{
    private static readonly Lazy<JsonElement> Fixture = new(() =>
        JsonDocument.Parse(File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "Fixtures", "jinja", "chat_templates.json"))).RootElement);

    private static readonly ChatMessage[] MultiTurn =
    [
        new("user", "Hello, how are you?"),
        new("assistant", "I'm doing great."),
        new("user", "Show me templating!"),
        new("assistant", "  Sure: templates turn messages into text.  "),
    ];

    private static ChatTemplate Real(string name)
    {
        var root = Fixture.Value;
        var tokens = root.GetProperty("tokens").GetProperty(root.GetProperty("family").GetProperty(name).GetString()!)
            .EnumerateObject().ToDictionary(p => p.Name, p => (object?)p.Value.GetString());
        return ChatTemplate.FromJinja(root.GetProperty("templates").GetProperty(name).GetProperty("chat_template").GetString()!, name, tokens);
    }

    [Theory]
    [InlineData("qwen2.5-instruct", "I'm doing great.<|im_end|>", "  Sure: templates turn messages into text.  <|im_end|>")]
    [InlineData("smollm2-instruct", "I'm doing great.<|im_end|>", "  Sure: templates turn messages into text.  <|im_end|>")]
    [InlineData("llama-3.2-instruct", "I'm doing great.<|eot_id|>", "Sure: templates turn messages into text.<|eot_id|>")]
    [InlineData("mistral-7b-instruct", "I'm doing great.</s>", "  Sure: templates turn messages into text.  </s>")]
    [InlineData("phi-3-mini-instruct", "I'm doing great.<|end|>", "  Sure: templates turn messages into text.  <|end|>")]
    [InlineData("gemma-2-it", "I'm doing great.<end_of_turn>", "Sure: templates turn messages into text.<end_of_turn>")]
    public void Assistant_spans_come_from_rendering_prefixes(string name, string first, string second)
    {
        var template = Real(name);
        Assert.Equal(ChatTemplateKind.Jinja, template.Kind);
        var rendered = template.Render(MultiTurn);
        Assert.Equal([first, second], rendered.AssistantSpans.Select(s => s.Of(rendered.Text)));
        Assert.DoesNotContain("Hello, how are you?", string.Concat(rendered.AssistantSpans.Select(s => s.Of(rendered.Text))), StringComparison.Ordinal);
    }

    [Fact]
    public void Generation_blocks_give_the_spans_when_a_template_has_them()
    {
        var template = ChatTemplate.FromJinja(
            "{%- for m in messages %}{{ '<|im_start|>' + m.role + '\\n' }}{% if m.role == 'assistant' %}{% generation %}{{ m.content + '<|im_end|>' }}{% endgeneration %}{% else %}{{ m.content + '<|im_end|>' }}{% endif %}{{ '\\n' }}{% endfor %}",
            "gen.jinja");
        var rendered = template.Render(MultiTurn);
        Assert.Equal(ChatTemplate.ChatMl.Render(MultiTurn).Text, rendered.Text);
        Assert.Equal(ChatTemplate.ChatMl.Render(MultiTurn).AssistantSpans, rendered.AssistantSpans);
    }

    [Fact]
    public void A_template_whose_history_differs_from_its_prefixes_asks_for_generation_blocks()
    {
        var template = ChatTemplate.FromJinja("{% for m in messages %}{{ m.role }}: {{ m.content if loop.last else '...' }}\n{% endfor %}", "hist.jinja");
        var e = Assert.Throws<InputException>(() => template.Render(MultiTurn));
        Assert.StartsWith("hist.jinja: message 1 (assistant) cannot be found", e.Message, StringComparison.Ordinal);
        Assert.Contains("{% generation %}", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Extra_variables_reach_the_template()
    {
        var template = Real("qwen2.5-instruct");
        var tools = JsonDocument.Parse(Fixture.Value.GetProperty("tools").GetRawText()).RootElement;
        var rendered = template.Render([new("user", "Weather in Paris?")], true, new Dictionary<string, object?> { ["tools"] = tools });
        Assert.Contains("<tools>\n{\"type\": \"function\", \"function\": {\"name\": \"get_current_weather\"", rendered.Text, StringComparison.Ordinal);
        Assert.EndsWith("<|im_start|>assistant\n", rendered.Text, StringComparison.Ordinal);
    }

    [Fact]
    public void Tokenizer_directory_gives_special_tokens_and_named_templates()
    {
        using var dir = new TempDirectory();
        string mistral = Fixture.Value.GetProperty("templates").GetProperty("mistral-7b-instruct").GetProperty("chat_template").GetString()!;
        File.WriteAllText(dir.Sub("tokenizer_config.json"), JsonSerializer.Serialize(new
        {
            bos_token = new { content = "<s>", lstrip = false },
            eos_token = "</s>",
            chat_template = new[] { new { name = "default", template = mistral }, new { name = "rag", template = "{{ bos_token }}rag" } },
        }));
        var template = ChatTemplate.FromTokenizerDirectory(dir.Path)!;
        Assert.Equal("<s>[INST] Hello, how are you? [/INST]I'm doing great.</s> [INST] Show me templating! [/INST]  Sure: templates turn messages into text.  </s> ", template.Render(MultiTurn).Text);
        Assert.Equal("<s>", template.BosToken);
        Assert.Equal("</s>", template.EndOfTurn);
        Assert.Equal("<s>rag", ChatTemplate.FromTokenizerDirectory(dir.Path, "rag")!.Render([]).Text);

        var e = Assert.Throws<Engine.Models.Chat.Jinja.JinjaException>(() => template.Render([new("assistant", "first")]));
        Assert.Equal($"{dir.Sub("tokenizer_config.json")} (chat_template 'default'): line 1, column 110: raise_exception: Conversation roles must alternate user/assistant/user/assistant/...", e.Message);
    }

    [Fact]
    public void A_jinja_file_can_be_named_instead_of_a_built_in()
    {
        using var dir = new TempDirectory();
        File.WriteAllText(dir.Sub("mine.jinja"), "{% for m in messages %}[{{ m.role }}] {{ m.content }}\n{% endfor %}");
        var template = ChatTemplate.FromName(dir.Sub("mine.jinja"));
        Assert.Equal("[user] Hello, how are you?\n[assistant] I'm doing great.\n", template.Render(MultiTurn.Take(2).ToList()).Text);
        Assert.Equal(
            $"--chat-template: file '{dir.Sub("absent.jinja")}' does not exist",
            Assert.Throws<InputException>(() => ChatTemplate.FromName(dir.Sub("absent.jinja"))).Message);
    }

    [Fact]
    public void Sft_collation_trains_the_template_spans_and_keeps_one_bos()
    {
        var template = Real("mistral-7b-instruct");
        // One id per character; "<s>" and "</s>" are single special tokens, and BOS is "<s>".
        int[] Encode(string text) => text.Replace("</s>", "\u0002", StringComparison.Ordinal).Replace("<s>", "\u0001", StringComparison.Ordinal).Select(c => (int)c).ToArray();
        var collator = new SequenceCollator(new FuncTextEncoder(Encode, bosTokenId: 1, eosTokenId: 2), new CollatorOptions { MaxLength = 512 }, template);
        var sequence = collator.Tokenize(new MessagesExample(MultiTurn.ToList()));

        Assert.Equal(1, sequence.Ids[0]);
        Assert.DoesNotContain(1, sequence.Ids.Skip(1));
        string Decode(IEnumerable<int> ids) => new string(ids.Select(i => (char)i).ToArray()).Replace("\u0002", "</s>", StringComparison.Ordinal);
        var rendered = template.Render(MultiTurn);
        Assert.Equal(string.Concat(rendered.AssistantSpans.Select(s => s.Of(rendered.Text))), Decode(sequence.Ids.Where((_, i) => sequence.Trained[i])));
        Assert.Equal(rendered.Text[3..], Decode(sequence.Ids.Skip(1)));
    }
}
