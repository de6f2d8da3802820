using System.Text.Json;

namespace Engine.Models.Chat;

/// <summary>
/// One turn of a conversation, as in the <c>messages</c> field of chat datasets (TRL's format, tool calling included).
/// </summary>
/// <param name="Role"><c>system</c>, <c>user</c>, <c>assistant</c>, or <c>tool</c> / <c>ipython</c> for a tool's result.</param>
/// <param name="Content">The text of the turn; empty for an assistant turn that only calls tools.</param>
public sealed record ChatMessage(string Role, string Content)
{
    /// <summary>The system role.</summary>
    public const string System = "system";

    /// <summary>The user role.</summary>
    public const string User = "user";

    /// <summary>The assistant role.</summary>
    public const string Assistant = "assistant";

    /// <summary>The role of a tool's result.</summary>
    public const string Tool = "tool";

    /// <summary>Llama 3.1's name for the role of a tool's result (its template treats it as <see cref="Tool"/>).</summary>
    public const string Ipython = "ipython";

    /// <summary>The functions an assistant turn calls (<c>tool_calls</c>); null when it calls none.</summary>
    public IReadOnlyList<ChatToolCall>? ToolCalls { get; init; }

    /// <summary>The <c>name</c> of the tool whose result a tool turn carries; null when not given.</summary>
    public string? Name { get; init; }

    /// <summary>The <c>tool_call_id</c> of the call a tool turn answers; null when not given.</summary>
    public string? ToolCallId { get; init; }

    /// <summary>Whether <paramref name="role"/> is one of the roles templates render.</summary>
    public static bool IsKnownRole(string? role) => role is System or User or Assistant or Tool or Ipython;

    /// <summary>Same role, content, tool calls (arguments compared as JSON values), name and call id.</summary>
    public bool Equals(ChatMessage? other) =>
        other is not null && Role == other.Role && Content == other.Content && Name == other.Name && ToolCallId == other.ToolCallId
        && (ToolCalls is null ? other.ToolCalls is null : other.ToolCalls is not null && ToolCalls.SequenceEqual(other.ToolCalls));

    /// <inheritdoc/>
    public override int GetHashCode() => HashCode.Combine(Role, Content, Name, ToolCallId, ToolCalls?.Count);
}

/// <summary>
/// One function call of an assistant turn: TRL's <c>{"type": "function", "function": {"name": …, "arguments": {…}}}</c>,
/// with the <c>id</c> some templates need (Mistral's nine characters).
/// </summary>
/// <param name="Name">The function's name.</param>
/// <param name="Arguments">The arguments, a JSON object; templates receive it as a mapping (and usually <c>tojson</c> it).</param>
/// <param name="Id">The call's <c>id</c>; null when not given.</param>
public sealed record ChatToolCall(string Name, JsonElement Arguments, string? Id = null)
{
    /// <summary>Same name and id, and arguments equal as JSON values.</summary>
    public bool Equals(ChatToolCall? other) =>
        other is not null && Name == other.Name && Id == other.Id && JsonElement.DeepEquals(Arguments, other.Arguments);

    /// <inheritdoc/>
    public override int GetHashCode() => HashCode.Combine(Name, Id);
}

/// <summary>A range of characters [Start, Start + Length) of a string.</summary>
/// <param name="Start">Index of the first character.</param>
/// <param name="Length">Number of characters.</param>
public readonly record struct CharSpan(int Start, int Length)
{
    /// <summary>Index one past the last character.</summary>
    public int End => Start + Length;

    /// <summary>The characters of <paramref name="text"/> this span covers.</summary>
    public string Of(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        return text.Substring(Start, Length);
    }
}

/// <summary>A conversation rendered to text, with where the assistant's trained text lies in it.</summary>
/// <param name="Text">The prompt-formatted conversation.</param>
/// <param name="AssistantSpans">
/// Every assistant turn's content plus the template's end-of-turn marker (<c>&lt;|im_end|&gt;</c>, <c>&lt;|eot_id|&gt;</c>),
/// in order. The marker is included so a model trained on the spans learns to end its turn.
/// </param>
public sealed record RenderedChat(string Text, IReadOnlyList<CharSpan> AssistantSpans);

/// <summary>Maps character spans to token positions after tokenization.</summary>
public static class ChatSpans
{
    /// <summary>
    /// For each token (given the character range it came from), whether it overlaps one of <paramref name="spans"/>.
    /// Tokens of zero length (special tokens a tokenizer inserts) are never in a span. A token straddling a span's
    /// edge counts as inside: it carries some of the text to be learned.
    /// </summary>
    public static bool[] TokenMask(IReadOnlyList<CharSpan> spans, IReadOnlyList<CharSpan> tokenOffsets)
    {
        ArgumentNullException.ThrowIfNull(spans);
        ArgumentNullException.ThrowIfNull(tokenOffsets);
        var sorted = spans.Where(s => s.Length > 0).OrderBy(s => s.Start).ToArray();
        var mask = new bool[tokenOffsets.Count];
        for (int i = 0; i < mask.Length; i++)
        {
            var token = tokenOffsets[i];
            if (token.Length <= 0)
            {
                continue;
            }

            // The last span starting before the token's end is the only candidate once spans are disjoint; check a
            // few before it too, in case a caller passed overlapping spans.
            int lo = 0, hi = sorted.Length;
            while (lo < hi)
            {
                int mid = (lo + hi) >>> 1;
                if (sorted[mid].Start < token.End)
                {
                    lo = mid + 1;
                }
                else
                {
                    hi = mid;
                }
            }

            for (int j = lo - 1; j >= 0; j--)
            {
                if (sorted[j].End > token.Start)
                {
                    mask[i] = true;
                    break;
                }

                if (j < lo - 8)
                {
                    break;
                }
            }
        }

        return mask;
    }
}
