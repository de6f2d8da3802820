using System.Text.Json;
using Engine.Core;
using Engine.Models.Chat.Jinja;

namespace Engine.Models.Chat;

/// <summary>
/// Chat templates run by the Jinja interpreter: a model's own <c>chat_template</c>, with the special tokens of its
/// tokenizer_config.json as variables, and assistant spans taken from the template itself.
/// </summary>
public sealed partial class ChatTemplate
{
    private readonly JinjaTemplate? program;
    private readonly IReadOnlyDictionary<string, object?> tokens = new Dictionary<string, object?>();

    private ChatTemplate(JinjaTemplate program, IReadOnlyDictionary<string, object?> tokens)
    {
        Kind = ChatTemplateKind.Jinja;
        this.program = program;
        this.tokens = tokens;
    }

    /// <summary>The interpreted template (null for the built-in formats).</summary>
    public JinjaTemplate? Program => program;

    /// <summary>The special tokens given to an interpreted template as variables (<c>bos_token</c>, <c>eos_token</c>, …).</summary>
    public IReadOnlyDictionary<string, object?> SpecialTokens => tokens;

    /// <summary>The text of <c>bos_token</c> an interpreted template may print first; null when none.</summary>
    public string? BosToken => tokens.TryGetValue("bos_token", out var b) && b is string s && s.Length > 0 ? s : null;

    /// <summary>
    /// The built-in format this template renders like: its own kind, or for an interpreted template the family its text
    /// is recognised as (<see cref="Detect"/>); null when it is none of them.
    /// </summary>
    public ChatTemplateKind? Family => Kind == ChatTemplateKind.Jinja ? Detect(program!.Source)?.Kind : Kind;

    /// <summary>
    /// A template interpreted from Jinja <paramref name="text"/>. <paramref name="specialTokens"/> become variables
    /// (a tokenizer_config.json's <c>bos_token</c>, <c>eos_token</c>…); <paramref name="source"/> names the template in errors.
    /// </summary>
    /// <exception cref="JinjaException">The text does not parse (the message names <paramref name="source"/>, line and column).</exception>
    public static ChatTemplate FromJinja(string text, string source = "chat template", IReadOnlyDictionary<string, object?>? specialTokens = null, JinjaLimits? limits = null)
    {
        ArgumentNullException.ThrowIfNull(text);
        return new ChatTemplate(JinjaTemplate.Parse(text, source, limits), specialTokens ?? new Dictionary<string, object?>());
    }

    /// <summary>
    /// Renders an interpreted template with extra variables beside <c>messages</c>, <c>add_generation_prompt</c> and the
    /// special tokens: <c>tools</c>, <c>documents</c>, or any keyword a template reads (e.g. <c>enable_thinking</c>).
    /// Assistant spans come from the template's <c>{% generation %}</c> blocks when it has them, else from rendering
    /// each prefix of the conversation.
    /// </summary>
    /// <exception cref="JinjaException">The template failed (e.g. its own <c>raise_exception</c>).</exception>
    /// <exception cref="InputException">The assistant turns cannot be found by rendering prefixes.</exception>
    public RenderedChat Render(IReadOnlyList<ChatMessage> messages, bool addGenerationPrompt, IReadOnlyDictionary<string, object?>? variables)
    {
        ArgumentNullException.ThrowIfNull(messages);
        if (program is null)
        {
            return Render(messages, addGenerationPrompt);
        }

        var full = RenderJinja(messages, addGenerationPrompt, variables);
        if (program.HasGenerationBlocks)
        {
            return new RenderedChat(full.Text, full.GenerationSpans);
        }

        var spans = new List<CharSpan>();
        for (int i = 0; i < messages.Count; i++)
        {
            if (messages[i].Role == ChatMessage.Assistant)
            {
                spans.Add(AssistantSpan(messages, i, full.Text, variables));
            }
        }

        return new RenderedChat(full.Text, spans);
    }

    private JinjaRender RenderJinja(IEnumerable<ChatMessage> messages, bool addGenerationPrompt, IReadOnlyDictionary<string, object?>? variables)
    {
        var all = new Dictionary<string, object?>(tokens);
        foreach (var (name, value) in variables ?? new Dictionary<string, object?>())
        {
            all[name] = value;
        }

        all["messages"] = messages.ToList();
        all["add_generation_prompt"] = addGenerationPrompt;
        return program!.Render(all);
    }

    // Message i's text is what rendering messages[..(i+1)] adds to messages[..i] with the generation prompt (or, for
    // templates whose prompt differs, without it), trailing whitespace left out, as long as the whole conversation
    // starts the same way.
    private CharSpan AssistantSpan(IReadOnlyList<ChatMessage> messages, int i, string full, IReadOnlyDictionary<string, object?>? variables)
    {
        var before = messages.Take(i).ToList();
        string withPrompt = RenderJinja(before, true, variables).Text;
        int start = full.StartsWith(withPrompt, StringComparison.Ordinal) ? withPrompt.Length : -1;
        if (start < 0)
        {
            string plain = RenderJinja(before, false, variables).Text;
            start = full.StartsWith(plain, StringComparison.Ordinal) ? plain.Length : -1;
        }

        // What the turn adds is compared with a continuation of it: the conversation, or for the last turn the same
        // prefix with a generation prompt, so a trailer only the end of a conversation gets (eos_token) is left out.
        string upTo = RenderJinja(messages.Take(i + 1), false, variables).Text;
        string witness = i + 1 < messages.Count ? full : RenderJinja(messages.Take(i + 1), true, variables).Text;
        int end = 0;
        while (end < upTo.Length && end < witness.Length && upTo[end] == witness[end])
        {
            end++;
        }

        // Where the turn alone differs from the conversation (a trailer such as eos_token), the shared part may end inside
        // a marker both continue with ("<|" of "<|endoftext|>" and "<|user|>"): back off to a tag or whitespace boundary.
        while (end < upTo.Length && end > start && !char.IsWhiteSpace(upTo[end - 1]) && upTo[end - 1] != '>')
        {
            end--;
        }

        while (end > start && char.IsWhiteSpace(upTo[end - 1]))
        {
            end--;
        }

        if (start < 0 || end <= start || string.CompareOrdinal(upTo, 0, full, 0, end) != 0)
        {
            throw new InputException(
                program!.SourceName, null, null,
                $"message {i} (assistant) cannot be found by rendering the conversation's prefixes (the template renders earlier turns differently once later ones follow); mark the assistant's text with {{% generation %}}…{{% endgeneration %}}");
        }

        return new CharSpan(start, end - start);
    }

    /// <summary>The special tokens of a tokenizer_config.json: every top-level <c>*_token</c> that is a string or an added-token object.</summary>
    private static Dictionary<string, object?> SpecialTokensOf(JsonElement config)
    {
        var found = new Dictionary<string, object?>(StringComparer.Ordinal);
        if (config.ValueKind != JsonValueKind.Object)
        {
            return found;
        }

        foreach (var p in config.EnumerateObject())
        {
            if (!p.Name.EndsWith("_token", StringComparison.Ordinal))
            {
                continue;
            }

            if (p.Value.ValueKind == JsonValueKind.String)
            {
                found[p.Name] = p.Value.GetString();
            }
            else if (p.Value.ValueKind == JsonValueKind.Object && p.Value.TryGetProperty("content", out var content) && content.ValueKind == JsonValueKind.String)
            {
                found[p.Name] = content.GetString();
            }
            else if (p.Value.ValueKind == JsonValueKind.Null)
            {
                found[p.Name] = null;
            }
        }

        return found;
    }
}
