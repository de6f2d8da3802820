using System.Text.Json;

namespace Engine.Models.Tokenizers;

/// <summary>
/// A slice of text on its way to the model. <see cref="ByteLevel"/> marks slices whose UTF-8 bytes (in GPT-2's
/// byte-to-character alphabet) are what the model sees; the bytes are produced by the model itself, which saves
/// building a mapped string for every word.
/// </summary>
internal readonly record struct Piece(string Text, int Start, int Length, bool ByteLevel)
{
    public ReadOnlySpan<char> Span => Text.AsSpan(Start, Length);

    /// <summary>The piece as plain characters: byte-level pieces become their mapped string.</summary>
    public Piece Materialize()
    {
        if (!ByteLevel)
        {
            return this;
        }

        string mapped = ByteLevelAlphabet.Encode(Span);
        return new Piece(mapped, 0, mapped.Length, false);
    }
}

/// <summary>Splits normalized text into the words the model encodes one by one.</summary>
internal abstract class PreTokenizer
{
    /// <summary>Appends the pieces <paramref name="input"/> splits into to <paramref name="output"/>.</summary>
    public abstract void Split(List<Piece> input, List<Piece> output, List<(int Start, int End)> scratch);

    /// <summary>Writes the component as a <c>tokenizer.json</c> object.</summary>
    public abstract void Write(Utf8JsonWriter writer);
}

/// <summary>How <see cref="SplitPreTokenizer"/> treats the matches of its pattern (the <c>behavior</c> field).</summary>
internal enum SplitBehavior
{
    Removed,
    Isolated,
    MergedWithPrevious,
    MergedWithNext,
    Contiguous,
}

/// <summary>GPT-2's pre-tokenizer: optional leading space, optional split by GPT-2's pattern, then bytes.</summary>
internal sealed class ByteLevelPreTokenizer(bool addPrefixSpace, bool useRegex, bool trimOffsets) : PreTokenizer
{
    private static readonly SplitPattern Pattern = SplitPattern.FromRegex(SplitPattern.Gpt2);

    public bool AddPrefixSpace { get; } = addPrefixSpace;

    public bool UseRegex { get; } = useRegex;

    public override void Split(List<Piece> input, List<Piece> output, List<(int Start, int End)> scratch)
    {
        foreach (var original in input)
        {
            var piece = original.Materialize();
            if (AddPrefixSpace && (piece.Length == 0 || piece.Text[piece.Start] != ' '))
            {
                string spaced = string.Concat(" ", piece.Span);
                piece = new Piece(spaced, 0, spaced.Length, false);
            }

            if (!UseRegex)
            {
                output.Add(piece with { ByteLevel = true });
                continue;
            }

            scratch.Clear();
            Pattern.FindMatches(piece.Span, scratch);
            foreach (var (start, end) in scratch)
            {
                output.Add(new Piece(piece.Text, piece.Start + start, end - start, true));
            }
        }
    }

    public override void Write(Utf8JsonWriter writer)
    {
        writer.WriteStartObject();
        writer.WriteString("type", "ByteLevel");
        writer.WriteBoolean("add_prefix_space", AddPrefixSpace);
        writer.WriteBoolean("trim_offsets", trimOffsets);
        writer.WriteBoolean("use_regex", UseRegex);
        writer.WriteEndObject();
    }
}

/// <summary>Splits on a regex or string, keeping or dropping the matches per <see cref="SplitBehavior"/> (Qwen2, Llama-3).</summary>
internal sealed class SplitPreTokenizer(SplitPattern pattern, SplitBehavior behavior, bool invert) : PreTokenizer
{
    public SplitPattern Pattern { get; } = pattern;

    public SplitBehavior Behavior { get; } = behavior;

    public bool Invert { get; } = invert;

    public override void Split(List<Piece> input, List<Piece> output, List<(int Start, int End)> scratch)
    {
        foreach (var original in input)
        {
            var piece = original.Materialize();
            scratch.Clear();
            Pattern.FindMatches(piece.Span, scratch);
            Emit(piece, scratch, output);
        }
    }

