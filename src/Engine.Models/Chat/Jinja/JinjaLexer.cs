using System.Text;

namespace Engine.Models.Chat.Jinja;

internal enum TokenKind
{
    Text,
    NumericLiteral,
    StringLiteral,
    Identifier,
    Equals,
    OpenParen,
    CloseParen,
    OpenStatement,
    CloseStatement,
    OpenExpression,
    CloseExpression,
    OpenSquareBracket,
    CloseSquareBracket,
    OpenCurlyBracket,
    CloseCurlyBracket,
    Comma,
    Dot,
    Colon,
    Pipe,
    AdditiveBinaryOperator,
    MultiplicativeBinaryOperator,
    ExponentiationBinaryOperator,
    ComparisonBinaryOperator,
    UnaryOperator,
    Comment,

    /// <summary>Where a <c>{% generation %}</c> (value "start") or <c>{% endgeneration %}</c> (value "end") tag was.</summary>
    GenerationMarker,
}

/// <summary>A token and its offset in the preprocessed source.</summary>
internal sealed class Token(string value, TokenKind kind, int position)
{
    public string Value { get; set; } = value;

    public TokenKind Kind { get; } = kind;

    public int Position { get; } = position;
}

/// <summary>
/// The template text after HF's preprocessing (trailing newline, <c>lstrip_blocks</c>, <c>trim_blocks</c>, generation
/// tags removed), with the original offset of every character (for line/column in errors) and where the generation
/// tags were.
/// </summary>
internal sealed class PreprocessedSource
{
    public PreprocessedSource(string original)
    {
        Original = original;
        var (text, origin) = Strip(original);
        (text, origin) = LstripBlocks(text, origin);
        (text, origin) = TrimBlocks(text, origin);
        (Text, Origin, Markers) = RemoveGenerationTags(text, origin);
    }

    public string Original { get; }

    public string Text { get; }

    /// <summary>Original offset of each character of <see cref="Text"/> (one extra entry: the end).</summary>
    public int[] Origin { get; }

    /// <summary>Offsets in <see cref="Text"/> where generation tags were; true for an end tag.</summary>
    public List<(int Position, bool End)> Markers { get; }

    /// <summary>1-based line and column of an offset of <see cref="Text"/>.</summary>
    public (int Line, int Column) LineColumn(int position)
    {
        int at = Origin[Math.Clamp(position, 0, Origin.Length - 1)];
        int line = 1, column = 1;
        for (int i = 0; i < at && i < Original.Length; i++)
        {
            if (Original[i] == '\n')
            {
                line++;
                column = 1;
            }
            else
            {
                column++;
            }
        }

        return (line, column);
    }

    private static (string, int[]) Strip(string s)
    {
        int n = s.EndsWith('\n') ? s.Length - 1 : s.Length;
        var origin = new int[n + 1];
        for (int i = 0; i <= n; i++)
        {
            origin[i] = i;
        }

        return (s[..n], origin);
    }

    // JS: template.replace(/^[ \t]*({[#%-])/gm, "$1"): a line's leading blanks before "{#", "{%" or "{-" go.
    private static (string, int[]) LstripBlocks(string s, int[] origin)
    {
        var text = new StringBuilder(s.Length);
        var map = new List<int>(s.Length + 1);
        int i = 0;
        while (i < s.Length)
        {
            if (i == 0 || IsJsLineTerminator(s[i - 1]))
            {
                int j = i;
                while (j < s.Length && (s[j] == ' ' || s[j] == '\t'))
                {
                    j++;
                }

                if (j > i && j + 1 < s.Length && s[j] == '{' && (s[j + 1] == '#' || s[j + 1] == '%' || s[j + 1] == '-'))
                {
                    i = j;
                }
            }

            text.Append(s[i]);
            map.Add(origin[i]);
            i++;
        }

        map.Add(origin[s.Length]);
        return (text.ToString(), map.ToArray());
    }

