using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using Engine.Core;
using Engine.Core.IO;

namespace Engine.Models.Chat;

/// <summary>The prompt formats: three Engine renders itself (fixed strings), and a model's own Jinja template, interpreted.</summary>
public enum ChatTemplateKind
{
    /// <summary>ChatML (Qwen, SmolLM): <c>&lt;|im_start|&gt;role\ncontent&lt;|im_end|&gt;\n</c>.</summary>
    ChatMl,
    /// <summary>Llama 3: <c>&lt;|begin_of_text|&gt;</c> then <c>&lt;|start_header_id|&gt;role&lt;|end_header_id|&gt;\n\ncontent&lt;|eot_id|&gt;</c>, content trimmed.</summary>
    Llama3,
    /// <summary>Alpaca: <c>### Instruction:\n…\n\n### Input:\n…\n\n### Response:\n…</c>.</summary>
    Alpaca,

    /// <summary>A Jinja <c>chat_template</c> (tokenizer_config.json or chat_template.jinja) run by the interpreter.</summary>
    Jinja,
}

/// <summary>
/// A chat template by name: turns <see cref="ChatMessage"/> lists into prompt text plus the character spans of the
/// assistant's turns (for loss masks), optionally ending with the assistant header (a generation prompt).
/// </summary>
public sealed partial class ChatTemplate
{
    private ChatTemplate(ChatTemplateKind kind, string? defaultSystemPrompt)
    {
        Kind = kind;
        DefaultSystemPrompt = defaultSystemPrompt;
    }

    /// <summary>ChatML with no default system turn.</summary>
    public static ChatTemplate ChatMl { get; } = new(ChatTemplateKind.ChatMl, null);

    /// <summary>Llama 3.</summary>
    public static ChatTemplate Llama3 { get; } = new(ChatTemplateKind.Llama3, null);

    /// <summary>Alpaca.</summary>
    public static ChatTemplate Alpaca { get; } = new(ChatTemplateKind.Alpaca, null);

    /// <summary>
    /// The largest <c>tokenizer_config.json</c> or <c>chat_template.jinja</c> read (16 MiB; real ones are under 100 KB,
    /// and a 300 MB one once cost 2.1 GB before any check).
    /// </summary>
    public const long MaxTokenizerFileBytes = 16 << 20;

    /// <summary>Names accepted by <see cref="FromName"/>.</summary>
    public static IReadOnlyList<string> Names { get; } = ["chatml", "llama3", "alpaca"];

    /// <summary>Which format.</summary>
    public ChatTemplateKind Kind { get; }

    /// <summary>The name: <c>chatml</c>, <c>llama3</c>, <c>alpaca</c>, or <c>jinja</c> for an interpreted template.</summary>
    public string Name => Kind switch { ChatTemplateKind.ChatMl => "chatml", ChatTemplateKind.Llama3 => "llama3", ChatTemplateKind.Jinja => "jinja", _ => "alpaca" };

    /// <summary>A system turn inserted when a conversation has none (Qwen2.5 and SmolLM2 templates have one).</summary>
    public string? DefaultSystemPrompt { get; }

    /// <summary>
    /// What follows each assistant turn's content: <c>&lt;|im_end|&gt;</c>, <c>&lt;|eot_id|&gt;</c>, nothing for Alpaca
    /// (append EOS instead), and the tokenizer's <c>eos_token</c> for an interpreted template.
    /// </summary>
    public string EndOfTurn => Kind switch
    {
        ChatTemplateKind.ChatMl => "<|im_end|>",
        ChatTemplateKind.Llama3 => "<|eot_id|>",
        ChatTemplateKind.Jinja => tokens.TryGetValue("eos_token", out var eos) && eos is string s ? s : "",
        _ => "",
    };

    /// <summary>The same built-in template with a default system turn (null for none).</summary>
    /// <exception cref="InvalidOperationException">An interpreted template (its text decides its system turn).</exception>
    public ChatTemplate WithDefaultSystemPrompt(string? prompt) =>
        Kind == ChatTemplateKind.Jinja ? throw new InvalidOperationException("an interpreted template's default system turn is part of its text") : new(Kind, prompt);

