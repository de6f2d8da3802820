using Engine.Models.Chat;

namespace Engine.Training.Data;

/// <summary>How examples become token rows. One record with its defaults, shared by the library and the CLI.</summary>
public sealed record CollatorOptions
{
    /// <summary>Target id of positions that are not trained (PyTorch's <c>ignore_index</c>).</summary>
    public const int IgnoreIndex = -100;

    /// <summary>Longest sequence, in tokens (and the row length when packing).</summary>
    public int MaxLength { get; init; } = 1024;

    /// <summary>Longest prompt, in tokens, before the whole is fitted to <see cref="MaxLength"/>; 0 for no separate limit.</summary>
    public int MaxPromptLength { get; init; }

    /// <summary>
    /// When a sequence is too long, drop prompt tokens from the start first (keeping BOS), so the response survives;
    /// only then cut the response from the right. When false, sequences are simply cut from the right.
    /// </summary>
    public bool TruncatePromptLeft { get; init; } = true;

    /// <summary>
    /// Train only on completions (prompt/completion, Alpaca output, preference responses) and assistant turns (messages).
    /// When false every token is trained.
    /// </summary>
    public bool CompletionOnlyLoss { get; init; } = true;

    /// <summary>
    /// Append the encoder's EOS after plain-text completions (text, prompt/completion, Alpaca) so the model learns to
    /// stop. Chat templates end each turn with their own marker, so conversations get none.
    /// </summary>
    public bool AppendEos { get; init; } = true;

    /// <summary>
    /// Padding-free packing: SFT sequences share rows of exactly <see cref="MaxLength"/> tokens (see
    /// <see cref="SequenceCollator.Pack"/>), each with positions from 0 and no attention or loss across them.
    /// </summary>
    public bool Packing { get; init; }

    /// <summary>Which sequences share a row when packing: best-fit decreasing by default.</summary>
    public PackingStrategy PackingStrategy { get; init; } = PackingStrategy.Bfd;

    /// <summary>Token id of padding (its targets are always <see cref="IgnoreIndex"/>).</summary>
    public int PadTokenId { get; init; }
}

/// <summary>One tokenized example: ids and which of them are trained.</summary>
/// <param name="Ids">Token ids [T].</param>
/// <param name="Trained">Whether each token is a training target (predicted from the ones before it) [T].</param>
/// <param name="PromptLength">Tokens before the first trained one (the prompt, BOS included).</param>
public sealed record TokenizedSequence(int[] Ids, bool[] Trained, int PromptLength)
{
    /// <summary>Number of tokens.</summary>
    public int Length => Ids.Length;
}

/// <summary>
/// A padded batch of B rows of T tokens, flat row-major [B·T]. <c>Targets[b,t]</c> is the next token when it is trained,
/// <see cref="CollatorOptions.IgnoreIndex"/> otherwise (padding, prompts, the last token, and document boundaries when packed).
/// </summary>
public sealed record SequenceBatch(int Batch, int Time, int[] Tokens, int[] Targets, float[] LossMask, int[] DocumentIds, int[] Positions, int[] Lengths)
{
    /// <summary>Number of positions with a target.</summary>
    public int TrainedTokens => Targets.Count(t => t != CollatorOptions.IgnoreIndex);

    /// <summary>
    /// Whether some row holds more than one document: then <see cref="Positions"/> restart per document and the model
    /// must be given them (padding-free packing). Padding is never a document of its own here (its id is −1).
    /// </summary>
    public bool IsPacked => DocumentIds.Any(d => d > 0);

    /// <summary>The position ids a model pass needs: <see cref="Positions"/> for packed batches, none (plain rows) otherwise.</summary>
    public ReadOnlySpan<int> PositionIds() => IsPacked ? Positions : default;
}

/// <summary>
/// Tokenizes examples (text, prompt/completion, Alpaca, messages, preference responses, prompts) through any
/// <see cref="ITextEncoder"/> and collates them into padded or packed [B,T] batches with targets and loss masks.
/// Pieces are encoded separately (prompt, then each trained span), so a mask never depends on token offsets.
/// </summary>
public sealed class SequenceCollator
{
    private readonly ITextEncoder encoder;
    private readonly ChatTemplate? template;

    /// <summary>Creates a collator; <paramref name="template"/> is needed for conversational examples.</summary>
    public SequenceCollator(ITextEncoder encoder, CollatorOptions? options = null, ChatTemplate? template = null)
    {
        ArgumentNullException.ThrowIfNull(encoder);
        this.encoder = encoder;
        this.template = template;
        Options = options ?? new CollatorOptions();
        ArgumentOutOfRangeException.ThrowIfLessThan(Options.MaxLength, 2, nameof(options));
        ArgumentOutOfRangeException.ThrowIfNegative(Options.MaxPromptLength, nameof(options));
    }

