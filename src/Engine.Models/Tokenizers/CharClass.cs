using System.Globalization;

namespace Engine.Models.Tokenizers;

/// <summary>
/// The character classes the split patterns test (<c>\p{L}</c>, <c>\p{N}</c>, <c>\s</c>), per Unicode code point,
/// with a table for the Basic Multilingual Plane so the hot loop does no category lookups.
/// </summary>
internal static class CharClass
{
    public const byte Other = 0;
    public const byte Letter = 1;
    public const byte Number = 2;
    public const byte Space = 3;

    private static readonly byte[] Bmp = Build();

    /// <summary>The class of the code point at <paramref name="i"/> and its width in UTF-16 units (1 or 2).</summary>
    public static byte At(ReadOnlySpan<char> s, int i, out int width)
    {
        char c = s[i];
        if (char.IsHighSurrogate(c) && i + 1 < s.Length && char.IsLowSurrogate(s[i + 1]))
        {
            width = 2;
            return OfCategory(CharUnicodeInfo.GetUnicodeCategory(char.ConvertToUtf32(c, s[i + 1])), false);
        }

        // A lone surrogate is category Cs: neither letter, number nor space, as in .NET's regex engine.
        width = 1;
        return Bmp[c];
    }

    /// <summary>True for characters of <c>\w</c>: letters, marks, decimal digits and connector punctuation.</summary>
    public static bool IsWordChar(int codePoint)
    {
        var category = CharUnicodeInfo.GetUnicodeCategory(codePoint);
        return category is UnicodeCategory.UppercaseLetter or UnicodeCategory.LowercaseLetter or UnicodeCategory.TitlecaseLetter
            or UnicodeCategory.ModifierLetter or UnicodeCategory.OtherLetter or UnicodeCategory.NonSpacingMark
            or UnicodeCategory.SpacingCombiningMark or UnicodeCategory.EnclosingMark or UnicodeCategory.DecimalDigitNumber
            or UnicodeCategory.ConnectorPunctuation;
    }

    private static byte OfCategory(UnicodeCategory category, bool whiteSpace)
    {
        if (whiteSpace)
        {
            return Space;
        }

        return category switch
        {
            UnicodeCategory.UppercaseLetter or UnicodeCategory.LowercaseLetter or UnicodeCategory.TitlecaseLetter
                or UnicodeCategory.ModifierLetter or UnicodeCategory.OtherLetter => Letter,
            UnicodeCategory.DecimalDigitNumber or UnicodeCategory.LetterNumber or UnicodeCategory.OtherNumber => Number,
            _ => Other,
        };
    }

    private static byte[] Build()
    {
        var table = new byte[65536];
        for (int c = 0; c < table.Length; c++)
        {
            // char.IsWhiteSpace is exactly Unicode's White_Space property, which is what \s means in Oniguruma.
            table[c] = OfCategory(CharUnicodeInfo.GetUnicodeCategory((char)c), char.IsWhiteSpace((char)c));
        }

        return table;
    }
}
