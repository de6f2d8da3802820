using System.Text.Json;
using Engine.Models.Chat;

namespace Engine.Training.Data;

/// <summary>The dataset layouts of the TRL field conventions.</summary>
public enum DatasetFormat
{
    /// <summary>Decided from the first valid line's fields.</summary>
    Auto,
    /// <summary><c>text</c>: plain text, every token trained (pretraining).</summary>
    Text,
    /// <summary><c>prompt</c>/<c>completion</c> (strings or message lists): SFT on the completion.</summary>
    PromptCompletion,
    /// <summary>Alpaca <c>instruction</c>/<c>input</c>/<c>output</c>: SFT on the output.</summary>
    Alpaca,
    /// <summary><c>messages</c> (role/content): SFT on every assistant turn.</summary>
    Messages,
    /// <summary><c>prompt</c>/<c>chosen</c>/<c>rejected</c> with an optional <c>margin</c>; the prompt may be implicit (the common prefix).</summary>
    Preference,
    /// <summary>K-wise <c>prompt</c>/<c>responses</c>/<c>ranking</c> (ranking = indices of responses, best first).</summary>
    Ranking,
    /// <summary>Prompt only, for RL: <c>prompt</c>, or <c>messages</c> not ending with an assistant turn.</summary>
    Prompt,
    /// <summary>Unpaired preferences (KTO): <c>prompt</c>/<c>completion</c> with a boolean <c>label</c> (true = desirable), TRL's format.</summary>
    Unpaired,
}

/// <summary>A piece of an example that is either plain text or a list of chat messages (TRL's "standard" and "conversational" forms).</summary>
public sealed record TextOrChat
{
    private TextOrChat(string? text, IReadOnlyList<ChatMessage>? messages)
    {
        Text = text;
        Messages = messages;
    }

    /// <summary>The text, when this is plain text.</summary>
    public string? Text { get; }

    /// <summary>The messages, when this is a conversation.</summary>
    public IReadOnlyList<ChatMessage>? Messages { get; }

    /// <summary>Whether this is a list of messages.</summary>
    public bool IsChat => Messages is not null;

    /// <summary>Plain text.</summary>
    public static TextOrChat FromText(string text) => new(text ?? throw new ArgumentNullException(nameof(text)), null);

    /// <summary>A list of messages.</summary>
    public static TextOrChat FromMessages(IReadOnlyList<ChatMessage> messages) => new(null, messages ?? throw new ArgumentNullException(nameof(messages)));

    /// <summary>The text, or the messages as <c>role: content</c> lines (for logs and messages, not for training).</summary>
    public override string ToString() => Text ?? string.Join("\n", Messages!.Select(m => $"{m.Role}: {m.Content}"));

    /// <summary>Structural equality: same text, or same messages in the same order.</summary>
    public bool Equals(TextOrChat? other) =>
        other is not null && Text == other.Text && (Messages is null ? other.Messages is null : other.Messages is not null && Messages.SequenceEqual(other.Messages));

    /// <inheritdoc/>
    public override int GetHashCode() => Text?.GetHashCode(StringComparison.Ordinal) ?? Messages!.Count;
}

/// <summary>One example of a dataset, with where it came from.</summary>
public abstract record Example
{
    /// <summary>The file (or stream name) it was read from.</summary>
    public string Source { get; init; } = "";

    /// <summary>Its 1-based line number.</summary>
    public long Line { get; init; }

    /// <summary>
    /// The row's fields that its format did not consume (for example an <c>answer</c> column beside a prompt), by
    /// their names in the file; empty when there are none. Reward functions read them.
    /// </summary>
    public IReadOnlyDictionary<string, JsonElement> Columns { get; init; } = EmptyColumns;

    /// <summary>
    /// The row's <c>tools</c>: a JSON list of the function schemas a chat template offers the model (TRL's tool calling
    /// format); null when the row has none. Rendering passes it to the template as <c>tools</c>.
    /// </summary>
    public JsonElement? Tools { get; init; }

    private static readonly IReadOnlyDictionary<string, JsonElement> EmptyColumns = new Dictionary<string, JsonElement>();
}

/// <summary>Plain text (field <c>text</c>).</summary>
/// <param name="Text">The text; every token is trained.</param>
public sealed record TextExample(string Text) : Example;

/// <summary>A prompt and its completion (fields <c>prompt</c>, <c>completion</c>); both text or both messages.</summary>
/// <param name="Prompt">Context, not trained.</param>
/// <param name="Completion">What the model learns to produce.</param>
public sealed record PromptCompletionExample(TextOrChat Prompt, TextOrChat Completion) : Example;

/// <summary>An Alpaca instruction (fields <c>instruction</c>, <c>input</c> (may be empty), <c>output</c>).</summary>
/// <param name="Instruction">The task.</param>
/// <param name="Input">Extra context, empty when absent.</param>
/// <param name="Output">The response; trained.</param>
public sealed record AlpacaExample(string Instruction, string Input, string Output) : Example;

/// <summary>A conversation (field <c>messages</c>); every assistant turn is trained.</summary>
/// <param name="Messages">The turns in order.</param>
public sealed record MessagesExample(IReadOnlyList<ChatMessage> Messages) : Example;

/// <summary>
/// A preference pair (fields <c>prompt</c>, <c>chosen</c>, <c>rejected</c>, optional <c>margin</c>). When the prompt is
/// implicit it is the longest common prefix of chosen and rejected, and these hold what follows it.
/// </summary>
/// <param name="Prompt">The shared context.</param>
/// <param name="Chosen">The preferred response.</param>
/// <param name="Rejected">The other response.</param>
/// <param name="Margin">How much better chosen is, if the data says (the loss subtracts it).</param>
/// <param name="ImplicitPrompt">Whether the prompt was taken from the common prefix.</param>
public sealed record PreferenceExample(TextOrChat Prompt, TextOrChat Chosen, TextOrChat Rejected, double? Margin, bool ImplicitPrompt) : Example;

/// <summary>K responses to one prompt ranked best first (fields <c>prompt</c>, <c>responses</c>, <c>ranking</c>), as in InstructGPT.</summary>
/// <param name="Prompt">The shared context.</param>
/// <param name="Responses">The K ≥ 2 responses.</param>
/// <param name="Ranking">Indices into <paramref name="Responses"/>, best first; a permutation of 0..K−1.</param>
public sealed record RankingExample(TextOrChat Prompt, IReadOnlyList<TextOrChat> Responses, IReadOnlyList<int> Ranking) : Example
{
    /// <summary>All K(K−1)/2 (better, worse) index pairs the ranking implies.</summary>
    public IEnumerable<(int Better, int Worse)> Pairs()
    {
        for (int i = 0; i < Ranking.Count; i++)
        {
            for (int j = i + 1; j < Ranking.Count; j++)
            {
                yield return (Ranking[i], Ranking[j]);
            }
        }
    }
}

/// <summary>A prompt with no response, for RL rollouts (field <c>prompt</c>, or <c>messages</c> without a final assistant turn).</summary>
/// <param name="Prompt">The context to continue.</param>
public sealed record PromptExample(TextOrChat Prompt) : Example;

/// <summary>One completion judged alone (fields <c>prompt</c>, <c>completion</c>, <c>label</c>), TRL's unpaired preference format for KTO.</summary>
/// <param name="Prompt">The context.</param>
/// <param name="Completion">The response.</param>
/// <param name="Label">True when the completion is desirable, false when it is undesirable.</param>
public sealed record UnpairedPreferenceExample(TextOrChat Prompt, TextOrChat Completion, bool Label) : Example;