    /// <summary>
    /// The template called <paramref name="name"/> (case-insensitive; <c>qwen</c>/<c>smollm</c> mean chatml), or the Jinja
    /// template in the file <paramref name="name"/> when it ends with <c>.jinja</c> (interpreted, no special tokens).
    /// </summary>
    /// <exception cref="InputException">Unknown name, a missing or malformed .jinja file.</exception>
    public static ChatTemplate FromName(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        if (name.EndsWith(".jinja", StringComparison.OrdinalIgnoreCase))
        {
            return File.Exists(name)
                ? FromText(InputFiles.ReadAllText(name, MaxTokenizerFileBytes, "the chat template"), name, new Dictionary<string, object?>())
                : throw new InputException($"--chat-template: file '{name}' does not exist");
        }

        return name.Trim().ToLowerInvariant() switch
        {
            "chatml" or "qwen" or "qwen2" or "smollm" => ChatMl,
            "llama3" or "llama-3" => Llama3,
            "alpaca" => Alpaca,
            _ => throw new InputException($"unknown chat template '{name}' (--chat-template takes {string.Join(", ", Names)} or a .jinja file)"),
        };
    }

    /// <summary>
    /// Recognises a Jinja <c>chat_template</c> by its distinctive markers (<c>&lt;|im_start|&gt;</c>,
    /// <c>&lt;|start_header_id|&gt;</c>, <c>### Instruction:</c>); null when it is none of the known families. A ChatML
    /// template's literal default system turn (Qwen2.5, SmolLM2) is kept.
    /// </summary>
    public static ChatTemplate? Detect(string jinja)
    {
        ArgumentNullException.ThrowIfNull(jinja);
        if (jinja.Contains("<|im_start|>", StringComparison.Ordinal))
        {
            Match m;
            try
            {
                m = DefaultChatMlSystem().Match(jinja);
            }
            catch (RegexMatchTimeoutException e)
            {
                throw new InputException($"chat template: its default system turn could not be read within {e.MatchTimeout.TotalSeconds:0} s ({jinja.Length} characters)", e);
            }

            return m.Success ? ChatMl.WithDefaultSystemPrompt(UnescapeJinja(m.Groups["p"].Value)) : ChatMl;
        }

        if (jinja.Contains("<|start_header_id|>", StringComparison.Ordinal))
        {
            return Llama3;
        }

        return jinja.Contains("### Instruction:", StringComparison.Ordinal) ? Alpaca : null;
    }

    /// <summary>
    /// The template of a tokenizer: <c>chat_template.jinja</c> in <paramref name="directory"/>, else the
    /// <c>chat_template</c> field of its <c>tokenizer_config.json</c> (a string, or a list of named templates: the one
    /// called <paramref name="templateName"/>, by default <c>default</c>). The special tokens of tokenizer_config.json
    /// are its variables. Text Engine wrote for a built-in format (<see cref="Jinja"/>) reads back as that format; any
    /// other text is interpreted (<see cref="ChatTemplateKind.Jinja"/>). Null when there is no template.
    /// </summary>
    /// <exception cref="InputException">A file is malformed or too large, the named template is missing, or the template does not parse (file, line and column).</exception>
    public static ChatTemplate? FromTokenizerDirectory(string directory, string? templateName = null)
    {
        ArgumentNullException.ThrowIfNull(directory);
        string jinja = Path.Combine(directory, "chat_template.jinja");
        string config = Path.Combine(directory, "tokenizer_config.json");
        byte[]? configBytes = File.Exists(config) ? InputFiles.ReadAllBytes(config, MaxTokenizerFileBytes, "the tokenizer config") : null;
        if (File.Exists(jinja))
        {
            var special = configBytes is null ? new Dictionary<string, object?>() : ReadConfig(configBytes, config, null).Tokens;
            return FromText(InputFiles.ReadAllText(jinja, MaxTokenizerFileBytes, "the chat template"), jinja, special);
        }

        return configBytes is null ? null : FromTokenizerConfig(configBytes, config, templateName);
    }

    /// <summary>The template of a tokenizer_config.json's <c>chat_template</c> field; null when absent.</summary>
    /// <exception cref="InputException">The JSON is malformed, the field has the wrong type, or the template does not parse.</exception>
    public static ChatTemplate? FromTokenizerConfig(string json, string source = "tokenizer_config.json", string? templateName = null)
    {
        ArgumentNullException.ThrowIfNull(json);
        return FromTokenizerConfig(Encoding.UTF8.GetBytes(json), source, templateName);
    }