    // JS: template.replace(/([#%-]})\n/g, "$1"): the newline right after a tag's end goes.
    private static (string, int[]) TrimBlocks(string s, int[] origin)
    {
        var text = new StringBuilder(s.Length);
        var map = new List<int>(s.Length + 1);
        int i = 0;
        while (i < s.Length)
        {
            if (i + 2 < s.Length && (s[i] == '#' || s[i] == '%' || s[i] == '-') && s[i + 1] == '}' && s[i + 2] == '\n')
            {
                text.Append(s[i]).Append('}');
                map.Add(origin[i]);
                map.Add(origin[i + 1]);
                i += 3;
                continue;
            }

            text.Append(s[i]);
            map.Add(origin[i]);
            i++;
        }

        map.Add(origin[s.Length]);
        return (text.ToString(), map.ToArray());
    }

    // JS: every /{%(-?)\s*(?:end)?generation\s*(-?)%}(\s*)/ match goes (its "-" trimming the whitespace around it);
    // here its place is kept as a marker so the interpreter can say where the generated text lies.
    private static (string, int[], List<(int, bool)>) RemoveGenerationTags(string s, int[] origin)
    {
        var text = new StringBuilder(s.Length);
        var map = new List<int>(s.Length + 1);
        var markers = new List<(int, bool)>();
        int last = 0;
        int from = 0;
        while (true)
        {
            int at = s.IndexOf("{%", from, StringComparison.Ordinal);
            if (at < 0)
            {
                break;
            }

            if (!MatchGenerationTag(s, at, out bool lstrip, out bool end, out bool rstrip, out int tagEnd, out int afterEnd))
            {
                from = at + 1;
                continue;
            }

            int keepEnd = at;
            while (lstrip && keepEnd > last && JinjaLexer.IsWhitespace(s[keepEnd - 1]))
            {
                keepEnd--;
            }

            Append(last, keepEnd);
            markers.Add((text.Length, end));
            if (!rstrip)
            {
                Append(tagEnd, afterEnd);
            }

            last = afterEnd;
            from = afterEnd;
        }

        Append(last, s.Length);
        map.Add(origin[s.Length]);
        return (text.ToString(), map.ToArray(), markers);

        void Append(int start, int stop)
        {
            text.Append(s, start, stop - start);
            for (int k = start; k < stop; k++)
            {
                map.Add(origin[k]);
            }
        }
    }

    private static bool MatchGenerationTag(string s, int at, out bool lstrip, out bool end, out bool rstrip, out int tagEnd, out int afterEnd)
    {
        lstrip = end = rstrip = false;
        tagEnd = afterEnd = 0;
        int i = at + 2;
        if (i < s.Length && s[i] == '-')
        {
            lstrip = true;
            i++;
        }

        while (i < s.Length && JinjaLexer.IsWhitespace(s[i]))
        {
            i++;
        }

        if (string.CompareOrdinal(s, i, "end", 0, 3) == 0 && string.CompareOrdinal(s, i + 3, "generation", 0, 10) == 0)
        {
            end = true;
            i += 3;
        }

        if (string.CompareOrdinal(s, i, "generation", 0, 10) != 0)
        {
            return false;
        }

        i += 10;
        while (i < s.Length && JinjaLexer.IsWhitespace(s[i]))
        {
            i++;
        }

        if (i < s.Length && s[i] == '-')
        {
            rstrip = true;
            i++;
        }

        if (string.CompareOrdinal(s, i, "%}", 0, 2) != 0)
        {
            return false;
        }

        tagEnd = i + 2;
        afterEnd = tagEnd;
        while (afterEnd < s.Length && JinjaLexer.IsWhitespace(s[afterEnd]))
        {
            afterEnd++;
        }

        return true;
    }

    private static bool IsJsLineTerminator(char c) => c is '\n' or '\r' or '\u2028' or '\u2029';
}

