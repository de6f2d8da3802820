using System.Text.Json;

namespace Engine.Models.Tokenizers;

/// <summary>Adds the special tokens a model expects around an encoded text (BOS, CLS/SEP, ...).</summary>
internal abstract class PostProcessor
{
    /// <summary>Appends the processed ids of one sequence to <paramref name="output"/>.</summary>
    public abstract void Apply(List<int> encoded, List<int> output, bool addSpecialTokens);

    public abstract void Write(Utf8JsonWriter writer);
}

/// <summary>ByteLevel's post-processor only trims offsets, which ids do not carry.</summary>
internal sealed class ByteLevelPostProcessor(bool addPrefixSpace, bool trimOffsets, bool useRegex) : PostProcessor
{
    public override void Apply(List<int> encoded, List<int> output, bool addSpecialTokens) => output.AddRange(encoded);

    public override void Write(Utf8JsonWriter writer)
    {
        writer.WriteStartObject();
        writer.WriteString("type", "ByteLevel");
        writer.WriteBoolean("add_prefix_space", addPrefixSpace);
        writer.WriteBoolean("trim_offsets", trimOffsets);
        writer.WriteBoolean("use_regex", useRegex);
        writer.WriteEndObject();
    }
}

/// <summary>
/// A template of special tokens around the sequence; the single-sequence template, e.g.
/// <c>&lt;|begin_of_text|&gt; $A</c>. Pieces are ids already, resolved at load.
/// </summary>
internal sealed class TemplatePostProcessor(IReadOnlyList<int[]?> single, JsonElement source) : PostProcessor
{
    /// <summary>Each item: the ids of a special token, or null for the sequence itself.</summary>
    public IReadOnlyList<int[]?> Single { get; } = single;

    public override void Apply(List<int> encoded, List<int> output, bool addSpecialTokens)
    {
        foreach (var item in Single)
        {
            if (item is null)
            {
                output.AddRange(encoded);
            }
            else if (addSpecialTokens)
            {
                output.AddRange(item);
            }
        }
    }

    public override void Write(Utf8JsonWriter writer) => source.WriteTo(writer);
}

/// <summary>Applies post-processors one after another (Llama-3: ByteLevel, then a BOS template).</summary>
internal sealed class SequencePostProcessor(IReadOnlyList<PostProcessor> steps) : PostProcessor
{
    public override void Apply(List<int> encoded, List<int> output, bool addSpecialTokens)
    {
        var current = encoded;
        foreach (var step in steps)
        {
            var next = new List<int>(current.Count + 4);
            step.Apply(current, next, addSpecialTokens);
            current = next;
        }

        output.AddRange(current);
    }

    public override void Write(Utf8JsonWriter writer)
    {
        writer.WriteStartObject();
        writer.WriteString("type", "Sequence");
        writer.WriteStartArray("processors");
        foreach (var step in steps)
        {
            step.Write(writer);
        }

        writer.WriteEndArray();
        writer.WriteEndObject();
    }
}