    /// <summary>The template of the <c>chat_template</c> field of a tokenizer_config.json given as UTF-8 (see <see cref="FromTokenizerDirectory"/>).</summary>
    /// <exception cref="InputException">The JSON is malformed, the field has the wrong type, or the template does not parse.</exception>
    public static ChatTemplate? FromTokenizerConfig(ReadOnlyMemory<byte> utf8Json, string source = "tokenizer_config.json", string? templateName = null)
    {
        var (text, name, special) = ReadConfig(utf8Json, source, templateName);
        return text is null ? null : FromText(text, name is null ? $"{source} (chat_template)" : $"{source} (chat_template '{name}')", special);
    }

    // A built-in when the text is exactly what Engine writes for one, else the interpreted template.
    private static ChatTemplate FromText(string text, string source, IReadOnlyDictionary<string, object?> special)
    {
        if (Detect(text) is { } builtIn && string.Equals(builtIn.Jinja, text, StringComparison.Ordinal))
        {
            return builtIn;
        }

        return FromJinja(text, source, special);
    }

    // The chosen template text of a tokenizer_config.json (null when none), the name it was listed under, and the special tokens.
    private static (string? Text, string? Name, Dictionary<string, object?> Tokens) ReadConfig(ReadOnlyMemory<byte> utf8Json, string source, string? templateName)
    {
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(utf8Json, new JsonDocumentOptions { MaxDepth = 64 });
        }
        catch (JsonException e)
        {
            throw new InputException(source, e.LineNumber + 1, null, $"not valid JSON: {e.Message}", e);
        }

