using System.Text.Json;
using Engine.Models.Chat;

namespace Engine.Training.Data;

/// <summary>Turns one parsed JSONL object into a typed example, with field names remapped and every fault located.</summary>
internal sealed class ExampleParser
{
    /// <summary>The conventional field names that can be remapped.</summary>
    public static readonly string[] KnownFields =
        ["text", "prompt", "completion", "instruction", "input", "output", "messages", "chosen", "rejected", "margin", "responses", "ranking", "label", "tools"];

    private readonly string source;
    private readonly DatasetOptions options;
    private readonly Dictionary<string, string> names = new(StringComparer.Ordinal);

    public ExampleParser(string source, DatasetOptions options)
    {
        this.source = source;
        this.options = options;
        var fieldNames = options.FieldNames;
        foreach (string f in KnownFields)
        {
            names[f] = f;
        }

        foreach (var (conventional, actual) in fieldNames ?? new Dictionary<string, string>())
        {
            if (!names.ContainsKey(conventional))
            {
                throw new ArgumentException($"field mapping: '{conventional}' is not a dataset field (known: {string.Join(", ", KnownFields)})", nameof(options));
            }

            ArgumentException.ThrowIfNullOrEmpty(actual, nameof(options));
            names[conventional] = actual;
        }
    }

    /// <summary>
    /// One record of a dataset (a JSONL line, a Parquet row as JSON) as an example: it must be an object; when
    /// <paramref name="format"/> is <see cref="DatasetFormat.Auto"/> it is decided from this record and kept for the next.
    /// </summary>
    public Example ParseRecord(JsonElement root, ref DatasetFormat format, long line)
    {
        if (root.ValueKind != JsonValueKind.Object)
        {
            throw new DatasetException(source, line, null, $"expected a JSON object, got {root.ValueKind.ToString().ToLowerInvariant()}");
        }

        try
        {
            var detected = format == DatasetFormat.Auto ? Detect(root, line) : format;
            var example = Parse(root, detected, line);
            format = detected;
            return example;
        }
        catch (InvalidOperationException e)
        {
            // The parser names the field of a bad string; this catches what it cannot name (a member name with a lone surrogate).
            throw new DatasetException(source, line, null, $"not valid Unicode text: {e.Message}", e);
        }
    }

    public DatasetFormat Detect(JsonElement root, long line)
    {
        bool Has(string f) => Present(root, f);
        if (Has("chosen") || Has("rejected"))
        {
            return DatasetFormat.Preference;
        }

        if (Has("responses") || Has("ranking"))
        {
            return DatasetFormat.Ranking;
        }

        if (Has("messages"))
        {
            var m = root.GetProperty(names["messages"]);
            bool endsWithAssistant = m.ValueKind == JsonValueKind.Array && m.GetArrayLength() > 0
                && m[m.GetArrayLength() - 1] is { ValueKind: JsonValueKind.Object } last
                && last.TryGetProperty("role", out var role) && role.ValueKind == JsonValueKind.String && role.ValueEquals(ChatMessage.Assistant);
            return endsWithAssistant ? DatasetFormat.Messages : DatasetFormat.Prompt;
        }

        if (Has("instruction") || Has("output"))
        {
            return DatasetFormat.Alpaca;
        }

        if (Has("completion"))
        {
            return Has("label") ? DatasetFormat.Unpaired : DatasetFormat.PromptCompletion;
        }

        if (Has("text"))
        {
            return DatasetFormat.Text;
        }

        if (Has("prompt"))
        {
            return DatasetFormat.Prompt;
        }

        string found = string.Join(", ", root.EnumerateObject().Take(10).Select(p => $"'{NameOf(p)}'"));
        throw new DatasetException(source, line, null,
            $"cannot tell the dataset format from fields {(found.Length == 0 ? "(none)" : found)}; expected text, prompt/completion, " +
            "instruction/input/output, messages, prompt/chosen/rejected or prompt/responses/ranking (remap field names if they differ)");
    }

