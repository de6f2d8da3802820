using System.Text;
using System.Text.RegularExpressions;

namespace Engine.Models.Tokenizers;

/// <summary>
/// Finds the matches of a pre-tokenizer pattern. The three patterns real byte-level tokenizers use (GPT-2's,
/// Llama-3's and Qwen2's) run as hand-written scanners: several times faster than a regex, and correct on characters
/// outside the Basic Multilingual Plane, where .NET's regex engine sees two surrogates instead of one letter.
/// </summary>
internal abstract class SplitPattern
{
    /// <summary>GPT-2's pre-tokenizer pattern (also used by ByteLevel with <c>use_regex</c>).</summary>
    public const string Gpt2 = @"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";

    /// <summary>Llama-3's (and tiktoken cl100k's) pattern: numbers in groups of up to three digits.</summary>
    public const string Llama3 = @"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

    /// <summary>Qwen2's pattern: Llama-3's with single digits.</summary>
    public const string Qwen2 = @"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

    /// <summary>How long one regex match may run before the pattern is judged hostile (catastrophic backtracking).</summary>
    public static readonly TimeSpan MatchTimeout = TimeSpan.FromSeconds(1);

    /// <summary>The longest regex accepted, in characters (real ones are under 300; compile time grows with length).</summary>
    public const int MaxRegexChars = 16 << 10;

    /// <summary>The pattern as written in the file.</summary>
    public abstract string Source { get; }

    /// <summary>True for a regex, false for a literal string.</summary>
    public abstract bool IsRegex { get; }

    /// <summary>Appends the (start, end) of every non-overlapping match in <paramref name="text"/>, in order.</summary>
    public abstract void FindMatches(ReadOnlySpan<char> text, List<(int Start, int End)> matches);

    /// <summary>
    /// The scanner for a known regex, or a compiled .NET regex for any other. <paramref name="file"/> and
    /// <paramref name="field"/> say where the pattern came from, for the error when a match runs past <see cref="MatchTimeout"/>.
    /// </summary>
    /// <exception cref="ArgumentException">The pattern is not a valid regex or is longer than <see cref="MaxRegexChars"/>.</exception>
    public static SplitPattern FromRegex(string pattern, string file = "<memory>", string field = "") => pattern switch
    {
        Gpt2 => new Gpt2Scanner(),
        Llama3 => new CompactScanner(pattern, 3),
        Qwen2 => new CompactScanner(pattern, 1),
        _ => new RegexPattern(pattern, file, field),
    };

    /// <summary>
    /// <paramref name="text"/> with every match replaced by <paramref name="content"/>. The result may not grow past
    /// <paramref name="maxLength"/> characters: building stops there and null is returned, so a hostile replacement
    /// never costs more memory than the budget.
    /// </summary>
    public string? Replace(string text, string content, int maxLength = int.MaxValue)
    {
        var matches = new List<(int Start, int End)>();
        FindMatches(text, matches);
        if (matches.Count == 0)
        {
            return text.Length <= maxLength ? text : null;
        }

        var sb = new StringBuilder(Math.Min(text.Length, maxLength));
        int previous = 0;
        foreach (var (start, end) in matches)
        {
            if ((long)sb.Length + (start - previous) + content.Length > maxLength)
            {
                return null;
            }

            sb.Append(text, previous, start - previous).Append(content);
            previous = end;
        }

        return (long)sb.Length + (text.Length - previous) > maxLength ? null : sb.Append(text, previous, text.Length - previous).ToString();
    }

    /// <summary>A pattern matching the literal <paramref name="text"/>.</summary>
    public static SplitPattern FromString(string text) => new LiteralPattern(text);