    /// <summary>The options in force.</summary>
    public CollatorOptions Options { get; }

    /// <summary>Tokenizes an SFT or pretraining example: text, prompt/completion, Alpaca or messages.</summary>
    /// <exception cref="ArgumentException">A preference, ranking or prompt-only example (use <see cref="Tokenize(TextOrChat, TextOrChat, System.Text.Json.JsonElement?)"/> or <see cref="TokenizePrompt"/>).</exception>
    public TokenizedSequence Tokenize(Example example)
    {
        ArgumentNullException.ThrowIfNull(example);
        return example switch
        {
            TextExample t => Build([(t.Text, true)], eos: true, allTrained: true),
            PromptCompletionExample pc => Tokenize(pc.Prompt, pc.Completion, pc.Tools),
            AlpacaExample a => Build([(ChatTemplate.AlpacaPrompt(a.Instruction, a.Input), false), (a.Output, true)], eos: true),
            MessagesExample m => Build(ChatPieces(m.Messages, 0, m.Tools), eos: false),
            _ => throw new DatasetException(example.Source, example.Line, null, $"a {ExampleFormats.Fields(example)} line is not supervised fine-tuning data (text, prompt/completion, instruction/output or messages)"),
        };
    }

    /// <summary>
    /// Tokenizes a prompt followed by a response (SFT prompt/completion, or one side of a preference pair): the
    /// response is trained, the prompt is not. <paramref name="tools"/> (the example's <see cref="Example.Tools"/>) goes to
    /// the chat template.
    /// </summary>
    public TokenizedSequence Tokenize(TextOrChat prompt, TextOrChat response, System.Text.Json.JsonElement? tools = null)
    {
        ArgumentNullException.ThrowIfNull(prompt);
        ArgumentNullException.ThrowIfNull(response);
        if (prompt.IsChat != response.IsChat)
        {
            throw new ArgumentException("prompt and response must both be text or both be messages");
        }

        if (!prompt.IsChat)
        {
            return Build([(prompt.Text!, false), (response.Text!, true)], eos: true);
        }

        var all = prompt.Messages!.Concat(response.Messages!).ToList();
        return Build(ChatPieces(all, prompt.Messages!.Count(m => m.Role == ChatMessage.Assistant), tools), eos: false);
    }

    /// <summary>
    /// Tokenizes a generation prompt (RL): conversations end with the assistant header; nothing is trained.
    /// <paramref name="tools"/> (the example's <see cref="Example.Tools"/>) goes to the chat template.
    /// </summary>
    public TokenizedSequence TokenizePrompt(TextOrChat prompt, System.Text.Json.JsonElement? tools = null)
    {
        ArgumentNullException.ThrowIfNull(prompt);
        string text = prompt.IsChat ? RenderChat(prompt.Messages!, addGenerationPrompt: true, tools).Text : prompt.Text!;
        text = prompt.IsChat ? text[LeadingBos(text)..] : text;
        return Build([(text, false)], eos: false);
    }

    /// <summary>The two tokenized sides of a preference pair.</summary>
    public (TokenizedSequence Chosen, TokenizedSequence Rejected) TokenizePair(PreferenceExample example)
    {
        ArgumentNullException.ThrowIfNull(example);
        return (Tokenize(example.Prompt, example.Chosen, example.Tools), Tokenize(example.Prompt, example.Rejected, example.Tools));
    }

    /// <summary>
    /// Pads sequences into one [B,T] batch, T = the longest (or <paramref name="time"/> when given, which must fit all).
    /// Each row is one document.
    /// </summary>
    public SequenceBatch Collate(IReadOnlyList<TokenizedSequence> sequences, int? time = null)
    {
        ArgumentNullException.ThrowIfNull(sequences);
        if (sequences.Count == 0)
        {
            throw new ArgumentException("no sequences to collate", nameof(sequences));
        }

        int longest = sequences.Max(s => s.Length);
        int t = time ?? longest;
        if (t < longest)
        {
            throw new ArgumentOutOfRangeException(nameof(time), $"T={t} is shorter than the longest sequence ({longest} tokens)");
        }

        var batch = NewBatch(sequences.Count, t);
        for (int b = 0; b < sequences.Count; b++)
        {
            Place(batch, b, 0, sequences[b], document: 0);
        }

        return batch;
    }