    public Example Parse(JsonElement root, DatasetFormat format, long line)
    {
        var at = new Location(source, line);
        Example example = format switch
        {
            DatasetFormat.Text => new TextExample(RequiredString(root, "text", at)),
            DatasetFormat.PromptCompletion => PromptCompletion(root, at),
            DatasetFormat.Alpaca => new AlpacaExample(RequiredString(root, "instruction", at), OptionalString(root, "input", at) ?? "", RequiredString(root, "output", at)),
            DatasetFormat.Messages => Conversation(root, at),
            DatasetFormat.Preference => Preference(root, at),
            DatasetFormat.Ranking => Ranking(root, at),
            DatasetFormat.Prompt => PromptOnly(root, at),
            DatasetFormat.Unpaired => Unpaired(root, at),
            _ => throw new ArgumentOutOfRangeException(nameof(format), format, "not a concrete dataset format"),
        };
        var tools = Tools(root, at);
        if (tools is not null && !IsConversation(example))
        {
            throw at.Error(names["tools"], "tools are offered to conversations (message lists), and this row is plain text");
        }

        return example with { Source = source, Line = line, Columns = OtherColumns(root, format) ?? example.Columns, Tools = tools };
    }

    /// <summary>
    /// The row's fields that are none of the (remapped) known fields, cloned so they outlive the parsed line; null when
    /// there are none.
    /// </summary>
    private Dictionary<string, JsonElement>? OtherColumns(JsonElement root, DatasetFormat format)
    {
        Dictionary<string, JsonElement>? columns = null;
        foreach (var property in root.EnumerateObject())
        {
            // A label is a field of the unpaired format only; elsewhere it stays a column (e.g. for reward functions).
            bool label = property.Name == names["label"] && format != DatasetFormat.Unpaired;
            if (label || !names.ContainsValue(property.Name))
            {
                columns ??= new Dictionary<string, JsonElement>(StringComparer.Ordinal);
                columns[property.Name] = property.Value.Clone();
            }
        }

        return columns;
    }

    private static bool IsConversation(Example example) => example switch
    {
        MessagesExample => true,
        PromptCompletionExample pc => pc.Prompt.IsChat,
        PreferenceExample p => p.Chosen.IsChat,
        RankingExample r => r.Prompt.IsChat,
        PromptExample p => p.Prompt.IsChat,
        UnpairedPreferenceExample u => u.Prompt.IsChat,
        _ => false,
    };

    private PromptCompletionExample PromptCompletion(JsonElement root, Location at)
    {
        var prompt = RequiredTextOrChat(root, "prompt", at);
        var completion = RequiredTextOrChat(root, "completion", at);
        SameKind(prompt, completion, "completion", at);
        return new PromptCompletionExample(prompt, completion);
    }

    private UnpairedPreferenceExample Unpaired(JsonElement root, Location at)
    {
        var pair = PromptCompletion(root, at);
        var label = Required(root, "label", at);
        return label.ValueKind is JsonValueKind.True or JsonValueKind.False
            ? new UnpairedPreferenceExample(pair.Prompt, pair.Completion, label.GetBoolean())
            : throw at.Error(names["label"], $"expected true (desirable) or false (undesirable), got {Show(label)}");
    }

    private MessagesExample Conversation(JsonElement root, Location at)
    {
        var messages = Messages(Required(root, "messages", at), names["messages"], at);
        if (!messages.Any(m => m.Role == ChatMessage.Assistant))
        {
            throw at.Error(names["messages"], "no assistant turn to train on");
        }

        return new MessagesExample(messages);
    }

    private PromptExample PromptOnly(JsonElement root, Location at)
    {
        if (Present(root, "prompt"))
        {
            return new PromptExample(RequiredTextOrChat(root, "prompt", at));
        }

        var messages = Messages(Required(root, "messages", at), names["messages"], at);
        if (messages.Count == 0 || messages[^1].Role == ChatMessage.Assistant)
        {
            throw at.Error(names["messages"], messages.Count == 0
                ? "a prompt needs at least one message"
                : "the last message is the assistant's; a prompt for generation ends with a user or system turn");
        }

        return new PromptExample(TextOrChat.FromMessages(messages));
    }

