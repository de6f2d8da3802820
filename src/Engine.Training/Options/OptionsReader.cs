using System.Globalization;
using System.Reflection;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using Engine.Core.IO;
using YamlDotNet.Core;
using YamlDotNet.Core.Events;

namespace Engine.Training.Options;

/// <summary>The syntax of a configuration file.</summary>
public enum OptionsFormat
{
    /// <summary>A JSON object.</summary>
    Json,
    /// <summary>A YAML mapping.</summary>
    Yaml,
}

/// <summary>
/// Reads option records (<see cref="TrainerOptions"/> and its kind) from JSON or YAML files and <c>key=value</c>
/// overrides onto the record's own defaults. Keys are the snake_case property names; nested records are mappings (or
/// dotted keys: <c>optimizer.beta2=0.99</c>). An unknown key, a duplicate or a value of the wrong type is an
/// <see cref="OptionsException"/> naming the file, the line and the key.
/// </summary>
public static partial class OptionsReader
{
    /// <summary>The source name of <c>key=value</c> overrides in error messages.</summary>
    public const string OverrideSource = "override";

    /// <summary>The largest configuration file accepted (1 MiB; real ones are a few hundred bytes).</summary>
    public const long MaxFileBytes = 1 << 20;

    /// <summary>The deepest nesting of mappings and lists accepted (options records nest two levels).</summary>
    public const int MaxDepth = 32;

    // TRL / Hugging Face spellings accepted for the same settings.
    private static readonly Dictionary<string, string> Aliases = new(StringComparer.Ordinal)
    {
        ["lr_scheduler_type"] = "schedule",
        ["num_train_epochs"] = "epochs",
        ["per_device_train_batch_size"] = "batch_size",
        ["max_grad_norm"] = "optimizer.max_grad_norm",
        ["weight_decay"] = "optimizer.weight_decay",
        ["adam_beta1"] = "optimizer.beta1",
        ["adam_beta2"] = "optimizer.beta2",
        ["adam_epsilon"] = "optimizer.epsilon",
        ["eval_steps"] = "eval_interval",
        ["logging_steps"] = "log_interval",
        ["save_steps"] = "checkpoint_interval",
        ["save_total_limit"] = "keep_last",
        ["output_dir"] = "output_directory",
        ["max_seq_length"] = "max_length",
    };

