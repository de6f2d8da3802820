using System.Text;
using System.Text.Json;

namespace Engine.Models.Tokenizers;

/// <summary>Turns token strings back into text, as a chain of steps over a list of strings.</summary>
internal abstract class Decoder
{
    /// <summary>Rewrites <paramref name="tokens"/>; <paramref name="isAdded"/> marks added tokens, which pass through as written.</summary>
    public abstract List<string> Decode(List<string> tokens, Func<string, bool> isAdded);

    public abstract void Write(Utf8JsonWriter writer);

    protected static void WriteType(Utf8JsonWriter writer, string type)
    {
        writer.WriteStartObject();
        writer.WriteString("type", type);
        writer.WriteEndObject();
    }
}

/// <summary>Maps GPT-2's byte alphabet back to bytes and decodes them as UTF-8 (invalid sequences become U+FFFD).</summary>
internal sealed class ByteLevelDecoder : Decoder
{
    public override List<string> Decode(List<string> tokens, Func<string, bool> isAdded)
    {
        var result = new List<string>();
        var bytes = new List<byte>();
        foreach (string token in tokens)
        {
            if (isAdded(token))
            {
                Flush(bytes, result);
                result.Add(token);
                continue;
            }

            AppendBytes(token, bytes);
        }

        Flush(bytes, result);
        return result;
    }

    /// <summary>The bytes a token stands for; a token with characters outside the alphabet stands for its own UTF-8.</summary>
    public static void AppendBytes(string token, List<byte> bytes)
    {
        byte[]? mapped = ByteLevelAlphabet.Decode(token);
        bytes.AddRange(mapped ?? Encoding.UTF8.GetBytes(token));
    }

    private static void Flush(List<byte> bytes, List<string> result)
    {
        if (bytes.Count > 0)
        {
            result.Add(Encoding.UTF8.GetString(bytes.ToArray()));
            bytes.Clear();
        }
    }

    public override void Write(Utf8JsonWriter writer)
    {
        writer.WriteStartObject();
        writer.WriteString("type", "ByteLevel");
        writer.WriteBoolean("add_prefix_space", true);
        writer.WriteBoolean("trim_offsets", true);
        writer.WriteBoolean("use_regex", true);
        writer.WriteEndObject();
    }
}

/// <summary>Replaces a string in every token (sentencepiece files: '▁' back to ' ').</summary>
internal sealed class ReplaceDecoder(SplitPattern pattern, string content) : Decoder
{
    public override List<string> Decode(List<string> tokens, Func<string, bool> isAdded)
    {
        var result = new List<string>(tokens.Count);
        foreach (string token in tokens)
        {
            result.Add(pattern.Replace(token, content)!);
        }

        return result;
    }

    public override void Write(Utf8JsonWriter writer) => ReplaceNormalizer.WriteReplace(writer, pattern, content);
}

/// <summary>
/// Turns runs of <c>&lt;0xXX&gt;</c> tokens into the text of their bytes; a run that is not valid UTF-8 becomes one
/// U+FFFD per byte, as in the reference implementation.
/// </summary>
internal sealed class ByteFallbackDecoder : Decoder
{
    public override List<string> Decode(List<string> tokens, Func<string, bool> isAdded)
    {
        var result = new List<string>(tokens.Count);
        var bytes = new List<byte>();
        foreach (string token in tokens)
        {
            if (TryParseByte(token, out byte b))
            {
                bytes.Add(b);
                continue;
            }

            Flush(bytes, result);
            result.Add(token);
        }

        Flush(bytes, result);
        return result;
    }

    public static bool TryParseByte(string token, out byte value)
    {
        value = 0;
        return token.Length == 6 && token.StartsWith("<0x", StringComparison.Ordinal) && token[5] == '>'
            && byte.TryParse(token.AsSpan(3, 2), System.Globalization.NumberStyles.AllowHexSpecifier, null, out value);
    }

    private static void Flush(List<byte> bytes, List<string> result)
    {
        if (bytes.Count == 0)
        {
            return;
        }

        try
        {
            result.Add(new UTF8Encoding(false, true).GetString(bytes.ToArray()));
        }
        catch (DecoderFallbackException)
        {
            for (int i = 0; i < bytes.Count; i++)
            {
                result.Add("\uFFFD");
            }
        }

        bytes.Clear();
    }

    public override void Write(Utf8JsonWriter writer) => WriteType(writer, "ByteFallback");
}

/// <summary>Joins all tokens into one string.</summary>
internal sealed class FuseDecoder : Decoder
{
    public override List<string> Decode(List<string> tokens, Func<string, bool> isAdded) => [string.Concat(tokens)];

    public override void Write(Utf8JsonWriter writer) => WriteType(writer, "Fuse");
}

/// <summary>Removes up to <c>start</c> leading and <c>stop</c> trailing copies of a character from every token.</summary>
internal sealed class StripDecoder(char content, int start, int stop) : Decoder
{
    public override List<string> Decode(List<string> tokens, Func<string, bool> isAdded)
    {
        var result = new List<string>(tokens.Count);
        foreach (string token in tokens)
        {
            int from = 0;
            while (from < start && from < token.Length && token[from] == content)
            {
                from++;
            }

            int to = token.Length;
            while (token.Length - to < stop && to > from && token[to - 1] == content)
            {
                to--;
            }

            result.Add(token[from..to]);
        }

        return result;
    }

    public override void Write(Utf8JsonWriter writer)
    {
        writer.WriteStartObject();
        writer.WriteString("type", "Strip");
        writer.WriteString("content", content.ToString());
        writer.WriteNumber("start", start);
        writer.WriteNumber("stop", stop);
        writer.WriteEndObject();
    }
}

/// <summary>Sentencepiece's '▁' back to spaces, dropping the one the encoder prepended to the first token.</summary>
internal sealed class MetaspaceDecoder(char replacement, bool dropFirst, JsonElement source) : Decoder
{
    public override List<string> Decode(List<string> tokens, Func<string, bool> isAdded)
    {
        var result = new List<string>(tokens.Count);
        for (int i = 0; i < tokens.Count; i++)
        {
            var sb = new StringBuilder(tokens[i].Length);
            foreach (char c in tokens[i])
            {
                if (c != replacement)
                {
                    sb.Append(c);
                }
                else if (i != 0 || !dropFirst)
                {
                    sb.Append(' ');
                }
            }

            result.Add(sb.ToString());
        }

        return result;
    }

    public override void Write(Utf8JsonWriter writer) => source.WriteTo(writer);
}

/// <summary>Applies decoders one after another (Llama-2: Replace, ByteFallback, Fuse, Strip).</summary>
internal sealed class SequenceDecoder(IReadOnlyList<Decoder> steps) : Decoder
{
    public override List<string> Decode(List<string> tokens, Func<string, bool> isAdded)
    {
        foreach (var step in steps)
        {
            tokens = step.Decode(tokens, isAdded);
        }

        return tokens;
    }

    public override void Write(Utf8JsonWriter writer)
    {
        writer.WriteStartObject();
        writer.WriteString("type", "Sequence");
        writer.WriteStartArray("decoders");
        foreach (var step in steps)
        {
            step.Write(writer);
        }

        writer.WriteEndArray();
        writer.WriteEndObject();
    }
}