    private PreferenceExample Preference(JsonElement root, Location at)
    {
        var chosen = RequiredTextOrChat(root, "chosen", at);
        var rejected = RequiredTextOrChat(root, "rejected", at);
        SameKind(chosen, rejected, "rejected", at);
        double? margin = null;
        if (Present(root, "margin"))
        {
            var m = root.GetProperty(names["margin"]);
            margin = m.ValueKind == JsonValueKind.Number && m.TryGetDouble(out double v) && double.IsFinite(v)
                ? v
                : throw at.Error(names["margin"], $"expected a finite number, got {Show(m)}");
        }

        if (Present(root, "prompt"))
        {
            var prompt = RequiredTextOrChat(root, "prompt", at);
            SameKind(chosen, prompt, "prompt", at);
            return new PreferenceExample(prompt, chosen, rejected, margin, ImplicitPrompt: false);
        }

        var (p, c, r) = CommonPrefix.Split(chosen, rejected);
        if (p is null)
        {
            throw at.Error(names["chosen"], $"no '{names["prompt"]}' field, and chosen and rejected have no common prefix to take it from");
        }

        if (c is null || r is null)
        {
            throw at.Error(names[c is null ? "chosen" : "rejected"],
                $"nothing is left of it after the prompt shared with '{names[c is null ? "rejected" : "chosen"]}' (identical, or a prefix of the other)");
        }

        return new PreferenceExample(p, c, r, margin, ImplicitPrompt: true);
    }

    private RankingExample Ranking(JsonElement root, Location at)
    {
        var prompt = RequiredTextOrChat(root, "prompt", at);
        string responsesName = names["responses"], rankingName = names["ranking"];
        var array = Required(root, "responses", at);
        if (array.ValueKind != JsonValueKind.Array || array.GetArrayLength() < 2)
        {
            throw at.Error(responsesName, $"expected a list of at least 2 responses, got {Show(array)}");
        }

        if (array.GetArrayLength() > options.MaxRankingResponses)
        {
            throw at.Error(responsesName,
                $"{array.GetArrayLength()} responses, over the limit of {options.MaxRankingResponses} per ranking (a ranking of K trains on K(K-1)/2 pairs); split it into smaller rankings");
        }

        var responses = new List<TextOrChat>();
        int i = 0;
        foreach (var item in array.EnumerateArray())
        {
            var response = ParseTextOrChat(item, $"{responsesName}[{i}]", at);
            SameKind(prompt, response, $"{responsesName}[{i}]", at);
            responses.Add(response);
            i++;
        }

        var rankingArray = Required(root, "ranking", at);
        if (rankingArray.ValueKind != JsonValueKind.Array)
        {
            throw at.Error(rankingName, $"expected a list of response indices, best first, got {Show(rankingArray)}");
        }

        var ranking = new List<int>();
        var seen = new bool[responses.Count];
        foreach (var item in rankingArray.EnumerateArray())
        {
            if (item.ValueKind != JsonValueKind.Number || !item.TryGetInt32(out int index) || index < 0 || index >= responses.Count)
            {
                throw at.Error(rankingName, $"{Show(item)} is not an index of one of the {responses.Count} responses");
            }

            if (seen[index])
            {
                throw at.Error(rankingName, $"index {index} appears twice; the ranking must be a permutation of 0..{responses.Count - 1}");
            }

            seen[index] = true;
            ranking.Add(index);
        }

        if (ranking.Count != responses.Count)
        {
            throw at.Error(rankingName, $"ranks {ranking.Count} of the {responses.Count} responses; it must be a permutation of 0..{responses.Count - 1}");
        }

        return new RankingExample(prompt, responses, ranking);
    }

    private void SameKind(TextOrChat reference, TextOrChat other, string otherField, Location at)
    {
        if (reference.IsChat != other.IsChat)
        {
            string field = names.TryGetValue(otherField, out var mapped) ? mapped : otherField;
            throw at.Error(field, reference.IsChat ? "expected a list of messages like the other fields" : "expected a string like the other fields");
        }
    }