    private static readonly JsonSerializerOptions JsonOptions = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        Converters = { new JsonStringEnumConverter(JsonNamingPolicy.SnakeCaseLower) },
        WriteIndented = false,
    };

    /// <summary>Reads a JSON (<c>.json</c>) or YAML (<c>.yaml</c>, <c>.yml</c>) file onto the defaults of <typeparamref name="T"/>, then applies <paramref name="overrides"/>.</summary>
    public static T ReadFile<T>(string path, IEnumerable<string>? overrides = null)
        where T : class, new()
    {
        var options = new T();
        Bind(options, ReadRoot(path), path, prefix: "");
        return overrides is null ? options : Apply(options, overrides);
    }

    /// <summary>
    /// Whether the file at <paramref name="path"/> (when given) or one of the <c>key=value</c> <paramref name="overrides"/>
    /// sets the top-level <paramref name="key"/> (under its name or a TRL alias), as opposed to leaving its default.
    /// </summary>
    public static bool Sets(string? path, IEnumerable<string> overrides, string key) => SetKeys(path, overrides)(key);

    /// <summary>
    /// The test of <see cref="Sets"/> for any key, with the file at <paramref name="path"/> read once: whether the file or
    /// one of the <c>key=value</c> <paramref name="overrides"/> sets a top-level key (under its name or a TRL alias).
    /// </summary>
    public static Func<string, bool> SetKeys(string? path, IEnumerable<string> overrides)
    {
        ArgumentNullException.ThrowIfNull(overrides);
        var given = overrides
            .Select(pair => pair.IndexOf('=', StringComparison.Ordinal) is > 0 and int eq ? pair[..eq].Trim() : null)
            .OfType<string>()
            .Concat(path is null ? [] : ReadRoot(path).Entries.Select(entry => entry.Key))
            .Select(name => Aliases.TryGetValue(name, out string? alias) ? alias : name)
            .ToList();
        return key =>
        {
            ArgumentException.ThrowIfNullOrEmpty(key);
            return given.Any(name => name == key || name.StartsWith(key + ".", StringComparison.Ordinal));
        };
    }

    // The parsed top-level mapping of a JSON or YAML configuration file.
    private static Node.Mapping ReadRoot(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        if (!File.Exists(path) && !Directory.Exists(path))
        {
            throw new OptionsException(path, 0, null, "no such file");
        }

        string extension = Path.GetExtension(path).ToLowerInvariant();
        var format = extension switch
        {
            ".json" => OptionsFormat.Json,
            ".yaml" or ".yml" => OptionsFormat.Yaml,
            _ => throw new OptionsException(path, 0, null, $"cannot tell the format from '{extension}'; use .json, .yaml or .yml"),
        };
        string text = InputFiles.ReadAllText(path, MaxFileBytes, "the configuration file");
        return format == OptionsFormat.Json ? ParseJson(text, path) : ParseYaml(text, path);
    }

    /// <summary>Parses configuration text onto the defaults of <typeparamref name="T"/>; <paramref name="sourceName"/> names it in errors.</summary>
    public static T Parse<T>(string text, string sourceName, OptionsFormat format)
        where T : class, new()
    {
        ArgumentNullException.ThrowIfNull(text);
        ArgumentNullException.ThrowIfNull(sourceName);
        var root = format == OptionsFormat.Json ? ParseJson(text, sourceName) : ParseYaml(text, sourceName);
        var options = new T();
        Bind(options, root, sourceName, prefix: "");
        return options;
    }

    /// <summary>
    /// A copy of <paramref name="options"/> with <c>key=value</c> pairs applied in order (dotted keys reach nested
    /// records; values are parsed as YAML scalars would be: numbers, true/false, enum names, text).
    /// </summary>
    public static T Apply<T>(T options, IEnumerable<string> overrides)
        where T : class
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(overrides);
        var copy = Clone(options);
        var entries = new List<Entry>();
        foreach (string pair in overrides)
        {
            int eq = pair.IndexOf('=', StringComparison.Ordinal);
            if (eq <= 0)
            {
                throw new OptionsException(OverrideSource, 0, null, $"'{pair}' is not of the form key=value");
            }

            entries.Add(new Entry(pair[..eq].Trim(), 0, new Node.Scalar(pair[(eq + 1)..].Trim(), Quoted: false, 0)));
        }

        // Each override replaces the same key set earlier, so they are bound one at a time.
        foreach (var entry in entries)
        {
            Bind(copy, new Node.Mapping([entry], 0), OverrideSource, prefix: "");
        }

        return copy;
    }

    /// <summary>The options as one JSON object with the same keys the reader accepts (enums as snake_case names).</summary>
    public static string ToJson(object options)
    {
        ArgumentNullException.ThrowIfNull(options);
        return JsonSerializer.Serialize(options, options.GetType(), JsonOptions);
    }

    /// <summary>Every key <typeparamref name="T"/> accepts (dotted for nested records), in declaration order.</summary>
    public static IReadOnlyList<string> Keys<T>() => [.. KeysOf(typeof(T), "")];

    /// <summary>snake_case of a PascalCase name: <c>MinLearningRateRatio</c> → <c>min_learning_rate_ratio</c>.</summary>
    public static string SnakeCase(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        var sb = new StringBuilder(name.Length + 8);
        for (int i = 0; i < name.Length; i++)
        {
            char c = name[i];
            if (char.IsUpper(c))
            {
                bool boundary = i > 0 && (char.IsLower(name[i - 1]) || char.IsDigit(name[i - 1]) || (i + 1 < name.Length && char.IsLower(name[i + 1]) && char.IsUpper(name[i - 1])));
                if (boundary)
                {
                    sb.Append('_');
                }

                sb.Append(char.ToLowerInvariant(c));
            }
            else
            {
                sb.Append(c);
            }
        }

        return sb.ToString();
    }

    private static IEnumerable<string> KeysOf(Type type, string prefix)
    {
        foreach (var p in Settable(type))
        {
            string key = prefix + SnakeCase(p.Name);
            if (IsNested(p.PropertyType))
            {
                foreach (string nested in KeysOf(p.PropertyType, key + "."))
                {
                    yield return nested;
                }
            }
            else
            {
                yield return key;
            }
        }
    }

    private static IEnumerable<PropertyInfo> Settable(Type type) =>
        type.GetProperties(BindingFlags.Public | BindingFlags.Instance)
            .Where(p => p.CanRead && p.CanWrite && p.SetMethod!.IsPublic && p.GetIndexParameters().Length == 0 && p.Name != "EqualityContract")
            .OrderBy(p => p.DeclaringType == type ? 1 : 0)
            .ThenBy(p => p.MetadataToken);

    // Records with settable properties of their own (AdamWSettings) are mappings; strings and scalars are not.
    private static bool IsNested(Type type) =>
        type.IsClass && type != typeof(string) && type.GetConstructor(Type.EmptyTypes) is not null && Settable(type).Any();

    private static bool IsNullable(PropertyInfo property) =>
        new NullabilityInfoContext().Create(property).WriteState == NullabilityState.Nullable;

    // Records are copied through their compiler-generated clone so defaults set in constructors survive.
    private static T Clone<T>(T value)
        where T : class
    {
        var clone = value.GetType().GetMethod("<Clone>$", BindingFlags.Public | BindingFlags.Instance)
            ?? throw new ArgumentException($"{value.GetType().Name} is not a record; options must be records", nameof(value));
        return (T)clone.Invoke(value, null)!;
    }

    private static void Bind(object target, Node.Mapping mapping, string source, string prefix)
    {
        var type = target.GetType();
        var properties = Settable(type).ToDictionary(p => SnakeCase(p.Name), StringComparer.Ordinal);
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var (rawKey, line, value) in mapping.Entries)
        {
            string key = prefix.Length == 0 && Aliases.TryGetValue(rawKey, out string? canonical) ? canonical : rawKey;
            string fullKey = prefix + key;
            int dot = key.IndexOf('.', StringComparison.Ordinal);
            string head = dot < 0 ? key : key[..dot];
            if (!properties.TryGetValue(head, out var property))
            {
                throw new OptionsException(source, line, prefix + rawKey, UnknownKey(head, properties.Keys));
            }

            if (!seen.Add(key))
            {
                throw new OptionsException(source, line, prefix + rawKey, "given twice");
            }

            if (dot < 0 && value is Node.Scalar { Quoted: false, Value: null or "null" or "~" } && IsNested(property.PropertyType) && IsNullable(property))
            {
                // An optional block (lora) written out as null by ToJson: absent.
                property.SetValue(target, null);
                continue;
            }

            if (dot >= 0 || IsNested(property.PropertyType))
            {
                if (!IsNested(property.PropertyType))
                {
                    throw new OptionsException(source, line, prefix + head, $"is a {Describe(property.PropertyType)}, it has no '{key[(dot + 1)..]}'");
                }

                var nested = Clone(property.GetValue(target) ?? Activator.CreateInstance(property.PropertyType)!);
                var inner = dot >= 0
                    ? new Node.Mapping([new Entry(key[(dot + 1)..], line, value)], line)
                    : value as Node.Mapping ?? throw new OptionsException(source, value.Line > 0 ? value.Line : line, fullKey, "expected a mapping of its fields");
                Bind(nested, inner, source, prefix + head + ".");
                property.SetValue(target, nested);
                continue;
            }

            if (property.PropertyType == typeof(IReadOnlyList<string>))
            {
                property.SetValue(target, Strings(value, source, line, fullKey));
                continue;
            }

            if (value is not Node.Scalar scalar)
            {
                throw new OptionsException(source, value.Line > 0 ? value.Line : line, fullKey, $"expected a {Describe(property.PropertyType)}, got a {(value is Node.Mapping ? "mapping" : "list")}");
            }

            property.SetValue(target, Convert(scalar, property.PropertyType, source, line, fullKey));
        }
    }

    // A list of names: a sequence of strings, or one string with the names joined by '+' (the form --set takes).
    private static string[] Strings(Node value, string source, int line, string key)
    {
        var items = value switch
        {
            Node.Sequence sequence => sequence.Items,
            Node.Scalar { Value: not null } one => [.. one.Value.Split('+', StringSplitOptions.TrimEntries).Select(v => new Node.Scalar(v, true, one.Line))],
            _ => throw new OptionsException(source, value.Line > 0 ? value.Line : line, key, "expected a list of strings"),
        };
        return [.. items.Select(item => item is Node.Scalar { Value: { Length: > 0 } text }
            ? text
            : throw new OptionsException(source, item.Line > 0 ? item.Line : line, key, "expected a list of non-empty strings"))];
    }

    private static string UnknownKey(string key, IEnumerable<string> known)
    {
        var candidates = known.Concat(Aliases.Keys).ToList();
        string? near = candidates.OrderBy(k => Distance(k, key)).FirstOrDefault();
        return near is not null && Distance(near, key) <= Math.Max(2, key.Length / 4)
            ? $"unknown key; did you mean '{near}'?"
            : $"unknown key; known keys: {string.Join(", ", known)}";
    }

    private static int Distance(string a, string b)
    {
        var row = new int[b.Length + 1];
        for (int j = 0; j <= b.Length; j++)
        {
            row[j] = j;
        }

        for (int i = 1; i <= a.Length; i++)
        {
            int diagonal = row[0];
            row[0] = i;
            for (int j = 1; j <= b.Length; j++)
            {
                int above = row[j];
                row[j] = Math.Min(Math.Min(row[j] + 1, row[j - 1] + 1), diagonal + (a[i - 1] == b[j - 1] ? 0 : 1));
                diagonal = above;
            }
        }

        return row[b.Length];
    }

    private static string Describe(Type type)
    {
        type = Nullable.GetUnderlyingType(type) ?? type;
        if (type.IsEnum)
        {
            return $"one of {string.Join(", ", Enum.GetNames(type).Select(SnakeCase))}";
        }

        return Type.GetTypeCode(type) switch
        {
            TypeCode.Boolean => "boolean (true or false)",
            TypeCode.Int32 or TypeCode.Int64 => "integer",
            TypeCode.UInt64 or TypeCode.UInt32 => "non-negative integer",
            TypeCode.Single or TypeCode.Double => "number",
            TypeCode.String => "string",
            _ => IsNested(type) ? "mapping" : type.Name,
        };
    }

    private static object? Convert(Node.Scalar scalar, Type type, string source, int line, string key)
    {
        int at = scalar.Line > 0 ? scalar.Line : line;
        string? text = scalar.Value;
        var underlying = Nullable.GetUnderlyingType(type);
        if (text is null || (!scalar.Quoted && text is "null" or "~" && type != typeof(string)))
        {
            if (underlying is not null || !type.IsValueType)
            {
                return null;
            }

            throw new OptionsException(source, at, key, $"expected a {Describe(type)}, got null");
        }

        var target = underlying ?? type;
        OptionsException Bad() => new(source, at, key, $"expected a {Describe(target)}, got '{text}'");
        var inv = CultureInfo.InvariantCulture;
        if (target == typeof(string))
        {
            return text;
        }

        if (target.IsEnum)
        {
            string name = text.Replace("_", "", StringComparison.Ordinal).Replace("-", "", StringComparison.Ordinal);
            return !char.IsDigit(name.FirstOrDefault()) && Enum.TryParse(target, name, ignoreCase: true, out object? e) ? e : throw Bad();
        }

        return Type.GetTypeCode(target) switch
        {
            TypeCode.Boolean => text.ToLowerInvariant() switch
            {
                "true" => true,
                "false" => false,
                _ => throw Bad(),
            },
            TypeCode.Int32 => int.TryParse(text, NumberStyles.AllowLeadingSign, inv, out int i) ? i : throw Bad(),
            TypeCode.Int64 => long.TryParse(text, NumberStyles.AllowLeadingSign, inv, out long l) ? l : throw Bad(),
            TypeCode.UInt64 => ulong.TryParse(text, NumberStyles.None, inv, out ulong u) ? u : throw Bad(),
            TypeCode.Single => float.TryParse(text, NumberStyles.Float, inv, out float f) && float.IsFinite(f) ? f : throw Bad(),
            TypeCode.Double => double.TryParse(text, NumberStyles.Float, inv, out double d) && double.IsFinite(d) ? d : throw Bad(),
            _ => throw new OptionsException(source, at, key, $"options of type {target.Name} cannot be read from configuration"),
        };
    }

    private static Node.Mapping ParseJson(string text, string source)
    {
        byte[] bytes = Encoding.UTF8.GetBytes(text);
        var lineStarts = new List<int> { 0 };
        for (int i = 0; i < bytes.Length; i++)
        {
            if (bytes[i] == '\n')
            {
                lineStarts.Add(i + 1);
            }
        }

        int LineOf(long offset)
        {
            int index = lineStarts.BinarySearch((int)offset);
            return (index >= 0 ? index : ~index - 1) + 1;
        }

        var reader = new Utf8JsonReader(bytes, new JsonReaderOptions { CommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true, MaxDepth = MaxDepth });
        try
        {
            if (!reader.Read())
            {
                return new Node.Mapping([], 1);
            }

            var root = ReadJson(ref reader, LineOf);
            return root as Node.Mapping ?? throw new OptionsException(source, root.Line, null, "expected a JSON object of options");
        }
        catch (JsonException e)
        {
            throw new OptionsException(source, (int)(e.LineNumber ?? 0) + 1, null, $"not valid JSON: {e.Message.Split(" LineNumber:")[0]}", e);
        }
    }

    private static Node ReadJson(ref Utf8JsonReader reader, Func<long, int> lineOf)
    {
        int line = lineOf(reader.TokenStartIndex);
        switch (reader.TokenType)
        {
            case JsonTokenType.StartObject:
                var entries = new List<Entry>();
                while (reader.Read() && reader.TokenType != JsonTokenType.EndObject)
                {
                    string key = reader.GetString()!;
                    int keyLine = lineOf(reader.TokenStartIndex);
                    reader.Read();
                    entries.Add(new Entry(key, keyLine, ReadJson(ref reader, lineOf)));
                }

                return new Node.Mapping(entries, line);
            case JsonTokenType.StartArray:
                var items = new List<Node>();
                while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
                {
                    items.Add(ReadJson(ref reader, lineOf));
                }

                return new Node.Sequence(items, line);
            case JsonTokenType.String:
                return new Node.Scalar(reader.GetString(), Quoted: true, line);
            case JsonTokenType.Null:
                return new Node.Scalar(null, Quoted: false, line);
            default:
                return new Node.Scalar(Encoding.UTF8.GetString(reader.ValueSpan), Quoted: false, line);
        }
    }

    // YAML is read from the parser's events, not a YamlStream: anchors and aliases are refused (a self-referencing
    // alias never ends, a "billion laughs" file expands exponentially) and nesting stops at MaxDepth before the
    // tree is built, so memory stays linear in the file.
    private static Node.Mapping ParseYaml(string text, string source)
    {
        var parser = new Parser(new StringReader(text));
        Node? root;
        try
        {
            parser.Consume<StreamStart>();
            if (!parser.TryConsume<DocumentStart>(out _))
            {
                return new Node.Mapping([], 1);
            }

            root = ReadYaml(parser, source, key: null, depth: 1);
        }
        catch (YamlException e)
        {
            throw new OptionsException(source, (int)e.Start.Line, null, $"not valid YAML: {e.Message}", e);
        }

        return root switch
        {
            Node.Mapping m => m,
            Node.Scalar { Value: null or "" } => new Node.Mapping([], 1),
            _ => throw new OptionsException(source, root.Line, null, "expected a YAML mapping of options"),
        };
    }

    private static Node ReadYaml(IParser parser, string source, string? key, int depth)
    {
        var start = parser.Current ?? throw new YamlException("unexpected end of the YAML stream");
        int line = (int)start.Start.Line;
        if (start is AnchorAlias alias)
        {
            throw new OptionsException(source, line, key, $"aliases (*{alias.Value}) are not supported; write the value out");
        }

        if (start is NodeEvent { Anchor.IsEmpty: false } anchored)
        {
            throw new OptionsException(source, line, key, $"anchors (&{anchored.Anchor}) are not supported; write the value out");
        }

        if (start is MappingStart or SequenceStart && depth > MaxDepth)
        {
            throw new OptionsException(source, line, key, $"nested deeper than {MaxDepth} levels");
        }

        parser.MoveNext();
        switch (start)
        {
            case MappingStart:
                var entries = new List<Entry>();
                while (!parser.TryConsume<MappingEnd>(out _))
                {
                    var keyEvent = parser.Current;
                    int keyLine = keyEvent is null ? line : (int)keyEvent.Start.Line;
                    string name = ReadYaml(parser, source, key, depth + 1) is Node.Scalar k
                        ? k.Value ?? ""
                        : throw new OptionsException(source, keyLine, key, "a key must be a plain value, not a mapping or list");
                    entries.Add(new Entry(name, keyLine, ReadYaml(parser, source, key is null ? name : $"{key}.{name}", depth + 1)));
                }

                return new Node.Mapping(entries, line);
            case SequenceStart:
                var items = new List<Node>();
                while (!parser.TryConsume<SequenceEnd>(out _))
                {
                    items.Add(ReadYaml(parser, source, key, depth + 1));
                }

                return new Node.Sequence(items, line);
            case Scalar { Style: ScalarStyle.Plain, Value: "" or "~" or "null" }:
                return new Node.Scalar(null, Quoted: false, line);
            case Scalar scalar:
                return new Node.Scalar(scalar.Value, scalar.Style is ScalarStyle.SingleQuoted or ScalarStyle.DoubleQuoted, line);
            default:
                throw new YamlException(start.Start, start.End, $"unexpected {start.GetType().Name}");
        }
    }

    private readonly record struct Entry(string Key, int Line, Node Value);

    // The parsed configuration: JSON and YAML both become this tree, with the line of every key and value.
    private abstract record Node(int Line)
    {
        public sealed record Scalar(string? Value, bool Quoted, int Line) : Node(Line);

        public sealed record Mapping(List<Entry> Entries, int Line) : Node(Line);

        public sealed record Sequence(List<Node> Items, int Line) : Node(Line);
    }
}
