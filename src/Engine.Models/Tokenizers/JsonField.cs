using System.Globalization;
using System.Text.Json;

namespace Engine.Models.Tokenizers;

/// <summary>
/// A JSON element with its path in the document, so every read can fail with a
/// <see cref="TokenizerFormatException"/> naming the file and the field.
/// </summary>
internal readonly struct JsonField
{
    public JsonField(string file, string path, JsonElement element)
    {
        File = file;
        Path = path;
        Element = element;
    }

    public string File { get; }

    public string Path { get; }

    public JsonElement Element { get; }

    public JsonValueKind Kind => Element.ValueKind;

    public bool IsNull => Element.ValueKind is JsonValueKind.Null or JsonValueKind.Undefined;

    public TokenizerFormatException Error(string detail, Exception? inner = null) => new(File, Path, detail, inner);

    public static string KindName(JsonValueKind kind) => kind switch
    {
        JsonValueKind.Object => "an object",
        JsonValueKind.Array => "an array",
        JsonValueKind.String => "a string",
        JsonValueKind.Number => "a number",
        JsonValueKind.True or JsonValueKind.False => "a boolean",
        JsonValueKind.Null => "null",
        _ => "missing",
    };

    /// <summary>The member <paramref name="name"/>, or a field of kind Undefined when absent.</summary>
    public JsonField Get(string name)
    {
        string path = Path.Length == 0 ? name : $"{Path}.{name}";
        if (Element.ValueKind == JsonValueKind.Object && Element.TryGetProperty(name, out var value))
        {
            return new JsonField(File, path, value);
        }

        return new JsonField(File, path, default);
    }

    public JsonField Required(string name)
    {
        var field = Get(name);
        if (field.Kind == JsonValueKind.Undefined)
        {
            throw field.Error("is missing");
        }

        return field;
    }

    public JsonField ExpectObject()
    {
        if (Kind != JsonValueKind.Object)
        {
            throw Error($"expected an object, found {KindName(Kind)}");
        }

        return this;
    }

    public JsonField ExpectArray()
    {
        if (Kind != JsonValueKind.Array)
        {
            throw Error($"expected an array, found {KindName(Kind)}");
        }

        return this;
    }

    public IEnumerable<JsonField> Items()
    {
        ExpectArray();
        int i = 0;
        foreach (var item in Element.EnumerateArray())
        {
            yield return new JsonField(File, $"{Path}[{i.ToString(CultureInfo.InvariantCulture)}]", item);
            i++;
        }
    }

    public int Count => Element.ValueKind == JsonValueKind.Array ? Element.GetArrayLength() : 0;

    public string String()
    {
        if (Kind != JsonValueKind.String)
        {
            throw Error($"expected a string, found {KindName(Kind)}");
        }

        try
        {
            return Element.GetString()!;
        }
        catch (InvalidOperationException e)
        {
            // Lone surrogate escapes such as "\ud800" cannot become a .NET string safely.
            throw Error("is not a valid Unicode string", e);
        }
    }

    public string? OptionalString() => IsNull ? null : String();

    public bool Bool(bool defaultValue)
    {
        return Kind switch
        {
            JsonValueKind.True => true,
            JsonValueKind.False => false,
            JsonValueKind.Null or JsonValueKind.Undefined => defaultValue,
            _ => throw Error($"expected a boolean, found {KindName(Kind)}"),
        };
    }

    public int Int(int defaultValue, int min = int.MinValue, int max = int.MaxValue)
    {
        if (IsNull)
        {
            return defaultValue;
        }

        return RequiredInt(min, max);
    }

    public int RequiredInt(int min = int.MinValue, int max = int.MaxValue)
    {
        if (Kind != JsonValueKind.Number)
        {
            throw Error($"expected an integer, found {KindName(Kind)}");
        }

        if (!Element.TryGetInt64(out long value))
        {
            throw Error($"{Element.GetRawText()} is not an integer in range");
        }

        if (value < min || value > max)
        {
            throw Error(string.Create(CultureInfo.InvariantCulture, $"{value} is out of range [{min}, {max}]"));
        }

        return (int)value;
    }

    public double? OptionalDouble()
    {
        if (IsNull)
        {
            return null;
        }

        if (Kind != JsonValueKind.Number)
        {
            throw Error($"expected a number, found {KindName(Kind)}");
        }

        return Element.GetDouble();
    }

    /// <summary>The <c>type</c> member of a component, e.g. <c>"ByteLevel"</c>.</summary>
    public string TypeName()
    {
        ExpectObject();
        return Required("type").String();
    }
}