    private bool Present(JsonElement root, string field) =>
        root.TryGetProperty(names[field], out var v) && v.ValueKind != JsonValueKind.Null;

    private JsonElement Required(JsonElement root, string field, Location at) =>
        root.TryGetProperty(names[field], out var v) && v.ValueKind != JsonValueKind.Null
            ? v
            : throw at.Error(names[field], "missing");

    private string RequiredString(JsonElement root, string field, Location at)
    {
        var v = Required(root, field, at);
        return v.ValueKind == JsonValueKind.String ? Text(v, names[field], at) : throw at.Error(names[field], $"expected a string, got {Show(v)}");
    }

    private string? OptionalString(JsonElement root, string field, Location at) =>
        Present(root, field) ? RequiredString(root, field, at) : null;

    private TextOrChat RequiredTextOrChat(JsonElement root, string field, Location at) => ParseTextOrChat(Required(root, field, at), names[field], at);

    private TextOrChat ParseTextOrChat(JsonElement value, string field, Location at) => value.ValueKind switch
    {
        JsonValueKind.String => TextOrChat.FromText(Text(value, field, at)),
        JsonValueKind.Array => TextOrChat.FromMessages(Messages(value, field, at)),
        _ => throw at.Error(field, $"expected a string or a list of messages, got {Show(value)}"),
    };

    private List<ChatMessage> Messages(JsonElement value, string field, Location at)
    {
        if (value.ValueKind != JsonValueKind.Array)
        {
            throw at.Error(field, $"expected a list of messages, got {Show(value)}");
        }

        if (value.GetArrayLength() > options.MaxMessages)
        {
            throw at.Error(field, $"{value.GetArrayLength()} messages, over the limit of {options.MaxMessages} per conversation");
        }

        var list = new List<ChatMessage>(value.GetArrayLength());
        int i = 0;
        foreach (var item in value.EnumerateArray())
        {
            list.Add(Message(item, $"{field}[{i}]", at));
            i++;
        }

        return list;
    }

    // One message of TRL's format: role and content, and for tool calling the assistant's tool_calls and a tool turn's
    // name / tool_call_id. A null field is an absent one (Parquet rows carry every field of the struct).
    private ChatMessage Message(JsonElement item, string field, Location at)
    {
        if (item.ValueKind != JsonValueKind.Object)
        {
            throw at.Error(field, $"expected an object with 'role' and 'content', got {Show(item)}");
        }

        string? roleName = item.TryGetProperty("role", out var role) && role.ValueKind == JsonValueKind.String ? Text(role, $"{field}.role", at) : null;
        if (!ChatMessage.IsKnownRole(roleName))
        {
            throw at.Error($"{field}.role", $"must be \"system\", \"user\", \"assistant\", \"tool\" or \"ipython\", got {(item.TryGetProperty("role", out role) ? Show(role) : "nothing")}");
        }

        var calls = ToolCalls(item, $"{field}.tool_calls", at);
        if (calls is not null && roleName != ChatMessage.Assistant)
        {
            throw at.Error($"{field}.tool_calls", $"only assistant messages call tools, this one is '{roleName}'");
        }

        bool hasContent = item.TryGetProperty("content", out var content) && content.ValueKind != JsonValueKind.Null;
        if (hasContent ? content.ValueKind != JsonValueKind.String : calls is null)
        {
            throw at.Error($"{field}.content", $"must be a string{(roleName == ChatMessage.Assistant ? " (it may be left out when the message has tool_calls)" : "")}, got {(hasContent ? Show(content) : "nothing")}");
        }

        return new ChatMessage(roleName!, hasContent ? Text(content, $"{field}.content", at) : "")
        {
            ToolCalls = calls,
            Name = OptionalMember(item, "name", field, at),
            ToolCallId = OptionalMember(item, "tool_call_id", field, at),
        };
    }