/// <summary>Turns preprocessed template text into tokens, as <c>@huggingface/jinja</c>'s lexer does.</summary>
internal static class JinjaLexer
{
    private static readonly (string Text, TokenKind Kind)[] Table =
    [
        ("{%", TokenKind.OpenStatement), ("%}", TokenKind.CloseStatement), ("{{", TokenKind.OpenExpression), ("}}", TokenKind.CloseExpression),
        ("(", TokenKind.OpenParen), (")", TokenKind.CloseParen), ("{", TokenKind.OpenCurlyBracket), ("}", TokenKind.CloseCurlyBracket),
        ("[", TokenKind.OpenSquareBracket), ("]", TokenKind.CloseSquareBracket), (",", TokenKind.Comma), (".", TokenKind.Dot),
        (":", TokenKind.Colon), ("|", TokenKind.Pipe),
        ("<=", TokenKind.ComparisonBinaryOperator), (">=", TokenKind.ComparisonBinaryOperator), ("==", TokenKind.ComparisonBinaryOperator),
        ("!=", TokenKind.ComparisonBinaryOperator), ("<", TokenKind.ComparisonBinaryOperator), (">", TokenKind.ComparisonBinaryOperator),
        ("+", TokenKind.AdditiveBinaryOperator), ("-", TokenKind.AdditiveBinaryOperator), ("~", TokenKind.AdditiveBinaryOperator),
        ("**", TokenKind.ExponentiationBinaryOperator), ("*", TokenKind.MultiplicativeBinaryOperator),
        ("//", TokenKind.MultiplicativeBinaryOperator), ("/", TokenKind.MultiplicativeBinaryOperator),
        ("%", TokenKind.MultiplicativeBinaryOperator), ("=", TokenKind.Equals),
    ];

    /// <summary>JavaScript's <c>\s</c>.</summary>
    public static bool IsWhitespace(char c) => c <= ' '
        ? c == ' ' || (c >= '\t' && c <= '\r')
        : c > 127 && (c == '\u00a0' || c == '\u1680' || (c >= '\u2000' && c <= '\u200a') || c == '\u2028' || c == '\u2029'
            || c == '\u202f' || c == '\u205f' || c == '\u3000' || c == '\ufeff');

    private static bool IsWord(char c) => char.IsAsciiLetterOrDigit(c) || c == '_';

