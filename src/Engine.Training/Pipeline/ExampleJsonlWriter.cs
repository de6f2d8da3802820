using System.Text.Json;
using Engine.Training.Data;

namespace Engine.Training.Pipeline;

/// <summary>Writes examples as JSONL in the TRL field conventions, the inverse of <see cref="JsonlReader"/>.</summary>
public static class ExampleJsonlWriter
{
    private static readonly byte[] NewLine = "\n"u8.ToArray();

    /// <summary>Writes one JSON object per example, each on its own line ("\n"), UTF-8 without BOM, its other columns after its fields.</summary>
    /// <exception cref="NotSupportedException">An example type with no JSONL form here (Alpaca is read, never written).</exception>
    public static void Write(Stream stream, IEnumerable<Example> examples)
    {
        ArgumentNullException.ThrowIfNull(stream);
        ArgumentNullException.ThrowIfNull(examples);
        foreach (var example in examples)
        {
            using (var json = new Utf8JsonWriter(stream))
            {
                WriteObject(json, example);
            }

            stream.Write(NewLine);
        }
    }

    private static void WriteObject(Utf8JsonWriter json, Example example)
    {
        json.WriteStartObject();
        switch (example)
        {
            case TextExample t:
                json.WriteString("text", t.Text);
                break;
            case PromptCompletionExample pc:
                WriteField(json, "prompt", pc.Prompt);
                WriteField(json, "completion", pc.Completion);
                break;
            case MessagesExample m:
                json.WritePropertyName("messages");
                WriteMessages(json, m.Messages);
                break;
            case PreferenceExample p:
                if (!p.ImplicitPrompt)
                {
                    WriteField(json, "prompt", p.Prompt);
                }

                WriteField(json, "chosen", p.Chosen);
                WriteField(json, "rejected", p.Rejected);
                if (p.Margin is double margin)
                {
                    json.WriteNumber("margin", margin);
                }

                break;
            case RankingExample r:
                WriteField(json, "prompt", r.Prompt);
                json.WriteStartArray("responses");
                foreach (var response in r.Responses)
                {
                    WriteValue(json, response);
                }

                json.WriteEndArray();
                json.WriteStartArray("ranking");
                foreach (int index in r.Ranking)
                {
                    json.WriteNumberValue(index);
                }

                json.WriteEndArray();
                break;
            case PromptExample pe:
                WriteField(json, "prompt", pe.Prompt);
                break;
            default:
                throw new NotSupportedException($"no JSONL form for {example.GetType().Name}");
        }

        if (example.Tools is { } tools)
        {
            json.WritePropertyName("tools");
            tools.WriteTo(json);
        }

        foreach (var (name, value) in example.Columns)
        {
            json.WritePropertyName(name);
            value.WriteTo(json);
        }

        json.WriteEndObject();
    }

    private static void WriteField(Utf8JsonWriter json, string name, TextOrChat value)
    {
        json.WritePropertyName(name);
        WriteValue(json, value);
    }

    private static void WriteValue(Utf8JsonWriter json, TextOrChat value)
    {
        if (value.IsChat)
        {
            WriteMessages(json, value.Messages!);
        }
        else
        {
            json.WriteStringValue(value.Text);
        }
    }

    private static void WriteMessages(Utf8JsonWriter json, IReadOnlyList<Engine.Models.Chat.ChatMessage> messages)
    {
        json.WriteStartArray();
        foreach (var m in messages)
        {
            json.WriteStartObject();
            json.WriteString("role", m.Role);
            json.WriteString("content", m.Content);
            if (m.ToolCalls is { } calls)
            {
                WriteToolCalls(json, calls);
            }

            if (m.Name is { } name)
            {
                json.WriteString("name", name);
            }

            if (m.ToolCallId is { } id)
            {
                json.WriteString("tool_call_id", id);
            }

            json.WriteEndObject();
        }

        json.WriteEndArray();
    }

    // TRL's form: [{"id"?: …, "type": "function", "function": {"name": …, "arguments": {…}}}].
    private static void WriteToolCalls(Utf8JsonWriter json, IReadOnlyList<Engine.Models.Chat.ChatToolCall> calls)
    {
        json.WriteStartArray("tool_calls");
        foreach (var call in calls)
        {
            json.WriteStartObject();
            if (call.Id is { } id)
            {
                json.WriteString("id", id);
            }

            json.WriteString("type", "function");
            json.WriteStartObject("function");
            json.WriteString("name", call.Name);
            json.WritePropertyName("arguments");
            call.Arguments.WriteTo(json);
            json.WriteEndObject();
            json.WriteEndObject();
        }

        json.WriteEndArray();
    }
}
