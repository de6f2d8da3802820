using System.Text;
using System.Text.Json;
using Engine.Models.Chat;
using Engine.Models.Chat.Jinja;
using Engine.Training.Data;
using Xunit;

namespace Engine.Tests.Chat.Jinja;

/// <summary>
/// Dataset rows in TRL's tool-calling format (assistant tool_calls, tool / ipython results, a tools column as a list or a
/// JSON string), read by the dataset parser and rendered by the templates that support tools (Qwen2.5, Llama 3.1/3.2,
/// Mistral v0.3), print byte for byte what <c>@huggingface/jinja</c> printed for the same rows
/// (tests/fixtures/jinja/generate.mjs), and their assistant spans cover the tool calls but never the tool results.
/// </summary>
public sealed class JinjaToolRowTests
{
    private static readonly Lazy<JsonDocument> Fixture = new(() =>
        JsonDocument.Parse(File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "Fixtures", "jinja", "chat_templates.json"))));

    /// <summary>The template named <paramref name="name"/> with its family's special tokens, as a model directory would give it.</summary>
    internal static ChatTemplate Template(string name)
    {
        var root = Fixture.Value.RootElement;
        var tokens = new Dictionary<string, object?>();
        foreach (var token in root.GetProperty("tokens").GetProperty(root.GetProperty("family").GetProperty(name).GetString()!).EnumerateObject())
        {
            tokens[token.Name] = token.Value.ValueKind == JsonValueKind.String ? token.Value.GetString() : null;
        }

        if (name.StartsWith("llama-3.2", StringComparison.Ordinal))
        {
            tokens["date_string"] = "26 Jul 2024";
        }

        return ChatTemplate.FromJinja(root.GetProperty("templates").GetProperty(name).GetProperty("chat_template").GetString()!, name, tokens);
    }

    /// <summary>The fixture's dataset row <paramref name="row"/> as a JSONL line.</summary>
    internal static string Row(string row) => JsonSerializer.Serialize(Fixture.Value.RootElement.GetProperty("tool_rows").GetProperty(row));

    /// <summary>A JSONL line read as one example.</summary>
    internal static Example Read(string line, DatasetOptions? options = null)
    {
        using var reader = new JsonlReader(new MemoryStream(Encoding.UTF8.GetBytes(line)), "rows.jsonl", options);
        return Assert.Single(reader.Examples());
    }

    [Fact]
    public void Tool_calling_rows_render_byte_identically_and_train_only_assistant_turns()
    {
        int rendered = 0, failed = 0;
        foreach (var c in Fixture.Value.RootElement.GetProperty("row_cases").EnumerateArray())
        {
            string name = c.GetProperty("template").GetString()!, row = c.GetProperty("row").GetString()!;
            var example = Assert.IsType<MessagesExample>(Read(Row(row)));
            Assert.NotNull(example.Tools);
            var template = Template(name);
            var variables = new Dictionary<string, object?> { ["tools"] = example.Tools };
            if (!c.TryGetProperty("expected", out var expected))
            {
                var e = Assert.Throws<JinjaException>(() => template.Render(example.Messages, false, variables));
                Assert.Contains(c.GetProperty("error").GetString()!, e.Message, StringComparison.Ordinal);
                failed++;
                continue;
            }

            var chat = template.Render(example.Messages, false, variables);
            Assert.True(expected.GetString() == chat.Text, $"{name} / {row}");
            var assistants = example.Messages.Where(m => m.Role == ChatMessage.Assistant).ToList();
            Assert.Equal(assistants.Count, chat.AssistantSpans.Count);
            for (int i = 0; i < assistants.Count; i++)
            {
                string span = chat.AssistantSpans[i].Of(chat.Text);
                string shown = assistants[i].ToolCalls is { } calls ? calls[0].Name : assistants[i].Content;
                Assert.True(span.Contains(shown, StringComparison.Ordinal), $"{name} / {row}: span {i} '{span}' lacks '{shown}'");
                foreach (var result in example.Messages.Where(m => m.Role is ChatMessage.Tool or ChatMessage.Ipython))
                {
                    Assert.False(span.Contains(result.Content, StringComparison.Ordinal), $"{name} / {row}: span {i} '{span}' trains the tool result '{result.Content}'");
                }
            }

            rendered++;
        }

        Assert.Equal((10, 2), (rendered, failed));
    }
}