        using (doc)
        {
            var special = SpecialTokensOf(doc.RootElement);
            if (doc.RootElement.ValueKind != JsonValueKind.Object || !doc.RootElement.TryGetProperty("chat_template", out var t) || t.ValueKind == JsonValueKind.Null)
            {
                return (null, null, special);
            }

            if (t.ValueKind == JsonValueKind.String)
            {
                return (Text(t, source), null, special);
            }

            if (t.ValueKind != JsonValueKind.Array)
            {
                throw new InputException(source, null, "chat_template", "must be a string or a list of named templates");
            }

            string wanted = templateName ?? "default";
            (string Text, string? Name)? first = null;
            var names = new List<string>();
            foreach (var item in t.EnumerateArray())
            {
                if (item.ValueKind != JsonValueKind.Object || !item.TryGetProperty("template", out var body) || body.ValueKind != JsonValueKind.String)
                {
                    throw new InputException(source, null, "chat_template", "list items must be objects with a string 'template'");
                }

                string? name = item.TryGetProperty("name", out var n) && n.ValueKind == JsonValueKind.String ? n.GetString() : null;
                names.Add(name ?? "(unnamed)");
                if (name == wanted)
                {
                    return (Text(body, source), name, special);
                }

                first ??= (Text(body, source), name);
            }

            if (templateName is not null)
            {
                throw new InputException(source, null, "chat_template", $"has no template named '{templateName}' (it has {string.Join(", ", names)})");
            }

            return first is { } f ? (f.Text, f.Name, special) : (null, null, special);
        }
    }

    // A JSON string as text; an escaped lone surrogate ("\ud800") cannot be one.
    private static string Text(JsonElement value, string source)
    {
        try
        {
            return value.GetString()!;
        }
        catch (InvalidOperationException e)
        {
            throw new InputException(source, null, "chat_template", "not valid Unicode text (an escaped lone surrogate)", e);
        }
    }

    /// <summary>
    /// The template to use: the one named by <paramref name="name"/> when given (an explicit choice wins), else the one
    /// in the tokenizer files of <paramref name="tokenizerDirectory"/> (interpreted), else null when those files carry no
    /// template at all (a base model, or a checkpoint trained without one).
    /// </summary>
    /// <exception cref="InputException">No name was given and the directory's template is malformed.</exception>
    public static ChatTemplate? Resolve(string? name, string? tokenizerDirectory)
    {
        if (!string.IsNullOrWhiteSpace(name))
        {
            return FromName(name);
        }

        return tokenizerDirectory is null ? null : FromTokenizerDirectory(tokenizerDirectory);
    }

    /// <summary>
    /// The Alpaca prompt of an instruction and an optional input, up to and including the response header:
    /// <c>### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:\n</c> (no Input section when empty).
    /// </summary>
    public static string AlpacaPrompt(string instruction, string? input)
    {
        ArgumentNullException.ThrowIfNull(instruction);
        return string.IsNullOrEmpty(input)
            ? $"### Instruction:\n{instruction}\n\n### Response:\n"
            : $"### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:\n";
    }

    /// <summary>
    /// Renders <paramref name="messages"/>; with <paramref name="addGenerationPrompt"/> the text ends with the assistant
    /// header so a model continues with the assistant's turn.
    /// </summary>
    /// <exception cref="ArgumentException">A message has an unknown role (built-in formats) or null content.</exception>
    /// <exception cref="InputException">An interpreted template failed (see <see cref="Render(IReadOnlyList{ChatMessage}, bool, IReadOnlyDictionary{string, object?})"/>).</exception>
    public RenderedChat Render(IReadOnlyList<ChatMessage> messages, bool addGenerationPrompt = false)
    {
        ArgumentNullException.ThrowIfNull(messages);
        if (program is not null)
        {
            int bad = messages.ToList().FindIndex(m => m?.Role is null || m.Content is null);
            return bad < 0 ? Render(messages, addGenerationPrompt, null) : throw new ArgumentException($"message {bad}: role or content is null", nameof(messages));
        }

        var text = new StringBuilder();
        var spans = new List<CharSpan>();
        if (Kind == ChatTemplateKind.Llama3)
        {
            text.Append("<|begin_of_text|>");
        }

        IEnumerable<ChatMessage> turns = messages;
        if (DefaultSystemPrompt is not null && (messages.Count == 0 || messages[0].Role != ChatMessage.System))
        {
            turns = messages.Prepend(new ChatMessage(ChatMessage.System, DefaultSystemPrompt));
        }

        int index = 0;
        foreach (var message in turns)
        {
            if (message is null || message.Role is not (ChatMessage.System or ChatMessage.User or ChatMessage.Assistant) || message.Content is null)
            {
                throw message?.Role is ChatMessage.Tool or ChatMessage.Ipython
                    ? ToolsNeedJinja($"message {index} is a tool's result")
                    : new ArgumentException(
                        $"message {index}: {(message is null ? "is null" : message.Content is null ? "content is null" : $"role '{message.Role}' is not one of system, user, assistant")}",
                        nameof(messages));
            }

            if (message.ToolCalls is not null)
            {
                throw ToolsNeedJinja($"message {index} calls tools");
            }

            if (Kind == ChatTemplateKind.Alpaca && index > 0)
            {
                text.Append("\n\n");
            }

            text.Append(Header(message.Role));
            int start = text.Length;
            text.Append(Kind == ChatTemplateKind.Llama3 ? message.Content.Trim() : message.Content);
            text.Append(EndOfTurn);
            if (message.Role == ChatMessage.Assistant)
            {
                spans.Add(new CharSpan(start, text.Length - start));
            }

            if (Kind == ChatTemplateKind.ChatMl)
            {
                text.Append('\n');
            }

            index++;
        }

        if (addGenerationPrompt)
        {
            if (Kind == ChatTemplateKind.Alpaca && index > 0)
            {
                text.Append("\n\n");
            }

            text.Append(Header(ChatMessage.Assistant));
        }

        return new RenderedChat(text.ToString(), spans);
    }

    /// <inheritdoc/>
    public override string ToString() => Name;

    /// <summary>The error for tool calls, tool results or <c>tools</c> given to a built-in format, which has no way to show them.</summary>
    public InputException ToolsNeedJinja(string what) => new(
        $"{what}, which the built-in {Name} format cannot show: use a --model or --tokenizer directory whose tokenizer_config.json has a chat_template with tool calling (Qwen2.5, Llama 3.1, Mistral v0.3)");

    private string Header(string role) => Kind switch
    {
        ChatTemplateKind.ChatMl => $"<|im_start|>{role}\n",
        ChatTemplateKind.Llama3 => $"<|start_header_id|>{role}<|end_header_id|>\n\n",
        _ => role switch { ChatMessage.User => "### Instruction:\n", ChatMessage.Assistant => "### Response:\n", _ => "" },
    };

    // Jinja string literals escape newlines and quotes like Python; only those occur in default system prompts.
    private static string UnescapeJinja(string literal) =>
        literal.Replace("\\n", "\n", StringComparison.Ordinal).Replace("\\'", "'", StringComparison.Ordinal).Replace("\\\\", "\\", StringComparison.Ordinal);

    [GeneratedRegex(@"'<\|im_start\|>system\\n(?<p>(?:[^'\\]|\\.)*?)<\|im_end\|>\\n'", RegexOptions.CultureInvariant, matchTimeoutMilliseconds: 2000)]
    private static partial Regex DefaultChatMlSystem();
}
