using System.Text.Json;
using System.Text.Unicode;

namespace Engine.Models.Formats;

/// <summary>
/// Parses and validates a safetensors JSON header with the reference (Rust) implementation's rules, plus a rejection
/// of duplicate keys, which serde silently resolves and which would otherwise hide a tensor.
/// </summary>
internal static class SafetensorsHeader
{
    /// <summary>Name of the optional string→string map in the header.</summary>
    public const string MetadataKey = "__metadata__";

    /// <summary>
    /// Validates <paramref name="header"/> against a data section of <paramref name="dataLength"/> bytes and returns the
    /// tensors in data-offset order and the metadata.
    /// </summary>
    public static (List<TensorInfo> Tensors, Dictionary<string, string> Metadata) Parse(
        string path, byte[] header, long dataLength)
    {
        if (!Utf8.IsValid(header))
        {
            throw new SafetensorsException(path, null, "header", "is not valid UTF-8");
        }

        // JsonDocument skips a byte-order mark; serde_json (and so the reference) rejects one.
        if (header.Length >= 3 && header[0] == 0xEF && header[1] == 0xBB && header[2] == 0xBF)
        {
            throw new SafetensorsException(path, null, "header", "starts with a byte-order mark");
        }

        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(header, new JsonDocumentOptions { MaxDepth = 64 });
        }
        catch (JsonException ex)
        {
            throw new SafetensorsException(path, null, "header", $"is not valid JSON ({ex.Message})", ex);
        }

