using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using Engine.Core;
using Engine.Models.Chat;
using Engine.Tests.Chat.Jinja;
using Engine.Training.Data;
using Engine.Training.Pipeline;
using Parquet.Serialization;
using Xunit;

namespace Engine.Tests.Training;

/// <summary>TRL's tool-calling rows: what the parser keeps, each malformed field it names, and what SFT trains.</summary>
public sealed class ToolCallDataTests : IDisposable
{
    private readonly TempDirectory dir = new();

    public void Dispose() => dir.Dispose();

    private const string User = "{\"role\": \"user\", \"content\": \"Weather in Paris?\"}";
    private const string Result = "{\"role\": \"tool\", \"name\": \"get_current_weather\", \"tool_call_id\": \"call12345\", \"content\": \"22.0\"}";
    private const string Answer = "{\"role\": \"assistant\", \"content\": \"22 degrees.\"}";
    private const string Call = "{\"type\": \"function\", \"id\": \"call12345\", \"function\": {\"name\": \"get_current_weather\", \"arguments\": {\"location\": \"Paris\", \"days\": [1, 2.5]}}}";

    private static string Row(string call = Call, string extra = "") =>
        $"{{\"messages\": [{User}, {{\"role\": \"assistant\", \"tool_calls\": [{call}]}}, {Result}, {Answer}]{extra}}}";

    [Fact]
    public void A_row_keeps_tool_calls_tool_results_and_tools()
    {
        var example = Assert.IsType<MessagesExample>(JinjaToolRowTests.Read(Row(extra: ", \"tools\": [{\"type\": \"function\", \"function\": {\"name\": \"get_current_weather\"}}], \"id\": 7")));
        var call = Assert.Single(example.Messages[1].ToolCalls!);
        Assert.Equal(("get_current_weather", "call12345", "", "{\"location\":\"Paris\",\"days\":[1,2.5]}"), (call.Name, call.Id, example.Messages[1].Content, JsonSerializer.Serialize(call.Arguments)));
        Assert.Equal(("tool", "get_current_weather", "call12345", "22.0"), (example.Messages[2].Role, example.Messages[2].Name, example.Messages[2].ToolCallId, example.Messages[2].Content));
        Assert.Equal(1, example.Tools!.Value.GetArrayLength());
        Assert.Equal(["id"], example.Columns.Keys);

        // Parquet rows carry every field of the message struct, null where a message has none; an empty list calls nothing;
        // tools may be a JSON string.
        string nulls = "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\", \"tool_calls\": null, \"name\": null, \"tool_call_id\": null},"
            + " {\"role\": \"assistant\", \"content\": \"yo\", \"tool_calls\": [], \"name\": null, \"tool_call_id\": null}], \"tools\": \"[{\\\"name\\\": \\\"f\\\"}]\"}";
        var plain = Assert.IsType<MessagesExample>(JinjaToolRowTests.Read(nulls));
        Assert.Equal([new ChatMessage("user", "hi"), new ChatMessage("assistant", "yo")], plain.Messages);
        Assert.Equal("f", plain.Tools!.Value[0].GetProperty("name").GetString());

        // Written back as JSONL, the row reads back the same.
        using var stream = new MemoryStream();
        ExampleJsonlWriter.Write(stream, [example]);
        var again = Assert.IsType<MessagesExample>(JinjaToolRowTests.Read(Encoding.UTF8.GetString(stream.ToArray())));
        Assert.Equal(example.Messages, again.Messages);
        Assert.True(JsonElement.DeepEquals(example.Tools!.Value, again.Tools!.Value));
    }

