using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace Engine.Models.Tokenizers;

/// <summary>Rewrites text before it is split (Unicode normalization, replacements, a prepended marker).</summary>
internal abstract class Normalizer
{
    public abstract string Normalize(string text);

    public abstract void Write(Utf8JsonWriter writer);
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

    public override string Normalize(string text) => text.IsNormalized(_form) ? text : text.Normalize(_form);

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
    public override string Normalize(string text) => text.ToLowerInvariant();

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
    public override string Normalize(string text)
    {
        var sb = new StringBuilder(text.Length);
        foreach (var rune in text.EnumerateRunes())
        {
            if (Rune.GetUnicodeCategory(rune) is not (UnicodeCategory.NonSpacingMark or UnicodeCategory.SpacingCombiningMark or UnicodeCategory.EnclosingMark))
            {
                sb.Append(rune.ToString());
            }
        }

        return sb.ToString();
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
    public override string Normalize(string text) => (left, right) switch
    {
        (true, true) => text.Trim(),
        (true, false) => text.TrimStart(),
        (false, true) => text.TrimEnd(),
        _ => text,
    };

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
    public override string Normalize(string text) => text.Length == 0 ? text : prefix + text;

    public override void Write(Utf8JsonWriter writer)
    {
        writer.WriteStartObject();
        writer.WriteString("type", "Prepend");
        writer.WriteString("prepend", prefix);
        writer.WriteEndObject();
    }
}

/// <summary>Replaces every match of a string or regex.</summary>
internal sealed class ReplaceNormalizer : Normalizer
{
    private readonly SplitPattern _pattern;
    private readonly Regex? _regex;

    public ReplaceNormalizer(SplitPattern pattern, string content)
    {
        _pattern = pattern;
        Content = content;
        if (pattern.IsRegex)
        {
            _regex = new Regex(SplitPattern.ToDotNet(pattern.Source), RegexOptions.CultureInvariant, TimeSpan.FromSeconds(10));
        }
    }

    public string Content { get; }

    public override string Normalize(string text) =>
        _regex is null ? text.Replace(_pattern.Source, Content, StringComparison.Ordinal) : _regex.Replace(text, Content.Replace("$", "$$", StringComparison.Ordinal));

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
    public override string Normalize(string text)
    {
        foreach (var step in steps)
        {
            text = step.Normalize(text);
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
