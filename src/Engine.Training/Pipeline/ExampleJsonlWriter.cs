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
            json.WriteEndObject();
        }

        json.WriteEndArray();
    }
}
