using System.Buffers;

namespace Engine.Models.Tokenizers;

/// <summary>
/// Finds added tokens in text, leftmost-longest like the reference implementation's Aho-Corasick matcher, and
/// applies their <c>single_word</c>, <c>lstrip</c> and <c>rstrip</c> rules.
/// </summary>
internal sealed class AddedTokenMatcher
{
    private readonly Node _root = new();
    private readonly SearchValues<char> _firstChars;

    public AddedTokenMatcher(IEnumerable<(string Pattern, AddedToken Token)> tokens)
    {
        var first = new HashSet<char>();
        foreach (var (pattern, token) in tokens)
        {
            if (pattern.Length == 0)
            {
                continue;
            }

            var node = _root;
            foreach (char c in pattern)
            {
                node.Children ??= [];
                if (!node.Children.TryGetValue(c, out var child))
                {
                    child = new Node();
                    node.Children[c] = child;
                }

                node = child;
            }

            // The first token listed wins when two have the same text.
            node.Token ??= token;
            node.Length = pattern.Length;
            first.Add(pattern[0]);
        }

        IsEmpty = first.Count == 0;
        _firstChars = SearchValues.Create([.. first]);
    }

    public bool IsEmpty { get; }

    /// <summary>Appends (start, end, token) for every added token in <paramref name="text"/>; text between them gets a null token.</summary>
    public void Split(ReadOnlySpan<char> text, List<(int Start, int End, AddedToken? Token)> output)
    {
        int emitted = 0;
        int from = 0;
        while (from < text.Length)
        {
            int at = text[from..].IndexOfAny(_firstChars);
            if (at < 0)
            {
                break;
            }

            int start = from + at;
            var (token, length) = LongestAt(text, start);
            if (token is null)
            {
                from = start + 1;
                continue;
            }

            int stop = start + length;
            if (token.SingleWord && !IsSingleWord(text, start, stop))
            {
                from = stop;
                continue;
            }

            if (token.LStrip)
            {
                while (start > emitted && char.IsWhiteSpace(text[start - 1]))
                {
                    start--;
                }
            }

            if (token.RStrip)
            {
                while (stop < text.Length && char.IsWhiteSpace(text[stop]))
                {
                    stop++;
                }
            }

            if (start > emitted)
            {
                output.Add((emitted, start, null));
            }

            output.Add((start, stop, token));
            emitted = stop;
            from = stop;
        }

        if (emitted < text.Length)
        {
            output.Add((emitted, text.Length, null));
        }
    }

    private (AddedToken? Token, int Length) LongestAt(ReadOnlySpan<char> text, int start)
    {
        var node = _root;
        AddedToken? best = null;
        int bestLength = 0;
        for (int i = start; i < text.Length; i++)
        {
            if (node.Children is null || !node.Children.TryGetValue(text[i], out var child))
            {
                break;
            }

            node = child;
            if (node.Token is not null)
            {
                best = node.Token;
                bestLength = node.Length;
            }
        }

        return (best, bestLength);
    }

    /// <summary>A single-word token must not touch a word character on either side.</summary>
    private static bool IsSingleWord(ReadOnlySpan<char> text, int start, int stop)
    {
        if (start > 0)
        {
            int before = char.IsLowSurrogate(text[start - 1]) && start > 1 && char.IsHighSurrogate(text[start - 2])
                ? char.ConvertToUtf32(text[start - 2], text[start - 1])
                : text[start - 1];
            if (CharClass.IsWordChar(before))
            {
                return false;
            }
        }

        if (stop < text.Length)
        {
            int after = char.IsHighSurrogate(text[stop]) && stop + 1 < text.Length && char.IsLowSurrogate(text[stop + 1])
                ? char.ConvertToUtf32(text[stop], text[stop + 1])
                : text[stop];
            if (CharClass.IsWordChar(after))
            {
                return false;
            }
        }

        return true;
    }

    private sealed class Node
    {
        public Dictionary<char, Node>? Children { get; set; }

        public AddedToken? Token { get; set; }

        public int Length { get; set; }
    }
}