    /// <summary>Turns matches into pieces with the rules of the reference implementation's <c>split</c>.</summary>
    private void Emit(Piece piece, List<(int Start, int End)> matches, List<Piece> output)
    {
        // (start, end, isMatch) covering the whole piece, gaps included.
        var parts = new List<(int Start, int End, bool IsMatch)>(matches.Count * 2 + 1);
        int previous = 0;
        foreach (var (start, end) in matches)
        {
            if (start > previous)
            {
                parts.Add((previous, start, Invert));
            }

            parts.Add((start, end, !Invert));
            previous = end;
        }

        if (previous < piece.Length)
        {
            parts.Add((previous, piece.Length, Invert));
        }

        var kept = new List<(int Start, int End)>(parts.Count);
        switch (Behavior)
        {
            case SplitBehavior.Removed:
                foreach (var p in parts)
                {
                    if (!p.IsMatch)
                    {
                        kept.Add((p.Start, p.End));
                    }
                }

                break;
            case SplitBehavior.Isolated:
                foreach (var p in parts)
                {
                    kept.Add((p.Start, p.End));
                }

                break;
            case SplitBehavior.Contiguous:
            {
                bool previousMatch = false;
                foreach (var p in parts)
                {
                    if (p.IsMatch == previousMatch && kept.Count > 0)
                    {
                        kept[^1] = (kept[^1].Start, p.End);
                    }
                    else
                    {
                        kept.Add((p.Start, p.End));
                    }

                    previousMatch = p.IsMatch;
                }

                break;
            }

            case SplitBehavior.MergedWithPrevious:
            {
                bool previousMatch = false;
                foreach (var p in parts)
                {
                    if (p.IsMatch && !previousMatch && kept.Count > 0)
                    {
                        kept[^1] = (kept[^1].Start, p.End);
                    }
                    else
                    {
                        kept.Add((p.Start, p.End));
                    }

                    previousMatch = p.IsMatch;
                }

                break;
            }

            case SplitBehavior.MergedWithNext:
            {
                bool previousMatch = false;
                for (int i = parts.Count - 1; i >= 0; i--)
                {
                    var p = parts[i];
                    if (p.IsMatch && !previousMatch && kept.Count > 0)
                    {
                        kept[^1] = (p.Start, kept[^1].End);
                    }
                    else
                    {
                        kept.Add((p.Start, p.End));
                    }

                    previousMatch = p.IsMatch;
                }

                kept.Reverse();
                break;
            }
        }

        foreach (var (start, end) in kept)
        {
            if (end > start)
            {
                output.Add(new Piece(piece.Text, piece.Start + start, end - start, false));
            }
        }
    }

    public override void Write(Utf8JsonWriter writer)
    {
        writer.WriteStartObject();
        writer.WriteString("type", "Split");
        writer.WriteStartObject("pattern");
        writer.WriteString(Pattern.IsRegex ? "Regex" : "String", Pattern.Source);
        writer.WriteEndObject();
        writer.WriteString("behavior", Behavior.ToString());
        writer.WriteBoolean("invert", Invert);
        writer.WriteEndObject();
    }
}

/// <summary>Applies pre-tokenizers one after another (Qwen2 and Llama-3: Split, then ByteLevel without its regex).</summary>
internal sealed class SequencePreTokenizer(IReadOnlyList<PreTokenizer> steps) : PreTokenizer
{
    public IReadOnlyList<PreTokenizer> Steps { get; } = steps;

    public override void Split(List<Piece> input, List<Piece> output, List<(int Start, int End)> scratch)
    {
        var current = input;
        for (int i = 0; i < Steps.Count; i++)
        {
            var next = i == Steps.Count - 1 ? output : [];
            Steps[i].Split(current, next, scratch);
            current = next;
        }

        if (Steps.Count == 0)
        {
            output.AddRange(input);
        }
    }

    public override void Write(Utf8JsonWriter writer)
    {
        writer.WriteStartObject();
        writer.WriteString("type", "Sequence");
        writer.WriteStartArray("pretokenizers");
        foreach (var step in Steps)
        {
            step.Write(writer);
        }

        writer.WriteEndArray();
        writer.WriteEndObject();
    }
}

/// <summary>Splits on whitespace, dropping it (<c>WhitespaceSplit</c>).</summary>
internal sealed class WhitespaceSplitPreTokenizer : PreTokenizer
{
    public override void Split(List<Piece> input, List<Piece> output, List<(int Start, int End)> scratch)
    {
        foreach (var original in input)
        {
            var piece = original.Materialize();
            var span = piece.Span;
            int i = 0;
            while (i < span.Length)
            {
                while (i < span.Length && char.IsWhiteSpace(span[i]))
                {
                    i++;
                }

                int start = i;
                while (i < span.Length && !char.IsWhiteSpace(span[i]))
                {
                    i++;
                }

                if (i > start)
                {
                    output.Add(new Piece(piece.Text, piece.Start + start, i - start, false));
                }
            }
        }
    }

    public override void Write(Utf8JsonWriter writer)
    {
        writer.WriteStartObject();
        writer.WriteString("type", "WhitespaceSplit");
        writer.WriteEndObject();
    }
}

/// <summary>Splits digits from the rest, one by one or in runs (<c>Digits</c>).</summary>
internal sealed class DigitsPreTokenizer(bool individualDigits) : PreTokenizer
{
    public override void Split(List<Piece> input, List<Piece> output, List<(int Start, int End)> scratch)
    {
        foreach (var original in input)
        {
            var piece = original.Materialize();
            var span = piece.Span;
            int i = 0;
            while (i < span.Length)
            {
                int start = i;
                bool digit = char.IsDigit(span[i]);
                i++;
                if (!digit || !individualDigits)
                {
                    while (i < span.Length && char.IsDigit(span[i]) == digit)
                    {
                        i++;
                    }
                }

                output.Add(new Piece(piece.Text, piece.Start + start, i - start, false));
            }
        }
    }

    public override void Write(Utf8JsonWriter writer)
    {
        writer.WriteStartObject();
        writer.WriteString("type", "Digits");
        writer.WriteBoolean("individual_digits", individualDigits);
        writer.WriteEndObject();
    }
}