    // An assistant's tool_calls: [{"type": "function", "function": {"name": "…", "arguments": {…}}, "id"?: "…"}]; an
    // empty list is none (datasets often carry one on every turn).
    private List<ChatToolCall>? ToolCalls(JsonElement message, string field, Location at)
    {
        if (!message.TryGetProperty("tool_calls", out var array) || array.ValueKind == JsonValueKind.Null)
        {
            return null;
        }

        if (array.ValueKind != JsonValueKind.Array)
        {
            throw at.Error(field, $"expected a list of tool calls, got {Show(array)}");
        }

        if (array.GetArrayLength() > options.MaxMessages)
        {
            throw at.Error(field, $"{array.GetArrayLength()} tool calls, over the limit of {options.MaxMessages} per message");
        }

        var calls = new List<ChatToolCall>(array.GetArrayLength());
        foreach (var call in array.EnumerateArray())
        {
            string at0 = $"{field}[{calls.Count}]";
            if (call.ValueKind != JsonValueKind.Object)
            {
                throw at.Error(at0, $"expected an object with 'type' and 'function', got {Show(call)}");
            }

            if (call.TryGetProperty("type", out var type) && type.ValueKind != JsonValueKind.Null && !(type.ValueKind == JsonValueKind.String && type.ValueEquals("function")))
            {
                throw at.Error($"{at0}.type", $"must be \"function\", got {Show(type)}");
            }

            if (!call.TryGetProperty("function", out var function) || function.ValueKind != JsonValueKind.Object)
            {
                throw at.Error($"{at0}.function", $"expected an object with 'name' and 'arguments', got {(call.TryGetProperty("function", out function) ? Show(function) : "nothing")}");
            }

            string? name = OptionalMember(function, "name", $"{at0}.function", at);
            if (string.IsNullOrEmpty(name))
            {
                throw at.Error($"{at0}.function.name", $"must be a function's name, got {(name is null ? "nothing" : "an empty string")}");
            }

            if (!function.TryGetProperty("arguments", out var arguments) || arguments.ValueKind != JsonValueKind.Object)
            {
                throw at.Error($"{at0}.function.arguments", $"expected an object of argument values, got {(function.TryGetProperty("arguments", out arguments) ? Show(arguments) : "nothing")}"
                    + (arguments.ValueKind == JsonValueKind.String ? " (arguments encoded as a JSON string must be decoded into an object)" : ""));
            }

            calls.Add(new ChatToolCall(name, arguments.Clone(), OptionalMember(call, "id", at0, at)));
        }

        return calls.Count == 0 ? null : calls;
    }

    // An optional string member of an object in a row (null or absent: none).
    private static string? OptionalMember(JsonElement parent, string member, string field, Location at)
    {
        if (!parent.TryGetProperty(member, out var value) || value.ValueKind == JsonValueKind.Null)
        {
            return null;
        }

        return value.ValueKind == JsonValueKind.String ? Text(value, $"{field}.{member}", at) : throw at.Error($"{field}.{member}", $"expected a string, got {Show(value)}");
    }

    // The tools column: the JSON schemas of the functions a template offers, a list of objects or that list as a JSON
    // string (as TRL accepts it); null when the row has none.
    private JsonElement? Tools(JsonElement root, Location at)
    {
        if (!Present(root, "tools"))
        {
            return null;
        }

        string field = names["tools"];
        var tools = root.GetProperty(field);
        if (tools.ValueKind == JsonValueKind.String)
        {
            try
            {
                using var doc = JsonDocument.Parse(Text(tools, field, at), new JsonDocumentOptions { MaxDepth = options.MaxJsonDepth });
                tools = doc.RootElement.Clone();
            }
            catch (JsonException e)
            {
                throw new DatasetException(at.Source, at.Line, field, $"a string that is not JSON: {e.Message}", e);
            }
        }

        if (tools.ValueKind != JsonValueKind.Array)
        {
            throw at.Error(field, $"expected a list of function schemas (objects), got {Show(tools)}");
        }

        if (tools.GetArrayLength() > options.MaxMessages)
        {
            throw at.Error(field, $"{tools.GetArrayLength()} tools, over the limit of {options.MaxMessages}");
        }

        int i = 0;
        foreach (var tool in tools.EnumerateArray())
        {
            if (tool.ValueKind != JsonValueKind.Object)
            {
                throw at.Error($"{field}[{i}]", $"expected a function schema (an object), got {Show(tool)}");
            }

            i++;
        }

        return tools.Clone();
    }