    public static List<Token> Tokenize(PreprocessedSource source)
    {
        string src = source.Text;
        int length = src.Length;
        var tokens = new List<Token>();
        int cursor = 0, curlyDepth = 0, marker = 0;
        var markers = source.Markers;

        while (cursor < length)
        {
            var last = tokens.Count == 0 ? (TokenKind?)null : tokens[^1].Kind;
            if (last is null or TokenKind.CloseStatement or TokenKind.CloseExpression or TokenKind.Comment or TokenKind.GenerationMarker)
            {
                while (marker < markers.Count && markers[marker].Position <= cursor)
                {
                    AddMarker(markers[marker++]);
                }

                int end = cursor;
                while (true)
                {
                    end = src.IndexOf('{', end);
                    if (end < 0)
                    {
                        end = length;
                        break;
                    }

                    char next = end + 1 < length ? src[end + 1] : '\0';
                    if (next is '%' or '{' or '#')
                    {
                        break;
                    }

                    end++;
                }

                if (marker < markers.Count && markers[marker].Position < end)
                {
                    end = markers[marker].Position;
                }

                if (end > cursor)
                {
                    tokens.Add(new Token(src[cursor..end], TokenKind.Text, cursor));
                    cursor = end;
                    while (marker < markers.Count && markers[marker].Position <= cursor)
                    {
                        AddMarker(markers[marker++]);
                    }

                    continue;
                }
            }

            if (src[cursor] == '{')
            {
                char next = cursor + 1 < length ? src[cursor + 1] : '\0';
                if (next == '#')
                {
                    int start = cursor;
                    cursor += 2;
                    bool stripBefore = cursor < length && src[cursor] == '-';
                    if (stripBefore)
                    {
                        cursor++;
                    }

                    int end = src.IndexOf("#}", cursor, StringComparison.Ordinal);
                    if (end < 0)
                    {
                        throw new JinjaError("missing end of comment tag '#}'", start);
                    }

                    string comment = src[cursor..end];
                    bool stripAfter = comment.EndsWith('-');
                    if (stripAfter)
                    {
                        comment = comment[..^1];
                    }

                    if (stripBefore)
                    {
                        StripTrailingWhitespace(tokens);
                    }

                    tokens.Add(new Token(comment, TokenKind.Comment, start));
                    cursor = end + 2;
                    if (stripAfter)
                    {
                        SkipWhitespace(src, ref cursor);
                    }

                    continue;
                }

                if (cursor + 2 < length && src[cursor + 2] == '-' && next is '%' or '{')
                {
                    StripTrailingWhitespace(tokens);
                    tokens.Add(new Token(next == '%' ? "{%" : "{{", next == '%' ? TokenKind.OpenStatement : TokenKind.OpenExpression, cursor));
                    if (next == '{')
                    {
                        curlyDepth = 0;
                    }

                    cursor += 3;
                    continue;
                }
            }

            ConsumeWhile(src, ref cursor, IsWhitespace);
            char c = src[cursor];
            if (c == '-' && cursor + 2 < length && src[cursor + 2] == '}' && src[cursor + 1] is '%' or '}')
            {
                bool statement = src[cursor + 1] == '%';
                tokens.Add(new Token(statement ? "%}" : "}}", statement ? TokenKind.CloseStatement : TokenKind.CloseExpression, cursor));
                cursor += 3;
                SkipWhitespace(src, ref cursor);
                continue;
            }

            if (c is '-' or '+')
            {
                if (last is null or TokenKind.Text)
                {
                    throw new JinjaError($"unexpected character '{c}'", cursor);
                }

                if (last is not (TokenKind.Identifier or TokenKind.NumericLiteral or TokenKind.StringLiteral or TokenKind.CloseParen or TokenKind.CloseSquareBracket))
                {
                    int start = cursor++;
                    string num = ConsumeWhile(src, ref cursor, char.IsAsciiDigit);
                    if (num.Length > 0 && cursor + 1 < length && src[cursor] == '.' && char.IsAsciiDigit(src[cursor + 1]))
                    {
                        cursor++;
                        num = $"{num}.{ConsumeWhile(src, ref cursor, char.IsAsciiDigit)}";
                    }

                    tokens.Add(new Token(c + num, num.Length > 0 ? TokenKind.NumericLiteral : TokenKind.UnaryOperator, start));
                    continue;
                }
            }

            if (MatchTable(src, cursor, curlyDepth) is { } rule)
            {
                tokens.Add(new Token(rule.Text, rule.Kind, cursor));
                curlyDepth = rule.Kind switch
                {
                    TokenKind.OpenExpression => 0,
                    TokenKind.OpenCurlyBracket => curlyDepth + 1,
                    TokenKind.CloseCurlyBracket => curlyDepth - 1,
                    _ => curlyDepth,
                };
                cursor += rule.Text.Length;
                continue;
            }

            if (c is '\'' or '"')
            {
                int start = cursor++;
                tokens.Add(new Token(ConsumeString(src, ref cursor, c, start), TokenKind.StringLiteral, start));
                cursor++;
                continue;
            }

            if (char.IsAsciiDigit(c))
            {
                int start = cursor;
                string num = ConsumeWhile(src, ref cursor, char.IsAsciiDigit);
                if (last != TokenKind.Dot && cursor + 1 < length && src[cursor] == '.' && char.IsAsciiDigit(src[cursor + 1]))
                {
                    cursor++;
                    num = $"{num}.{ConsumeWhile(src, ref cursor, char.IsAsciiDigit)}";
                }

                tokens.Add(new Token(num, TokenKind.NumericLiteral, start));
                continue;
            }

            if (IsWord(c))
            {
                int start = cursor;
                tokens.Add(new Token(ConsumeWhile(src, ref cursor, IsWord), TokenKind.Identifier, start));
                continue;
            }

            throw new JinjaError($"unexpected character '{c}'", cursor);
        }

        while (marker < markers.Count)
        {
            AddMarker(markers[marker++]);
        }

        return tokens;

        void AddMarker((int Position, bool End) m) => tokens.Add(new Token(m.End ? "end" : "start", TokenKind.GenerationMarker, m.Position));
    }

