using System.Globalization;
using System.Text;
using System.Text.Json;

namespace Engine.Models.Tokenizers;

/// <summary>
/// Rewrites text before it is split (Unicode normalization, replacements, a prepended marker). The output of a whole
/// chain may not grow past <see cref="MaxLength"/> of its input: a file chaining Replace("a", "aa") steps would
/// otherwise double the text at each step.
/// </summary>
internal abstract class Normalizer
{
    /// <summary>How many times its input a normalizer's output may be, plus <see cref="GrowthSlack"/> characters (NFKD of Hangul triples it).</summary>
    public const int MaxGrowth = 8;

    /// <summary>Characters a normalizer may add beyond <see cref="MaxGrowth"/> times its input (a prepended marker, short inputs).</summary>
    public const int GrowthSlack = 1024;

    /// <summary>The file and field the normalizer was read from, for errors.</summary>
    public (string File, string Field) Origin { get; set; } = ("<memory>", "normalizer");

    /// <summary>The longest output allowed for an input of <paramref name="inputLength"/> characters.</summary>
    public static int MaxLength(int inputLength) => (int)Math.Min(Array.MaxLength, (long)inputLength * MaxGrowth + GrowthSlack);

    /// <summary>Normalizes <paramref name="text"/> within the growth budget.</summary>
    /// <exception cref="TokenizerFormatException">The output would pass <see cref="MaxLength"/>.</exception>
    public string Normalize(string text) => Normalize(text, MaxLength(text.Length));

    /// <summary>Normalizes <paramref name="text"/>, failing when the output would pass <paramref name="maxLength"/> characters.</summary>
    public abstract string Normalize(string text, int maxLength);

    public abstract void Write(Utf8JsonWriter writer);

    /// <summary>The error for an output that grew past <paramref name="maxLength"/>.</summary>
    protected TokenizerFormatException TooLong(long length, int maxLength) => new(Origin.File, Origin.Field,
        $"the output would be {length} characters or more, over the limit of {maxLength} ({MaxGrowth} times the input plus {GrowthSlack}); the normalizer grows text without bound");

    protected string Checked(string output, int maxLength) => output.Length <= maxLength ? output : throw TooLong(output.Length, maxLength);
}

/// <summary>NFC, NFD, NFKC or NFKD.</summary>
internal sealed class UnicodeNormalizer : Normalizer
{
    private readonly NormalizationForm _form;
    private readonly string _type;

    public UnicodeNormalizer(string type, NormalizationForm form)
    {
        _type = type;
        _form = form;
    }

    /// <summary>
    /// False when the process runs with invariant globalization, where <see cref="string.Normalize(NormalizationForm)"/>
    /// silently returns its input: a tokenizer relying on it would then disagree with its reference without a sign.
    /// </summary>
    public static bool IsAvailable { get; } = "e\u0301".Normalize(NormalizationForm.FormC) == "\u00e9";

    public override string Normalize(string text, int maxLength) => text.IsNormalized(_form) ? Checked(text, maxLength) : Checked(text.Normalize(_form), maxLength);

    public override void Write(Utf8JsonWriter writer)
    {
        writer.WriteStartObject();
        writer.WriteString("type", _type);
        writer.WriteEndObject();
    }
}

/// <summary>Lower-cases with the invariant culture.</summary>
internal sealed class LowercaseNormalizer : Normalizer
{
    public override string Normalize(string text, int maxLength) => Checked(text.ToLowerInvariant(), maxLength);

    public override void Write(Utf8JsonWriter writer)
    {
        writer.WriteStartObject();
        writer.WriteString("type", "Lowercase");
        writer.WriteEndObject();
    }
}

/// <summary>Removes combining marks (normally after NFD).</summary>
internal sealed class StripAccentsNormalizer : Normalizer
{
    public override string Normalize(string text, int maxLength)
    {
        var sb = new StringBuilder(text.Length);
        foreach (var rune in text.EnumerateRunes())
        {
            if (Rune.GetUnicodeCategory(rune) is not (UnicodeCategory.NonSpacingMark or UnicodeCategory.SpacingCombiningMark or UnicodeCategory.EnclosingMark))
            {
                sb.Append(rune.ToString());
            }
        }

        return Checked(sb.ToString(), maxLength);
    }

    public override void Write(Utf8JsonWriter writer)
    {
        writer.WriteStartObject();
        writer.WriteString("type", "StripAccents");
        writer.WriteEndObject();
    }
}

/// <summary>Trims whitespace on the left and/or right.</summary>
internal sealed class StripNormalizer(bool left, bool right) : Normalizer
{
    public override string Normalize(string text, int maxLength) => Checked((left, right) switch
    {
        (true, true) => text.Trim(),
        (true, false) => text.TrimStart(),
        (false, true) => text.TrimEnd(),
        _ => text,
    }, maxLength);

    public override void Write(Utf8JsonWriter writer)
    {
        writer.WriteStartObject();
        writer.WriteString("type", "Strip");
        writer.WriteBoolean("strip_left", left);
        writer.WriteBoolean("strip_right", right);
        writer.WriteEndObject();
    }
}

/// <summary>Puts a marker before non-empty text (sentencepiece-style files prepend '▁').</summary>
internal sealed class PrependNormalizer(string prefix) : Normalizer
{
    public override string Normalize(string text, int maxLength) =>
        (long)prefix.Length + text.Length > maxLength ? throw TooLong((long)prefix.Length + text.Length, maxLength) : text.Length == 0 ? text : prefix + text;

    public override void Write(Utf8JsonWriter writer)
    {
        writer.WriteStartObject();
        writer.WriteString("type", "Prepend");
        writer.WriteString("prepend", prefix);
        writer.WriteEndObject();
    }
}

/// <summary>Replaces every match of a string or regex.</summary>
internal sealed class ReplaceNormalizer(SplitPattern pattern, string content) : Normalizer
{
    private readonly SplitPattern _pattern = pattern;

    public string Content { get; } = content;

    public override string Normalize(string text, int maxLength) =>
        _pattern.Replace(text, Content, maxLength) ?? throw TooLong((long)maxLength + 1, maxLength);

    public override void Write(Utf8JsonWriter writer) => WriteReplace(writer, _pattern, Content);

    public static void WriteReplace(Utf8JsonWriter writer, SplitPattern pattern, string content)
    {
        writer.WriteStartObject();
        writer.WriteString("type", "Replace");
        writer.WriteStartObject("pattern");
        writer.WriteString(pattern.IsRegex ? "Regex" : "String", pattern.Source);
        writer.WriteEndObject();
        writer.WriteString("content", content);
        writer.WriteEndObject();
    }
}

/// <summary>Applies normalizers one after another.</summary>
internal sealed class SequenceNormalizer(IReadOnlyList<Normalizer> steps) : Normalizer
{
    public override string Normalize(string text, int maxLength)
    {
        foreach (var step in steps)
        {
            text = step.Normalize(text, maxLength);
        }

        return text;
    }

    public override void Write(Utf8JsonWriter writer)
    {
        writer.WriteStartObject();
        writer.WriteString("type", "Sequence");
        writer.WriteStartArray("normalizers");
        foreach (var step in steps)
        {
            step.Write(writer);
        }

        writer.WriteEndArray();
        writer.WriteEndObject();
    }
}
