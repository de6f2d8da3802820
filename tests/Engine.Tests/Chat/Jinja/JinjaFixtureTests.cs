using System.Text.Json;
using Engine.Models.Chat.Jinja;
using Xunit;

namespace Engine.Tests.Chat.Jinja;

/// <summary>
/// Real chat templates (Qwen2.5, SmolLM2, Llama 3.1/3.2, Mistral, Mixtral, Phi-3/3.5, Gemma 2/3, Zephyr) render byte for
/// byte what <c>@huggingface/jinja</c> rendered (tests/fixtures/jinja/generate.mjs), and fail where it failed.
/// </summary>
public sealed class JinjaFixtureTests
{
    private static readonly Lazy<JsonDocument> Fixture = new(() =>
        JsonDocument.Parse(File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "Fixtures", "jinja", "chat_templates.json"))));

    public static TheoryData<string> TemplateNames()
    {
        var data = new TheoryData<string>();
        foreach (var t in Fixture.Value.RootElement.GetProperty("templates").EnumerateObject())
        {
            data.Add(t.Name);
        }

        return data;
    }

    [Theory]
    [MemberData(nameof(TemplateNames))]
    public void Renders_byte_identically_to_huggingface_jinja(string name)
    {
        var root = Fixture.Value.RootElement;
        var template = JinjaTemplate.Parse(root.GetProperty("templates").GetProperty(name).GetProperty("chat_template").GetString()!, name);
        var tokens = root.GetProperty("tokens").GetProperty(root.GetProperty("family").GetProperty(name).GetString()!);
        int checkedCases = 0;
        foreach (var c in root.GetProperty("cases").EnumerateArray().Where(c => c.GetProperty("template").GetString() == name))
        {
            string conversation = c.GetProperty("conversation").GetString()!;
            var variables = new Dictionary<string, object?>();
            foreach (var token in tokens.EnumerateObject())
            {
                variables[token.Name] = token.Value;
            }

            if (name.StartsWith("llama-3.2", StringComparison.Ordinal))
            {
                variables["date_string"] = "26 Jul 2024";
            }

            variables["messages"] = root.GetProperty("conversations").GetProperty(conversation);
            variables["add_generation_prompt"] = c.GetProperty("add_generation_prompt").GetBoolean();
            if (conversation == "tools")
            {
                variables["tools"] = root.GetProperty("tools");
            }

            string label = $"{name} / {conversation} / add_generation_prompt={variables["add_generation_prompt"]}";
            if (c.TryGetProperty("expected", out var expected))
            {
                Assert.True(expected.GetString() == template.Render(variables).Text, label);
            }
            else
            {
                var e = Assert.Throws<JinjaException>(() => template.Render(variables));
                Assert.Contains(name, e.Message, StringComparison.Ordinal);
            }

            checkedCases++;
        }

        Assert.True(checkedCases >= 10, $"{name}: only {checkedCases} cases");
    }

    [Fact]
    public void Damaged_templates_fail_with_a_template_error_and_nothing_else()
    {
        var root = Fixture.Value.RootElement;
        var random = new Random(16);
        var variables = new Dictionary<string, object?>
        {
            ["messages"] = root.GetProperty("conversations").GetProperty("tools"),
            ["tools"] = root.GetProperty("tools"),
            ["add_generation_prompt"] = true,
            ["bos_token"] = "<s>",
        };
        const string Pieces = "{}%#-()[]|.,:'\"=~+*/ ifelseendforsetnotinisloop";
        int failures = 0;
        foreach (var t in root.GetProperty("templates").EnumerateObject())
        {
            string text = t.Value.GetProperty("chat_template").GetString()!;
            for (int trial = 0; trial < 60; trial++)
            {
                var chars = text.ToList();
                for (int edits = random.Next(1, 4); edits > 0; edits--)
                {
                    int at = random.Next(chars.Count);
                    if (random.Next(2) == 0)
                    {
                        chars.RemoveAt(at);
                    }
                    else
                    {
                        chars.Insert(at, Pieces[random.Next(Pieces.Length)]);
                    }
                }

                try
                {
                    JinjaTemplate.Parse(new string(chars.ToArray()), t.Name).Render(variables, new DateTime(2024, 7, 26));
                }
                catch (JinjaException)
                {
                    failures++;
                }
            }
        }

        Assert.True(failures > 0);
    }
}
