using System.Text.Json;
using Engine.Core;
using Engine.Models.Chat;
using Xunit;

namespace Engine.Tests.Chat;

public sealed class ChatTemplateTests
{
    private static readonly ChatMessage[] Conversation =
    [
        new("system", "Be brief."),
        new("user", "Hi"),
        new("assistant", "Hello!"),
        new("user", "2+2?"),
        new("assistant", " 4 "),
    ];

    [Fact]
    public void ChatMl_renders_exactly_and_spans_cover_assistant_content_and_end_marker()
    {
        var r = ChatTemplate.ChatMl.Render(Conversation);
        Assert.Equal(
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello!<|im_end|>\n" +
            "<|im_start|>user\n2+2?<|im_end|>\n<|im_start|>assistant\n 4 <|im_end|>\n",
            r.Text);
        Assert.Equal(["Hello!<|im_end|>", " 4 <|im_end|>"], r.AssistantSpans.Select(s => s.Of(r.Text)));
    }

    [Fact]
    public void ChatMl_generation_prompt_appends_the_assistant_header()
    {
        var r = ChatTemplate.ChatMl.Render([new("user", "Hi")], addGenerationPrompt: true);
        Assert.Equal("<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n", r.Text);
        Assert.Empty(r.AssistantSpans);
    }

    [Fact]
    public void Llama3_renders_exactly_with_trimmed_content()
    {
        var r = ChatTemplate.Llama3.Render(Conversation, addGenerationPrompt: true);
        Assert.Equal(
            "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>" +
            "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>" +
            "<|start_header_id|>assistant<|end_header_id|>\n\nHello!<|eot_id|>" +
            "<|start_header_id|>user<|end_header_id|>\n\n2+2?<|eot_id|>" +
            "<|start_header_id|>assistant<|end_header_id|>\n\n4<|eot_id|>" +
            "<|start_header_id|>assistant<|end_header_id|>\n\n",
            r.Text);
        Assert.Equal(["Hello!<|eot_id|>", "4<|eot_id|>"], r.AssistantSpans.Select(s => s.Of(r.Text)));
    }

    [Fact]
    public void Alpaca_renders_exactly()
    {
        var r = ChatTemplate.Alpaca.Render([new("system", "Preamble."), new("user", "Add 2 and 2."), new("assistant", "4")]);
        Assert.Equal("Preamble.\n\n### Instruction:\nAdd 2 and 2.\n\n### Response:\n4", r.Text);
        Assert.Equal(["4"], r.AssistantSpans.Select(s => s.Of(r.Text)));

        var prompt = ChatTemplate.Alpaca.Render([new("user", "Add 2 and 2.")], addGenerationPrompt: true);
        Assert.Equal("### Instruction:\nAdd 2 and 2.\n\n### Response:\n", prompt.Text);
        Assert.Equal(prompt.Text, ChatTemplate.AlpacaPrompt("Add 2 and 2.", ""));
        Assert.Equal("### Instruction:\nSum.\n\n### Input:\n2, 2\n\n### Response:\n", ChatTemplate.AlpacaPrompt("Sum.", "2, 2"));
    }

    [Fact]
    public void Unknown_roles_and_names_are_refused()
    {
        var e = Assert.Throws<ArgumentException>(() => ChatTemplate.ChatMl.Render([new("user", "a"), new("function", "b")]));
        Assert.Contains("message 1: role 'function'", e.Message, StringComparison.Ordinal);
        var tool = Assert.Throws<InputException>(() => ChatTemplate.ChatMl.Render([new("user", "a"), new("tool", "b")]));
        Assert.StartsWith("message 1 is a tool's result, which the built-in chatml format cannot show", tool.Message, StringComparison.Ordinal);
        var unknown = Assert.Throws<InputException>(() => ChatTemplate.FromName("vicuna"));
        Assert.Contains("chatml, llama3, alpaca", unknown.Message, StringComparison.Ordinal);
        Assert.Same(ChatTemplate.Llama3, ChatTemplate.FromName(" LLaMA3 "));
    }

    // Abridged from the real tokenizer_config.json files (the parts that matter for detection).
    private const string QwenJinja =
        "{%- if tools %}\n    {{- '<|im_start|>system\\n' }}\n{%- else %}\n    {%- if messages[0]['role'] == 'system' %}\n" +
        "        {{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}\n    {%- else %}\n" +
        "        {{- '<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\\n' }}\n" +
        "    {%- endif %}\n{%- endif %}\n{%- for message in messages %}{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}{%- endfor %}\n" +
        "{%- if add_generation_prompt %}\n    {{- '<|im_start|>assistant\\n' }}\n{%- endif %}\n";

    private const string Llama3Jinja =
        "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + message['role'] + " +
        "'<|end_header_id|>\\n\\n'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}" +
        "{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}";