    /// <summary>
    /// Rewrites Oniguruma syntax .NET lacks: possessive quantifiers (<c>x++</c>, <c>x*+</c>, <c>x?+</c>,
    /// <c>x{n,m}+</c>) become atomic groups, which match the same strings.
    /// </summary>
    internal static string ToDotNet(string pattern)
    {
        var output = new StringBuilder(pattern.Length + 8);
        var groupStarts = new Stack<int>();
        int atomStart = -1;
        int i = 0;
        while (i < pattern.Length)
        {
            char c = pattern[i];
            if (c == '\\' && i + 1 < pattern.Length)
            {
                atomStart = output.Length;
                int end = i + 2;
                if (pattern[i + 1] is 'p' or 'P' or 'x' && end < pattern.Length && pattern[end] == '{')
                {
                    int close = pattern.IndexOf('}', end);
                    end = close < 0 ? pattern.Length : close + 1;
                }

                output.Append(pattern, i, end - i);
                i = end;
            }
            else if (c == '[')
            {
                atomStart = output.Length;
                int end = ClassEnd(pattern, i);
                output.Append(pattern, i, end - i);
                i = end;
            }
            else if (c == '(')
            {
                groupStarts.Push(output.Length);
                output.Append(c);
                atomStart = -1;
                i++;
            }
            else if (c == ')')
            {
                output.Append(c);
                atomStart = groupStarts.Count > 0 ? groupStarts.Pop() : -1;
                i++;
            }
            else if (c is '*' or '+' or '?' or '{')
            {
                int end = i + 1;
                if (c == '{')
                {
                    int close = pattern.IndexOf('}', i);
                    end = close < 0 ? i + 1 : close + 1;
                }

                bool possessive = end < pattern.Length && pattern[end] == '+' && atomStart >= 0;
                output.Append(pattern, i, end - i);
                if (possessive)
                {
                    output.Insert(atomStart, "(?>");
                    output.Append(')');
                    end++;
                }

                atomStart = -1;
                i = end;
            }
            else
            {
                atomStart = c == '|' ? -1 : output.Length;
                output.Append(c);
                i++;
            }
        }

        return output.ToString();
    }

    private static int ClassEnd(string pattern, int start)
    {
        int depth = 0;
        int i = start;
        while (i < pattern.Length)
        {
            char c = pattern[i];
            if (c == '\\')
            {
                i += 2;
                continue;
            }

            if (c == '[')
            {
                depth++;
                // A ']' right after '[' or '[^' is a literal, not the end of the class.
                if (i + 1 < pattern.Length && pattern[i + 1] == '^')
                {
                    i++;
                }

                if (i + 1 < pattern.Length && pattern[i + 1] == ']')
                {
                    i++;
                }
            }
            else if (c == ']')
            {
                depth--;
                if (depth == 0)
                {
                    return i + 1;
                }
            }

            i++;
        }

        return pattern.Length;
    }

    private sealed class RegexPattern : SplitPattern
    {
        private readonly Regex _regex;
        private readonly string _file;
        private readonly string _field;

        public RegexPattern(string pattern, string file, string field)
        {
            if (pattern.Length > MaxRegexChars)
            {
                throw new ArgumentException($"the pattern is {pattern.Length} characters long, over the limit of {MaxRegexChars}", nameof(pattern));
            }

            Source = pattern;
            _file = file;
            _field = field;
            // A pattern from a hostile file could backtrack catastrophically; the timeout bounds each match.
            _regex = new Regex(ToDotNet(pattern), RegexOptions.Compiled | RegexOptions.CultureInvariant, MatchTimeout);
        }

        public override string Source { get; }

        public override bool IsRegex => true;

        public override void FindMatches(ReadOnlySpan<char> text, List<(int Start, int End)> matches)
        {
            try
            {
                foreach (var m in _regex.EnumerateMatches(text))
                {
                    matches.Add((m.Index, m.Index + m.Length));
                }
            }
            catch (RegexMatchTimeoutException e)
            {
                throw new TokenizerFormatException(_file, _field,
                    $"the regex {TokenizerJson.Quote(Source)} ran for more than {MatchTimeout.TotalSeconds:0.#} s on a text of {text.Length} characters (catastrophic backtracking); fix the pattern", e);
            }
        }
    }

    private sealed class LiteralPattern(string text) : SplitPattern
    {
        public override string Source { get; } = text;

        public override bool IsRegex => false;

        public override void FindMatches(ReadOnlySpan<char> text, List<(int Start, int End)> matches)
        {
            if (Source.Length == 0)
            {
                return;
            }

            int from = 0;
            while (from <= text.Length - Source.Length)
            {
                int at = text[from..].IndexOf(Source, StringComparison.Ordinal);
                if (at < 0)
                {
                    break;
                }

                matches.Add((from + at, from + at + Source.Length));
                from += at + Source.Length;
            }
        }
    }

    /// <summary>Base of the hand-written scanners: their patterns match at every position, so matches tile the text.</summary>
    private abstract class Scanner : SplitPattern
    {
        public override bool IsRegex => true;

        public override void FindMatches(ReadOnlySpan<char> text, List<(int Start, int End)> matches)
        {
            int i = 0;
            while (i < text.Length)
            {
                int end = MatchAt(text, i);
                matches.Add((i, end));
                i = end;
            }
        }