    // A JSON string as .NET text: an escaped lone surrogate ("\ud800") has no UTF-16 string and is a fault of the field.
    private static string Text(JsonElement value, string field, Location at)
    {
        try
        {
            return value.GetString()!;
        }
        catch (InvalidOperationException e)
        {
            throw new DatasetException(at.Source, at.Line, field, "not valid Unicode text (an escaped lone surrogate such as \\ud800)", e);
        }
    }

    // A member name for a message; a name with an escaped lone surrogate cannot become text and is described instead.
    private static string NameOf(JsonProperty property)
    {
        try
        {
            return property.Name;
        }
        catch (InvalidOperationException)
        {
            return "(not valid Unicode)";
        }
    }

    // A short rendering of a wrong value for an error message; never the whole of a huge one.
    private static string Show(JsonElement value)
    {
        string kind = value.ValueKind switch
        {
            JsonValueKind.Object => "an object",
            JsonValueKind.Array => $"a list of {value.GetArrayLength()}",
            JsonValueKind.String => "a string",
            JsonValueKind.Number => "a number",
            JsonValueKind.True or JsonValueKind.False => "a boolean",
            _ => "null",
        };
        if (value.ValueKind is JsonValueKind.Object or JsonValueKind.Array)
        {
            return kind;
        }

        string raw = value.GetRawText();
        return raw.Length <= 40 ? $"{kind} {raw}" : $"{kind} {raw[..37]}...";
    }

    private readonly record struct Location(string Source, long Line)
    {
        public DatasetException Error(string field, string detail) => new(Source, Line, field, detail);
    }
}

/// <summary>The implicit-prompt rule for preference pairs without a <c>prompt</c>.</summary>
public static class CommonPrefix
{
    /// <summary>
    /// Splits chosen and rejected into (prompt, chosen rest, rejected rest), TRL's <c>extract_prompt</c> rule: the prompt
    /// is their longest common prefix, by characters for strings (a trailing space moves to the responses, and a
    /// surrogate pair is never split) or by whole messages for conversations. Null prompt: nothing in common; null rest:
    /// nothing left of that response.
    /// </summary>
    public static (TextOrChat? Prompt, TextOrChat? Chosen, TextOrChat? Rejected) Split(TextOrChat chosen, TextOrChat rejected)
    {
        ArgumentNullException.ThrowIfNull(chosen);
        ArgumentNullException.ThrowIfNull(rejected);
        if (chosen.IsChat != rejected.IsChat)
        {
            throw new ArgumentException("chosen and rejected must both be text or both be messages");
        }

        if (chosen.IsChat)
        {
            var a = chosen.Messages!;
            var b = rejected.Messages!;
            int n = 0;
            while (n < a.Count && n < b.Count && a[n] == b[n])
            {
                n++;
            }

            return (n == 0 ? null : TextOrChat.FromMessages([.. a.Take(n)]),
                n == a.Count ? null : TextOrChat.FromMessages([.. a.Skip(n)]),
                n == b.Count ? null : TextOrChat.FromMessages([.. b.Skip(n)]));
        }

        string x = chosen.Text!, y = rejected.Text!;
        int k = x.AsSpan().CommonPrefixLength(y);
        if (k < x.Length && k < y.Length && k > 0 && x[k - 1] == ' ')
        {
            k--;
        }

        if (k > 0 && k < x.Length && char.IsLowSurrogate(x[k]))
        {
            k--;
        }

        return (k == 0 ? null : TextOrChat.FromText(x[..k]),
            k == x.Length ? null : TextOrChat.FromText(x[k..]),
            k == y.Length ? null : TextOrChat.FromText(y[k..]));
    }
}