    /// <summary>
    /// Packs sequences into rows of exactly <see cref="CollatorOptions.MaxLength"/> tokens, <paramref name="rows"/> rows per
    /// batch, by <see cref="CollatorOptions.PackingStrategy"/>: best-fit decreasing (rows then visited in the order of
    /// <paramref name="shuffleSeed"/> when one is given, see <see cref="SftBatches.Order"/>), or sequentially, each
    /// sequence whole into the current row if it fits, else the next row. The rest of a row is padding. Within a row the
    /// last token of a document has no target, so no loss crosses a document boundary, and
    /// <see cref="SequenceBatch.Positions"/> restart at 0 for each document, which the model's attention uses to stay
    /// inside it (<see cref="SequenceBatch.PositionIds()"/>).
    /// </summary>
    public IEnumerable<SequenceBatch> Pack(IEnumerable<TokenizedSequence> sequences, int rows, ulong? shuffleSeed = null)
    {
        ArgumentNullException.ThrowIfNull(sequences);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(rows);
        return Options.PackingStrategy == PackingStrategy.Bfd ? PackBestFit(sequences, rows, shuffleSeed) : PackSequential(sequences, rows);
    }

    private IEnumerable<SequenceBatch> PackBestFit(IEnumerable<TokenizedSequence> sequences, int rows, ulong? shuffleSeed)
    {
        var all = sequences.Where(s => s.Length > 0).ToList();
        CheckFits(all);
        var bins = BestFitDecreasing.Pack([.. all.Select(s => s.Length)], Options.MaxLength);
        var order = SftBatches.Order(bins.Count, shuffleSeed);
        for (int first = 0; first < bins.Count; first += rows)
        {
            int count = Math.Min(rows, bins.Count - first);
            var batch = NewBatch(rows, Options.MaxLength);
            for (int row = 0; row < count; row++)
            {
                int used = 0, document = 0;
                foreach (int item in bins[order[first + row]])
                {
                    Place(batch, row, used, all[item], document++);
                    used += all[item].Length;
                }
            }

            yield return batch;
        }
    }

    private void CheckFits(IEnumerable<TokenizedSequence> sequences)
    {
        foreach (var s in sequences)
        {
            if (s.Length > Options.MaxLength)
            {
                throw new ArgumentException($"a sequence of {s.Length} tokens does not fit rows of {Options.MaxLength}; tokenize with the same MaxLength", nameof(sequences));
            }
        }
    }

    private IEnumerable<SequenceBatch> PackSequential(IEnumerable<TokenizedSequence> sequences, int rows)
    {
        int t = Options.MaxLength;
        var batch = NewBatch(rows, t);
        int row = 0, used = 0, document = 0;
        bool any = false;
        foreach (var s in sequences)
        {
            if (s.Length == 0)
            {
                continue;
            }

            CheckFits([s]);
            if (used + s.Length > t)
            {
                row++;
                used = 0;
                document = 0;
                if (row == rows)
                {
                    yield return batch;
                    batch = NewBatch(rows, t);
                    row = 0;
                    any = false;
                }
            }

            Place(batch, row, used, s, document++);
            used += s.Length;
            any = true;
        }

        if (any)
        {
            yield return batch;
        }
    }

    /// <summary>
    /// Tokenizes SFT examples and yields batches of <paramref name="batchSize"/> rows: packed rows of
    /// <see cref="CollatorOptions.MaxLength"/> when <see cref="CollatorOptions.Packing"/> is set, else one example per row
    /// padded to the longest in the batch. The last batch may be smaller (unpacked) or partly padding (packed).
    /// </summary>
    public IEnumerable<SequenceBatch> Batches(IEnumerable<Example> examples, int batchSize)
    {
        ArgumentNullException.ThrowIfNull(examples);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(batchSize);
        var sequences = examples.Select(Tokenize);
        if (Options.Packing)
        {
            foreach (var batch in Pack(sequences, batchSize))
            {
                yield return batch;
            }

            yield break;
        }

        foreach (var chunk in sequences.Chunk(batchSize))
        {
            yield return Collate(chunk);
        }
    }

    private ChatTemplate Template => template ?? throw new Engine.Core.InputException(
        $"conversational data (messages) needs a chat template: pass --chat-template ({string.Join(", ", ChatTemplate.Names)}), or use a --model or --tokenizer directory whose tokenizer_config.json has a chat_template");

    // The rendered conversation cut into pieces at the assistant spans; the first `skipAssistant` assistant turns
    // (those inside a prompt) are not trained.
    private List<(string Text, bool Trained)> ChatPieces(IReadOnlyList<ChatMessage> messages, int skipAssistant, System.Text.Json.JsonElement? tools)
    {
        var rendered = RenderChat(messages, addGenerationPrompt: false, tools);
        var pieces = new List<(string, bool)>();
        int at = LeadingBos(rendered.Text), index = 0;
        foreach (var span in rendered.AssistantSpans)
        {
            if (index++ < skipAssistant)
            {
                continue;
            }

            pieces.Add((rendered.Text[at..span.Start], false));
            pieces.Add((rendered.Text.Substring(span.Start, span.Length), true));
            at = span.End;
        }

        pieces.Add((rendered.Text[at..], false));
        return pieces;
    }