        /// <summary>The end of the match that starts at <paramref name="i"/> (always past it).</summary>
        protected abstract int MatchAt(ReadOnlySpan<char> s, int i);

        protected static int RunOf(ReadOnlySpan<char> s, int i, byte cls)
        {
            while (i < s.Length && CharClass.At(s, i, out int w) == cls)
            {
                i += w;
            }

            return i;
        }

        protected static int RunOfOther(ReadOnlySpan<char> s, int i)
        {
            while (i < s.Length && CharClass.At(s, i, out int w) == CharClass.Other)
            {
                i += w;
            }

            return i;
        }

        /// <summary><c>\s+(?!\S)|\s+</c> at a whitespace character: all of a run that ends the text, else all but its last character.</summary>
        protected static int Whitespace(ReadOnlySpan<char> s, int i, int runEnd)
        {
            if (runEnd == s.Length || runEnd - i < 2)
            {
                return runEnd;
            }

            return runEnd - 1;
        }
    }

    /// <summary><c>'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+</c></summary>
    private sealed class Gpt2Scanner : Scanner
    {
        public override string Source => Gpt2;

        protected override int MatchAt(ReadOnlySpan<char> s, int i)
        {
            int n = s.Length;
            char c = s[i];
            if (c == '\'' && i + 1 < n)
            {
                char d = s[i + 1];
                if (d is 's' or 't' or 'm' or 'd')
                {
                    return i + 2;
                }

                if (i + 2 < n && ((d == 'r' && s[i + 2] == 'e') || (d == 'v' && s[i + 2] == 'e') || (d == 'l' && s[i + 2] == 'l')))
                {
                    return i + 3;
                }
            }

            int j = c == ' ' ? i + 1 : i;
            if (j < n)
            {
                byte cls = CharClass.At(s, j, out int w);
                if (cls != CharClass.Space)
                {
                    return cls == CharClass.Other ? RunOfOther(s, j + w) : RunOf(s, j + w, cls);
                }
            }

            return Whitespace(s, i, RunOf(s, i, CharClass.Space));
        }
    }

    /// <summary>
    /// <c>(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,k}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+</c>
    /// with k = 3 (Llama-3) or 1 (Qwen2).
    /// </summary>
    private sealed class CompactScanner(string source, int maxDigits) : Scanner
    {
        public override string Source { get; } = source;

        protected override int MatchAt(ReadOnlySpan<char> s, int i)
        {
            int n = s.Length;
            char c = s[i];
            if (c == '\'' && i + 1 < n)
            {
                // ASCII case folding only, as .NET's (?i) does for these letters.
                char d = (char)(s[i + 1] | 0x20);
                if (d is 's' or 't' or 'm' or 'd')
                {
                    return i + 2;
                }

                if (i + 2 < n)
                {
                    char e = (char)(s[i + 2] | 0x20);
                    if ((d == 'r' && e == 'e') || (d == 'v' && e == 'e') || (d == 'l' && e == 'l'))
                    {
                        return i + 3;
                    }
                }
            }

            byte cls = CharClass.At(s, i, out int w);
            if (cls == CharClass.Letter)
            {
                return RunOf(s, i + w, CharClass.Letter);
            }

            if (cls != CharClass.Number && c != '\r' && c != '\n' && i + w < n && CharClass.At(s, i + w, out int w2) == CharClass.Letter)
            {
                return RunOf(s, i + w + w2, CharClass.Letter);
            }

            if (cls == CharClass.Number)
            {
                int j = i + w;
                for (int count = 1; count < maxDigits && j < n && CharClass.At(s, j, out int wd) == CharClass.Number; count++)
                {
                    j += wd;
                }

                return j;
            }

            int k = c == ' ' ? i + 1 : i;
            if (k < n && CharClass.At(s, k, out int wo) == CharClass.Other)
            {
                k = RunOfOther(s, k + wo);
                while (k < n && s[k] is '\r' or '\n')
                {
                    k++;
                }

                return k;
            }

            // Here c is whitespace. \s*[\r\n]+ ends just after the run's last line break.
            int runEnd = RunOf(s, i, CharClass.Space);
            for (int p = runEnd - 1; p >= i; p--)
            {
                if (s[p] is '\r' or '\n')
                {
                    return p + 1;
                }
            }

            return Whitespace(s, i, runEnd);
        }
    }
}