    public static TheoryData<string, string, string> Malformed() => new()
    {
        { Row(call: "3"), "messages[1].tool_calls[0]", "expected an object with 'type' and 'function', got a number 3" },
        { Row(call: "{\"type\": \"code\", \"function\": {\"name\": \"f\", \"arguments\": {}}}"), "messages[1].tool_calls[0].type", "must be \"function\", got a string \"code\"" },
        { Row(call: "{\"type\": \"function\"}"), "messages[1].tool_calls[0].function", "expected an object with 'name' and 'arguments', got nothing" },
        { Row(call: "{\"function\": {\"arguments\": {}}}"), "messages[1].tool_calls[0].function.name", "must be a function's name, got nothing" },
        { Row(call: "{\"function\": {\"name\": \"\", \"arguments\": {}}}"), "messages[1].tool_calls[0].function.name", "must be a function's name, got an empty string" },
        { Row(call: "{\"function\": {\"name\": 5, \"arguments\": {}}}"), "messages[1].tool_calls[0].function.name", "expected a string, got a number 5" },
        { Row(call: "{\"function\": {\"name\": \"f\", \"arguments\": \"{\\\"a\\\": 1}\"}}"), "messages[1].tool_calls[0].function.arguments", "(arguments encoded as a JSON string must be decoded into an object)" },
        { Row(call: "{\"function\": {\"name\": \"f\"}}"), "messages[1].tool_calls[0].function.arguments", "expected an object of argument values, got nothing" },
        { Row(call: "{\"id\": 9, \"function\": {\"name\": \"f\", \"arguments\": {}}}"), "messages[1].tool_calls[0].id", "expected a string, got a number 9" },
        { $"{{\"messages\": [{User}, {{\"role\": \"assistant\", \"tool_calls\": {{}}}}]}}", "messages[1].tool_calls", "expected a list of tool calls, got an object" },
        { $"{{\"messages\": [{{\"role\": \"user\", \"content\": \"u\", \"tool_calls\": [{Call}]}}, {Answer}]}}", "messages[0].tool_calls", "only assistant messages call tools, this one is 'user'" },
        { $"{{\"messages\": [{User}, {{\"role\": \"assistant\"}}]}}", "messages[1].content", "must be a string (it may be left out when the message has tool_calls), got nothing" },
        { $"{{\"messages\": [{User}, {{\"role\": \"tool\", \"content\": 22}}, {Answer}]}}", "messages[1].content", "must be a string, got a number 22" },
        { $"{{\"messages\": [{User}, {{\"role\": \"tool\", \"content\": \"x\", \"name\": 1}}, {Answer}]}}", "messages[1].name", "expected a string, got a number 1" },
        { $"{{\"messages\": [{User}, {{\"role\": \"tool\", \"content\": \"x\", \"tool_call_id\": []}}, {Answer}]}}", "messages[1].tool_call_id", "expected a string, got a list of 0" },
        { Row(extra: ", \"tools\": 1"), "tools", "expected a list of function schemas (objects), got a number 1" },
        { Row(extra: ", \"tools\": [{}, \"f\"]"), "tools[1]", "expected a function schema (an object), got a string \"f\"" },
        { Row(extra: ", \"tools\": \"[{\""), "tools", "a string that is not JSON" },
        { "{\"text\": \"plain\", \"tools\": []}", "tools", "tools are offered to conversations (message lists), and this row is plain text" },
    };