    private static (string Text, TokenKind Kind)? MatchTable(string src, int cursor, int curlyDepth)
    {
        foreach (var rule in Table)
        {
            if (rule.Text[0] != src[cursor] || (rule.Text == "}}" && curlyDepth > 0))
            {
                continue;
            }

            if (string.CompareOrdinal(src, cursor, rule.Text, 0, rule.Text.Length) == 0)
            {
                return rule;
            }
        }

        return null;
    }

    // Consumes while the predicate holds; the input must not end meanwhile (an unterminated expression).
    private static string ConsumeWhile(string src, ref int cursor, Func<char, bool> predicate)
    {
        int start = cursor;
        while (cursor < src.Length && predicate(src[cursor]))
        {
            cursor++;
        }

        if (cursor >= src.Length)
        {
            throw new JinjaError("unexpected end of the template (a tag or expression is not closed)", start);
        }

        return src[start..cursor];
    }

    private static void SkipWhitespace(string src, ref int cursor)
    {
        while (cursor < src.Length && IsWhitespace(src[cursor]))
        {
            cursor++;
        }
    }

    private static string ConsumeString(string src, ref int cursor, char quote, int start)
    {
        var sb = new StringBuilder();
        while (true)
        {
            if (cursor >= src.Length)
            {
                throw new JinjaError("unterminated string literal", start);
            }

            char c = src[cursor];
            if (c == quote)
            {
                return sb.ToString();
            }

            cursor++;
            if (c != '\\')
            {
                sb.Append(c);
                continue;
            }

            if (cursor >= src.Length)
            {
                throw new JinjaError("unterminated string literal", start);
            }

            char escaped = src[cursor++];
            if (escaped is 'x' or 'u')
            {
                int n = escaped == 'x' ? 2 : 4;
                if (cursor + n > src.Length || !int.TryParse(src.AsSpan(cursor, n), System.Globalization.NumberStyles.AllowHexSpecifier, null, out int code))
                {
                    throw new JinjaError($"invalid escape sequence \\{escaped} in a string literal", cursor - 2);
                }

                sb.Append((char)code);
                cursor += n;
                continue;
            }

            sb.Append(escaped switch
            {
                'n' => '\n',
                't' => '\t',
                'r' => '\r',
                'b' => '\b',
                'f' => '\f',
                'v' => '\v',
                '\'' or '"' or '\\' => escaped,
                _ => throw new JinjaError($"unknown escape sequence \\{escaped} in a string literal", cursor - 2),
            });
        }
    }

    // "{%-", "{{-", "{#-": the text before loses its trailing whitespace (across generation markers, which HF removes).
    private static void StripTrailingWhitespace(List<Token> tokens)
    {
        int i = tokens.Count - 1;
        while (i >= 0)
        {
            var t = tokens[i];
            if (t.Kind == TokenKind.GenerationMarker)
            {
                i--;
                continue;
            }

            if (t.Kind != TokenKind.Text)
            {
                return;
            }

            t.Value = JinjaBuiltins.TrimEnd(t.Value);
            if (t.Value.Length > 0)
            {
                return;
            }

            tokens.RemoveAt(i--);
        }
    }
}