        using (document)
        {
            JsonElement root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
            {
                throw new SafetensorsException(path, null, "header", $"is a JSON {Kind(root)}, expected an object");
            }

            var tensors = new List<TensorInfo>();
            var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
            var seen = new HashSet<string>(StringComparer.Ordinal);
            bool sawMetadata = false;
            foreach (JsonProperty property in root.EnumerateObject())
            {
                string name = PropertyName(path, null, property, "tensor name");
                if (name == MetadataKey)
                {
                    if (sawMetadata)
                    {
                        throw new SafetensorsException(path, null, MetadataKey, "appears more than once");
                    }

                    sawMetadata = true;
                    ReadMetadata(path, property.Value, metadata);
                    continue;
                }

                if (!seen.Add(name))
                {
                    throw new SafetensorsException(path, name, "name", "appears more than once in the header");
                }

                tensors.Add(ReadTensor(path, name, property.Value));
            }

            CheckLayout(path, tensors, dataLength);
            return (tensors, metadata);
        }
    }

    private static void ReadMetadata(string path, JsonElement value, Dictionary<string, string> metadata)
    {
        if (value.ValueKind != JsonValueKind.Object)
        {
            throw new SafetensorsException(path, null, MetadataKey, $"is a JSON {Kind(value)}, expected an object of strings");
        }

        foreach (JsonProperty entry in value.EnumerateObject())
        {
            string key = PropertyName(path, null, entry, MetadataKey);
            if (entry.Value.ValueKind != JsonValueKind.String)
            {
                throw new SafetensorsException(path, null, $"{MetadataKey}.{key}", $"is a JSON {Kind(entry.Value)}, expected a string");
            }

            if (!metadata.TryAdd(key, StringValue(path, null, $"{MetadataKey}.{key}", entry.Value)))
            {
                throw new SafetensorsException(path, null, $"{MetadataKey}.{key}", "appears more than once");
            }
        }
    }

    private static TensorInfo ReadTensor(string path, string name, JsonElement value)
    {
        if (value.ValueKind != JsonValueKind.Object)
        {
            throw new SafetensorsException(path, name, "entry", $"is a JSON {Kind(value)}, expected an object");
        }

        JsonElement? dtypeElement = null, shapeElement = null, offsetsElement = null;
        foreach (JsonProperty field in value.EnumerateObject())
        {
            string key = PropertyName(path, name, field, "entry");
            ref JsonElement? slot = ref dtypeElement;
            switch (key)
            {
                case "dtype": slot = ref dtypeElement; break;
                case "shape": slot = ref shapeElement; break;
                case "data_offsets": slot = ref offsetsElement; break;

                // The reference ignores unknown fields, so files from newer writers keep loading.
                default: continue;
            }

            if (slot.HasValue)
            {
                throw new SafetensorsException(path, name, key, "appears more than once");
            }

            slot = field.Value;
        }

        SafetensorsDType dtype = ReadDType(path, name, dtypeElement);
        long[] shape = ReadShape(path, name, shapeElement);
        (long begin, long end) = ReadOffsets(path, name, offsetsElement);

        long elements = 1;
        foreach (long d in shape)
        {
            if (d != 0 && elements > long.MaxValue / d)
            {
                throw new SafetensorsException(path, name, "shape", $"[{string.Join(", ", shape)}] has more than {long.MaxValue} elements");
            }

            elements *= d;
        }

        int size = dtype.SizeOf();
        if (elements > long.MaxValue / size)
        {
            throw new SafetensorsException(
                path, name, "shape", $"[{string.Join(", ", shape)}] of {dtype.HeaderName()} needs more than {long.MaxValue} bytes");
        }

        return new TensorInfo(name, dtype, shape, elements, begin, end);
    }

    private static SafetensorsDType ReadDType(string path, string name, JsonElement? element)
    {
        if (element is not { } e)
        {
            throw new SafetensorsException(path, name, "dtype", "is missing");
        }

        if (e.ValueKind != JsonValueKind.String)
        {
            throw new SafetensorsException(path, name, "dtype", $"is a JSON {Kind(e)}, expected a string");
        }

        string text = StringValue(path, name, "dtype", e);
        if (!SafetensorsDTypes.TryParse(text, out SafetensorsDType dtype))
        {
            throw new SafetensorsException(path, name, "dtype", $"'{Clip(text)}' is not a known dtype");
        }

        return dtype;
    }

    private static long[] ReadShape(string path, string name, JsonElement? element)
    {
        if (element is not { } e)
        {
            throw new SafetensorsException(path, name, "shape", "is missing");
        }

        if (e.ValueKind != JsonValueKind.Array)
        {
            throw new SafetensorsException(path, name, "shape", $"is a JSON {Kind(e)}, expected an array of integers");
        }

        var shape = new long[e.GetArrayLength()];
        int i = 0;
        foreach (JsonElement d in e.EnumerateArray())
        {
            shape[i] = NonNegative(path, name, "shape", d, i);
            i++;
        }

        return shape;
    }

    private static (long Begin, long End) ReadOffsets(string path, string name, JsonElement? element)
    {
        if (element is not { } e)
        {
            throw new SafetensorsException(path, name, "data_offsets", "is missing");
        }

        if (e.ValueKind != JsonValueKind.Array || e.GetArrayLength() != 2)
        {
            string what = e.ValueKind == JsonValueKind.Array ? $"an array of {e.GetArrayLength()} elements" : $"a JSON {Kind(e)}";
            throw new SafetensorsException(path, name, "data_offsets", $"is {what}, expected [begin, end]");
        }

        long begin = NonNegative(path, name, "data_offsets", e[0], 0);
        long end = NonNegative(path, name, "data_offsets", e[1], 1);
        if (end < begin)
        {
            throw new SafetensorsException(path, name, "data_offsets", $"[{begin}, {end}] ends before it begins");
        }

        return (begin, end);
    }

    private static long NonNegative(string path, string name, string field, JsonElement e, int index)
    {
        if (e.ValueKind != JsonValueKind.Number)
        {
            throw new SafetensorsException(path, name, field, $"element {index} is a JSON {Kind(e)}, expected a non-negative integer");
        }

        // TryGetUInt64 refuses fractions, exponents and negatives, as serde's usize does.
        if (!e.TryGetUInt64(out ulong value))
        {
            throw new SafetensorsException(
                path, name, field, $"element {index} ({Clip(e.GetRawText())}) is not a non-negative integer below 2^64");
        }

        if (value > long.MaxValue)
        {
            throw new SafetensorsException(path, name, field, $"element {index} ({value}) is too large");
        }

        return (long)value;
    }

    private static void CheckLayout(string path, List<TensorInfo> tensors, long dataLength)
    {
        // The reference orders tensors by their offsets, not by header order, then requires them to tile the data
        // section exactly: no gap, no overlap, nothing left over.
        tensors.Sort(static (a, b) => a.DataBegin != b.DataBegin ? a.DataBegin.CompareTo(b.DataBegin) : a.DataEnd.CompareTo(b.DataEnd));
        long expected = 0;
        foreach (TensorInfo t in tensors)
        {
            if (t.DataBegin != expected)
            {
                string what = t.DataBegin < expected ? "overlaps the previous tensor" : "leaves a gap after the previous tensor";
                throw new SafetensorsException(
                    path, t.Name, "data_offsets", $"[{t.DataBegin}, {t.DataEnd}] {what} (expected begin {expected})");
            }

            long needed = t.ElementCount * t.DType.SizeOf();
            if (t.ByteLength != needed)
            {
                throw new SafetensorsException(
                    path,
                    t.Name,
                    "data_offsets",
                    $"[{t.DataBegin}, {t.DataEnd}] hold {t.ByteLength} bytes but shape [{string.Join(", ", t.Shape)}] of {t.DType.HeaderName()} needs {needed}");
            }

            expected = t.DataEnd;
        }

        if (expected != dataLength)
        {
            string? last = tensors.Count > 0 ? tensors[^1].Name : null;
            throw new SafetensorsException(
                path, last, "data_offsets", $"tensors end at byte {expected} of the data section, but it holds {dataLength} bytes");
        }
    }

    private static string PropertyName(string path, string? tensor, JsonProperty property, string field)
    {
        try
        {
            return property.Name;
        }
        catch (InvalidOperationException ex)
        {
            throw new SafetensorsException(path, tensor, field, "a key is not a valid string (unpaired surrogate escape)", ex);
        }
    }

    private static string StringValue(string path, string? tensor, string field, JsonElement e)
    {
        try
        {
            return e.GetString() ?? string.Empty;
        }
        catch (InvalidOperationException ex)
        {
            throw new SafetensorsException(path, tensor, field, "is not a valid string (unpaired surrogate escape)", ex);
        }
    }

    private static string Kind(JsonElement e) => e.ValueKind switch
    {
        JsonValueKind.Object => "object",
        JsonValueKind.Array => "array",
        JsonValueKind.String => "string",
        JsonValueKind.Number => "number",
        JsonValueKind.True or JsonValueKind.False => "boolean",
        JsonValueKind.Null => "null",
        _ => "value",
    };

    private static string Clip(string text) => text.Length <= 40 ? text : string.Concat(text.AsSpan(0, 40), "…");
}