    [Theory]
    [MemberData(nameof(Malformed))]
    public void Each_malformed_field_is_one_error_naming_line_and_field(string line, string field, string detail)
    {
        var e = Assert.Throws<DatasetException>(() => JinjaToolRowTests.Read("\n" + line));
        Assert.StartsWith($"rows.jsonl:2: field '{field}': ", e.Message, StringComparison.Ordinal);
        Assert.Contains(detail, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Tool_call_and_tools_counts_are_bounded()
    {
        string calls = string.Join(", ", Enumerable.Repeat(Call, 5));
        var e = Assert.Throws<DatasetException>(() => JinjaToolRowTests.Read(Row(call: calls), new DatasetOptions { MaxMessages = 4 }));
        Assert.Equal("rows.jsonl:1: field 'messages[1].tool_calls': 5 tool calls, over the limit of 4 per message", e.Message);
        e = Assert.Throws<DatasetException>(() => JinjaToolRowTests.Read($"{{\"messages\": [{User}, {Answer}], \"tools\": [{{}}, {{}}, {{}}]}}", new DatasetOptions { MaxMessages = 2 }));
        Assert.Equal("rows.jsonl:1: field 'tools': 3 tools, over the limit of 2", e.Message);
    }

    [Fact]
    public void Sft_trains_the_tool_call_and_the_answer_but_not_the_tool_result()
    {
        var example = JinjaToolRowTests.Read(Row(extra: $", \"tools\": [{{\"type\": \"function\", \"function\": {{\"name\": \"get_current_weather\"}}}}]"));
        var encoder = new FuncTextEncoder(text => text.Select(ch => (int)ch).ToArray());
        var collator = new SequenceCollator(encoder, new CollatorOptions { MaxLength = 4096 }, JinjaToolRowTests.Template("qwen2.5-instruct"));
        var sequence = collator.Tokenize(example);
        string Text(bool trained) => new([.. sequence.Ids.Where((_, i) => sequence.Trained[i] == trained).Select(id => (char)id)]);
        Assert.Equal(
            "<tool_call>\n{\"name\": \"get_current_weather\", \"arguments\": {\"location\": \"Paris\", \"days\": [1, 2.5]}}\n</tool_call><|im_end|>22 degrees.<|im_end|>",
            Text(true));
        Assert.Contains("<tool_response>\n22.0\n</tool_response>", Text(false), StringComparison.Ordinal);
        Assert.Contains("\"name\": \"get_current_weather\"}}\n</tools>", Text(false), StringComparison.Ordinal);

        // A built-in format has no way to show tool calls: one clear error instead of silently dropping them.
        var builtin = new SequenceCollator(encoder, new CollatorOptions { MaxLength = 4096 }, ChatTemplate.ChatMl);
        var e = Assert.Throws<InputException>(() => builtin.Tokenize(example));
        Assert.StartsWith("the row offers tools, which the built-in chatml format cannot show", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Preference_pairs_share_a_prompt_that_ends_with_a_tool_result()
    {
        string prompt = $"{User}, {{\"role\": \"assistant\", \"tool_calls\": [{Call}]}}, {Result}";
        var pair = Assert.IsType<PreferenceExample>(JinjaToolRowTests.Read(
            $"{{\"chosen\": [{prompt}, {Answer}], \"rejected\": [{prompt}, {{\"role\": \"assistant\", \"content\": \"Snow.\"}}], \"tools\": []}}"));
        Assert.True(pair.ImplicitPrompt);
        Assert.Equal(3, pair.Prompt.Messages!.Count);
        Assert.Equal("Snow.", Assert.Single(pair.Rejected.Messages!).Content);
        var collator = new SequenceCollator(new FuncTextEncoder(text => text.Select(ch => (int)ch).ToArray()), new CollatorOptions { MaxLength = 4096 }, JinjaToolRowTests.Template("qwen2.5-instruct"));
        var (chosen, _) = collator.TokenizePair(pair);
        Assert.Equal("22 degrees.<|im_end|>", new string([.. chosen.Ids.Where((_, i) => chosen.Trained[i]).Select(id => (char)id)]));
    }

    [Fact]
    public async Task Parquet_rows_with_nested_tool_calls_read_like_the_same_rows_in_jsonl()
    {
        // Parquet.Net writes the rows as a datasets library would: a list of message structs, each with every field
        // (null where a message has none), tool calls a list of structs, arguments a struct of the union of their keys.
        Message Msg(string role, string? content, ParquetCall[]? calls = null, string? name = null, string? id = null) =>
            new() { Role = role, Content = content, ToolCalls = calls, Name = name, ToolCallId = id };
        var rows = new[]
        {
            new ParquetRow
            {
                Messages = [Msg("user", "Weather in Paris?"), Msg("assistant", null, [new() { Type = "function", Id = "call12345", Function = new() { Name = "get_current_weather", Arguments = new() { Location = "Paris", Unit = "celsius" } } }]),
                    Msg("tool", "22.0", name: "get_current_weather", id: "call12345"), Msg("assistant", "22 degrees.")],
                Tools = "[{\"type\": \"function\", \"function\": {\"name\": \"get_current_weather\"}}]",
            },
            new ParquetRow { Messages = [Msg("user", "hi"), Msg("assistant", "yo")] },
        };
        string path = dir.Sub("tools.parquet");
        await using (var file = File.Create(path))
        {
            await ParquetSerializer.SerializeAsync(rows, file);
        }

        var read = ParquetDatasetReader.ReadAll(path).Cast<MessagesExample>().ToList();
        var expected = JinjaToolRowTests.Read(
            $"{{\"messages\": [{User}, {{\"role\": \"assistant\", \"tool_calls\": [{{\"id\": \"call12345\", \"function\": {{\"name\": \"get_current_weather\", \"arguments\": {{\"location\": \"Paris\", \"unit\": \"celsius\"}}}}}}]}}, {Result}, {Answer}]}}");
        Assert.Equal(((MessagesExample)expected).Messages, read[0].Messages);
        Assert.Equal("get_current_weather", read[0].Tools!.Value[0].GetProperty("function").GetProperty("name").GetString());
        Assert.Equal([new ChatMessage("user", "hi"), new ChatMessage("assistant", "yo")], read[1].Messages);
        Assert.Null(read[1].Tools);
    }

    private sealed class ParquetRow
    {
        [JsonPropertyName("messages")]
        public Message[]? Messages { get; set; }

        [JsonPropertyName("tools")]
        public string? Tools { get; set; }
    }

    private sealed class Message
    {
        [JsonPropertyName("role")]
        public string? Role { get; set; }

        [JsonPropertyName("content")]
        public string? Content { get; set; }

        [JsonPropertyName("tool_calls")]
        public ParquetCall[]? ToolCalls { get; set; }

        [JsonPropertyName("name")]
        public string? Name { get; set; }

        [JsonPropertyName("tool_call_id")]
        public string? ToolCallId { get; set; }
    }

    private sealed class ParquetCall
    {
        [JsonPropertyName("type")]
        public string? Type { get; set; }

        [JsonPropertyName("id")]
        public string? Id { get; set; }

        [JsonPropertyName("function")]
        public Function? Function { get; set; }
    }

    private sealed class Function
    {
        [JsonPropertyName("name")]
        public string? Name { get; set; }

        [JsonPropertyName("arguments")]
        public Arguments? Arguments { get; set; }
    }

    private sealed class Arguments
    {
        [JsonPropertyName("location")]
        public string? Location { get; set; }

        [JsonPropertyName("unit")]
        public string? Unit { get; set; }
    }
}