    [Fact]
    public void A_tokenizer_config_template_is_interpreted_and_its_family_recognised()
    {
        string json = JsonSerializer.Serialize(new { chat_template = QwenJinja, eos_token = "<|im_end|>" });
        var t = ChatTemplate.FromTokenizerConfig(json)!;
        Assert.Equal(ChatTemplateKind.Jinja, t.Kind);
        Assert.Equal(ChatTemplateKind.ChatMl, t.Family);
        Assert.Equal("<|im_end|>", t.EndOfTurn);
        Assert.Equal("You are Qwen, created by Alibaba Cloud. You are a helpful assistant.", ChatTemplate.Detect(t.Jinja)!.DefaultSystemPrompt);
        Assert.Equal(
            "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n",
            t.Render([new("user", "Hi")], addGenerationPrompt: true).Text);
        Assert.StartsWith("<|im_start|>system\nBe brief.<|im_end|>", t.Render(Conversation).Text, StringComparison.Ordinal);

        Assert.Equal(ChatTemplateKind.Llama3, ChatTemplate.FromTokenizerConfig(JsonSerializer.Serialize(new { chat_template = Llama3Jinja }))!.Family);
        var listed = JsonSerializer.Serialize(new { chat_template = new[] { new { name = "tool_use", template = "{{ '### Instruction:' }}" }, new { name = "default", template = Llama3Jinja } } });
        Assert.Equal(Llama3Jinja, ChatTemplate.FromTokenizerConfig(listed)!.Jinja);
        Assert.Equal("{{ '### Instruction:' }}", ChatTemplate.FromTokenizerConfig(listed, templateName: "tool_use")!.Jinja);
        var missing = Assert.Throws<InputException>(() => ChatTemplate.FromTokenizerConfig(listed, "tc.json", "rag"));
        Assert.Equal("tc.json: field 'chat_template': has no template named 'rag' (it has tool_use, default)", missing.Message);
        Assert.Equal("[]", ChatTemplate.FromTokenizerConfig("{\"chat_template\": \"{{ messages }}\"}")!.Render([]).Text);
        Assert.Null(ChatTemplate.FromTokenizerConfig("{}"));
        Assert.Throws<InputException>(() => ChatTemplate.FromTokenizerConfig("{\"chat_template\": 3}"));
    }

    [Fact]
    public void Resolve_prefers_an_explicit_name_then_the_tokenizer_files()
    {
        string dir = Directory.CreateTempSubdirectory("engine-chat-").FullName;
        try
        {
            File.WriteAllText(Path.Combine(dir, "tokenizer_config.json"), JsonSerializer.Serialize(new { chat_template = Llama3Jinja, bos_token = "<|begin_of_text|>" }));
            var own = ChatTemplate.Resolve(null, dir)!;
            Assert.Equal(ChatTemplateKind.Jinja, own.Kind);
            Assert.Equal(ChatTemplate.Llama3.Render(Conversation).Text, own.Render(Conversation).Text);
            Assert.Same(ChatTemplate.Alpaca, ChatTemplate.Resolve("alpaca", dir));
            File.WriteAllText(Path.Combine(dir, "chat_template.jinja"), ChatTemplate.ChatMl.Jinja);
            Assert.Same(ChatTemplate.ChatMl, ChatTemplate.Resolve(null, dir));
            File.WriteAllText(Path.Combine(dir, "chat_template.jinja"), "{{ bos_token }}\n{% for m in messages %}{{ m.content | nofilter }}{% endfor %}");
            Assert.Equal("<|begin_of_text|>\n", ChatTemplate.Resolve(null, dir)!.Render([]).Text);
            var e = Assert.Throws<Engine.Models.Chat.Jinja.JinjaException>(() => ChatTemplate.Resolve(null, dir)!.Render(Conversation));
            Assert.Equal($"{Path.Combine(dir, "chat_template.jinja")}: line 2, column 39: unknown filter 'nofilter' for a string", e.Message);
            File.WriteAllText(Path.Combine(dir, "chat_template.jinja"), "{% if messages %}\n  {{ messages[0] }\n{% endif %}");
            e = Assert.Throws<Engine.Models.Chat.Jinja.JinjaException>(() => ChatTemplate.Resolve(null, dir));
            Assert.StartsWith($"{Path.Combine(dir, "chat_template.jinja")}: line 2, column ", e.Message, StringComparison.Ordinal);
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    [Fact]
    public void Spans_map_to_tokens_by_overlap()
    {
        var r = ChatTemplate.ChatMl.Render([new("user", "Hi"), new("assistant", "Yo")]);
        // A stand-in tokenizer: each special marker is one token, every other character is one token.
        var offsets = new List<CharSpan>();
        for (int i = 0; i < r.Text.Length;)
        {
            int len = r.Text[i] == '<' ? r.Text.IndexOf('>', i) - i + 1 : 1;
            offsets.Add(new CharSpan(i, len));
            i += len;
        }

        offsets.Insert(0, new CharSpan(0, 0)); // a BOS the tokenizer added: no text, never trained
        var mask = ChatSpans.TokenMask(r.AssistantSpans, offsets);
        var trained = offsets.Where((_, i) => mask[i]).Select(o => o.Of(r.Text));
        Assert.Equal(["Y", "o", "<|im_end|>"], trained);

        // A token straddling the span's start counts as trained.
        Assert.Equal([true, false], ChatSpans.TokenMask([new CharSpan(3, 4)], [new CharSpan(2, 2), new CharSpan(7, 1)]));
    }
}
