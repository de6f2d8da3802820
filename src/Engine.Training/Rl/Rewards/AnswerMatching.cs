using System.Globalization;
using System.Numerics;
using System.Text.RegularExpressions;

namespace Engine.Training.Rl.Rewards;

/// <summary>Which part of a completion <see cref="AccuracyReward"/> reads as its answer.</summary>
public enum AnswerExtraction
{
    /// <summary>
    /// The final answer: the content of the last <c>\boxed{…}</c>; else the rest of the line after the last
    /// <c>####</c> or <c>answer:</c> (case ignored); else the whole completion. Compared with numbers as numbers.
    /// </summary>
    Final,

    /// <summary>
    /// The first word: the first maximal run of letters and digits (what the synthetic task's gold reward reads).
    /// Compared as text only, case ignored.
    /// </summary>
    FirstWord,
}

/// <summary>
/// How <see cref="AccuracyReward"/> finds an answer in a completion and compares it with a reference. Both sides are
/// normalised: trimmed, runs of white space collapsed to one space, one trailing period removed. Two normalised
/// answers are equal when both read as numbers of the same value (<c>1,000</c> = <c>1000</c> = <c>1000.0</c>,
/// <c>1/2</c> = <c>\frac{1}{2}</c> = <c>0.5</c>), or else when their text is equal ignoring case (ordinal case folding).
/// </summary>
public static partial class AnswerMatching
{
    private const string Boxed = @"\boxed{";

    /// <summary>The answer <paramref name="completion"/> gives as <paramref name="extraction"/> reads it, not yet normalised; "" when there is none.</summary>
    public static string Extract(string completion, AnswerExtraction extraction)
    {
        ArgumentNullException.ThrowIfNull(completion);
        if (extraction == AnswerExtraction.FirstWord)
        {
            var word = Word().Match(completion);
            return word.Success ? word.Value : "";
        }

        return LastBoxed(completion) ?? AfterLastMarker(completion) ?? completion;
    }

    /// <summary>Trims, collapses white space to single spaces and removes one trailing period.</summary>
    public static string Normalize(string answer)
    {
        ArgumentNullException.ThrowIfNull(answer);
        string text = WhiteSpace().Replace(answer.Trim(), " ");
        return text.EndsWith('.') ? text[..^1].TrimEnd() : text;
    }

    /// <summary>Whether two answers are the same after <see cref="Normalize"/>: equal numbers, or else equal text ignoring case.</summary>
    /// <param name="answer">The answer found in a completion.</param>
    /// <param name="reference">The reference answer.</param>
    /// <param name="numeric">Whether answers that read as numbers are compared as numbers.</param>
    public static bool Equivalent(string answer, string reference, bool numeric = true)
    {
        string a = Normalize(answer), b = Normalize(reference);
        if (numeric && TryNumber(a, out var x) && TryNumber(b, out var y))
        {
            return x.Numerator * y.Denominator == y.Numerator * x.Denominator;
        }

        return string.Equals(a, b, StringComparison.OrdinalIgnoreCase);
    }

    /// <summary>
    /// Reads a normalised answer as an exact rational number: an optionally signed decimal whose integer part may group
    /// thousands with commas (<c>-1,234.50</c>), or a fraction of integers <c>p/q</c> or <c>\frac{p}{q}</c> (q ≠ 0).
    /// </summary>
    public static bool TryNumber(string text, out (BigInteger Numerator, BigInteger Denominator) value)
    {
        ArgumentNullException.ThrowIfNull(text);
        value = default;
        var fraction = Fraction().Match(text);
        if (fraction.Success)
        {
            var q = BigInteger.Parse(fraction.Groups["q"].Value, CultureInfo.InvariantCulture);
            var p = BigInteger.Parse(fraction.Groups["p"].Value, CultureInfo.InvariantCulture);
            bool negative = fraction.Groups["sign"].Value == "-";
            value = (negative ? -p : p, q);
            return !q.IsZero;
        }

        var number = Decimal().Match(text);
        if (!number.Success)
        {
            return false;
        }

        string digits = number.Groups["int"].Value.Replace(",", "", StringComparison.Ordinal) + number.Groups["frac"].Value;
        var numerator = BigInteger.Parse(digits, CultureInfo.InvariantCulture);
        value = (number.Groups["sign"].Value == "-" ? -numerator : numerator, BigInteger.Pow(10, number.Groups["frac"].Length));
        return true;
    }

    /// <summary>The content of the last <c>\boxed{…}</c> with balanced braces, or null.</summary>
    private static string? LastBoxed(string text)
    {
        int at = text.LastIndexOf(Boxed, StringComparison.Ordinal);
        if (at < 0)
        {
            return null;
        }

        int start = at + Boxed.Length, depth = 1;
        for (int i = start; i < text.Length; i++)
        {
            depth += text[i] == '{' ? 1 : text[i] == '}' ? -1 : 0;
            if (depth == 0)
            {
                return text[start..i];
            }
        }

        return null;
    }

    /// <summary>The rest of the line after the last <c>####</c> or <c>answer:</c>, or null when neither occurs.</summary>
    private static string? AfterLastMarker(string text)
    {
        var marker = Marker().Match(text);
        if (!marker.Success)
        {
            return null;
        }

        int start = marker.Index + marker.Length;
        int end = text.IndexOf('\n', start);
        return end < 0 ? text[start..] : text[start..end];
    }

    /// <summary>A word: a maximal run of letters and digits.</summary>
    [GeneratedRegex(@"[\p{L}\p{N}]+", RegexOptions.CultureInvariant)]
    internal static partial Regex Word();

    [GeneratedRegex(@"\s+", RegexOptions.CultureInvariant)]
    private static partial Regex WhiteSpace();

    [GeneratedRegex(@"####|answer:", RegexOptions.CultureInvariant | RegexOptions.IgnoreCase | RegexOptions.RightToLeft)]
    private static partial Regex Marker();

    [GeneratedRegex(@"\A(?<sign>[+-]?)(?:(?<p>[0-9]+) ?/ ?(?<q>[0-9]+)|\\d?frac\{(?<p>[0-9]+)\}\{(?<q>[0-9]+)\})\z", RegexOptions.CultureInvariant)]
    private static partial Regex Fraction();

    [GeneratedRegex(@"\A(?<sign>[+-]?)(?<int>[0-9]{1,3}(?:,[0-9]{3})+|[0-9]+)(?:\.(?<frac>[0-9]+))?\z", RegexOptions.CultureInvariant)]
    private static partial Regex Decimal();
}