    // Tool calls and tool results reach the template with the messages; the tools' schemas go as its `tools` variable.
    // Assistant turns that call tools are spans like any other (trained); tool results are not assistant turns (not trained).
    private RenderedChat RenderChat(IReadOnlyList<ChatMessage> messages, bool addGenerationPrompt, System.Text.Json.JsonElement? tools)
    {
        if (tools is not { } schemas)
        {
            return Template.Render(messages, addGenerationPrompt);
        }

        return Template.Kind == ChatTemplateKind.Jinja
            ? Template.Render(messages, addGenerationPrompt, new Dictionary<string, object?> { ["tools"] = schemas })
            : throw Template.ToolsNeedJinja("the row offers tools");
    }

    // A model's own template may print bos_token first; the encoder puts that token first already, so the text's copy goes.
    private int LeadingBos(string text) =>
        encoder.BosTokenId is int bos && Template.BosToken is { } b && text.StartsWith(b, StringComparison.Ordinal) && encoder.Encode(b) is [var id] && id == bos
            ? b.Length
            : 0;

    // Memory stays near the ids themselves (a 60 MB text is 60 M ids): each piece is encoded once, copied once into
    // arrays of the exact length, and truncated in place.
    private TokenizedSequence Build(List<(string Text, bool Trained)> pieces, bool eos, bool allTrained = false)
    {
        bool train = allTrained || !Options.CompletionOnlyLoss;
        int? bos = encoder.BosTokenId;
        int? end = eos && Options.AppendEos ? encoder.EosTokenId : null;
        var encoded = new List<(int[] Ids, bool Trained)>(pieces.Count);
        long total = (bos is null ? 0 : 1) + (end is null ? 0 : 1);
        foreach (var (text, isTrained) in pieces)
        {
            if (text.Length > 0)
            {
                int[] piece = encoder.Encode(text);
                encoded.Add((piece, isTrained || train));
                total += piece.Length;
            }
        }

        var ids = new int[total];
        var trained = new bool[total];
        int at = 0;
        if (bos is int b)
        {
            ids[at++] = b;
        }

        foreach (var (piece, isTrained) in encoded)
        {
            piece.CopyTo(ids, at);
            trained.AsSpan(at, piece.Length).Fill(isTrained);
            at += piece.Length;
        }

        encoded.Clear();
        if (end is int e)
        {
            ids[at] = e;
            trained[at] = pieces.Count > 0 && (pieces[^1].Trained || train);
        }

        return Truncate(ids, trained, bos is null ? 0 : 1);
    }

    // keep = leading tokens never dropped (BOS). Drops move the arrays' tails down in place; count is the live length.
    private TokenizedSequence Truncate(int[] ids, bool[] trained, int keep)
    {
        int count = ids.Length;
        int prompt = Array.IndexOf(trained, true);
        prompt = prompt < 0 ? count : prompt;
        void Drop(int start, int dropped)
        {
            Array.Copy(ids, start + dropped, ids, start, count - start - dropped);
            Array.Copy(trained, start + dropped, trained, start, count - start - dropped);
            count -= dropped;
            prompt -= dropped;
        }

        if (Options.MaxPromptLength > 0 && prompt > Math.Max(Options.MaxPromptLength, keep))
        {
            int excess = prompt - Math.Max(Options.MaxPromptLength, keep);
            Drop(Options.TruncatePromptLeft ? keep : prompt - excess, excess);
        }

        if (Options.TruncatePromptLeft && count > Options.MaxLength && prompt > keep)
        {
            Drop(keep, Math.Min(count - Options.MaxLength, prompt - keep));
        }

        int length = Math.Min(count, Options.MaxLength);
        return new TokenizedSequence(ids.AsSpan(0, length).ToArray(), trained.AsSpan(0, length).ToArray(), Math.Min(prompt, length));
    }

    private SequenceBatch NewBatch(int rows, int time)
    {
        int n = rows * time;
        var tokens = new int[n];
        Array.Fill(tokens, Options.PadTokenId);
        var targets = new int[n];
        Array.Fill(targets, CollatorOptions.IgnoreIndex);
        var documents = new int[n];
        Array.Fill(documents, -1);
        return new SequenceBatch(rows, time, tokens, targets, new float[n], documents, new int[n], new int[rows]);
    }

    private static void Place(SequenceBatch batch, int row, int offset, TokenizedSequence s, int document)
    {
        int start = (row * batch.Time) + offset;
        for (int i = 0; i < s.Length; i++)
        {
            batch.Tokens[start + i] = s.Ids[i];
            batch.DocumentIds[start + i] = document;
            batch.Positions[start + i] = i;
            if (i + 1 < s.Length && s.Trained[i + 1])
            {
                batch.Targets[start + i] = s.Ids[i + 1];
                batch.LossMask[start + i] = 1f;
            }
        }

        batch.Lengths[row] = offset + s.Length;
    }
}
