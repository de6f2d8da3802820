using System.Collections;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Engine.Models.Chat.Jinja;

/// <summary>
/// A run-time value of the interpreter, with <c>@huggingface/jinja</c>'s types: undefined, none, booleans, numbers
/// (integer or float, both doubles as in JavaScript), strings, arrays (and tuples), objects (ordered), namespaces and
/// functions.
/// </summary>
internal abstract class JinjaValue
{
    public abstract string TypeName { get; }

    /// <summary>Python truthiness: empty strings, arrays and objects are false.</summary>
    public virtual bool IsTruthy => true;

    /// <summary>The text <c>{{ value }}</c> prints (JavaScript's <c>toString</c> of the value).</summary>
    public abstract string Render();

    /// <summary>A value from plain .NET data: strings, booleans, numbers, null, lists, dictionaries, JSON.</summary>
    public static JinjaValue From(object? value) => value switch
    {
        null => JinjaNull.Instance,
        JinjaValue v => v,
        string s => new JinjaString(s),
        bool b => JinjaBool.Of(b),
        int i => new JinjaNumber(i, true),
        long l => new JinjaNumber(l, true),
        float f => JinjaNumber.FromDouble(f),
        double d => JinjaNumber.FromDouble(d),
        JsonElement e => FromJson(e),
        JsonNode n => FromJson(JsonSerializer.SerializeToElement(n)),
        IDictionary<string, object?> d => new JinjaObject(d.Select(kv => (kv.Key, From(kv.Value)))),
        IDictionary<string, string> d => new JinjaObject(d.Select(kv => (kv.Key, From(kv.Value)))),
        ChatMessage m => FromMessage(m),
        IEnumerable e => new JinjaArray(e.Cast<object?>().Select(From).ToList()),
        _ => throw new ArgumentException($"a {value.GetType().Name} cannot be a template variable", nameof(value)),
    };

    /// <summary>
    /// A message as the object a chat template walks: <c>role</c>, <c>content</c>, and only where the message has them
    /// <c>tool_calls</c> (each <c>{id?, type, function: {name, arguments}}</c>), <c>name</c> and <c>tool_call_id</c>, since
    /// templates test for the keys themselves (<c>'tool_calls' in message</c>).
    /// </summary>
    private static JinjaObject FromMessage(ChatMessage m)
    {
        var entries = new List<(string, JinjaValue)> { ("role", new JinjaString(m.Role)), ("content", new JinjaString(m.Content)) };
        if (m.ToolCalls is { } calls)
        {
            entries.Add(("tool_calls", new JinjaArray(calls.Select(c => (JinjaValue)new JinjaObject(ToolCall(c))).ToList())));
        }

        if (m.Name is { } name)
        {
            entries.Add(("name", new JinjaString(name)));
        }

        if (m.ToolCallId is { } id)
        {
            entries.Add(("tool_call_id", new JinjaString(id)));
        }

        return new JinjaObject(entries);
    }

    private static IEnumerable<(string, JinjaValue)> ToolCall(ChatToolCall call)
    {
        if (call.Id is { } id)
        {
            yield return ("id", new JinjaString(id));
        }

        yield return ("type", new JinjaString("function"));
        yield return ("function", new JinjaObject([("name", new JinjaString(call.Name)), ("arguments", FromJson(call.Arguments))]));
    }

    /// <summary>A value from JSON: numbers without a fraction are integers (as in JavaScript's <c>Number.isInteger</c>).</summary>
    public static JinjaValue FromJson(JsonElement e) => e.ValueKind switch
    {
        JsonValueKind.String => new JinjaString(e.GetString()!),
        JsonValueKind.Number => JinjaNumber.FromDouble(e.GetDouble()),
        JsonValueKind.True => JinjaBool.True,
        JsonValueKind.False => JinjaBool.False,
        JsonValueKind.Array => new JinjaArray(e.EnumerateArray().Select(FromJson).ToList()),
        JsonValueKind.Object => new JinjaObject(e.EnumerateObject().Select(p => (p.Name, FromJson(p.Value)))),
        _ => JinjaNull.Instance,
    };
}

internal sealed class JinjaUndefined : JinjaValue
{
    public static readonly JinjaUndefined Instance = new();

    public override string TypeName => "UndefinedValue";

    public override bool IsTruthy => false;

    public override string Render() => "";
}

internal sealed class JinjaNull : JinjaValue
{
    public static readonly JinjaNull Instance = new();

    public override string TypeName => "NullValue";

    public override bool IsTruthy => false;

    public override string Render() => "null";
}

internal sealed class JinjaBool : JinjaValue
{
    public static readonly JinjaBool True = new(true);
    public static readonly JinjaBool False = new(false);

    private JinjaBool(bool value) => Value = value;

    public bool Value { get; }

    public override string TypeName => "BooleanValue";

    public override bool IsTruthy => Value;

    public static JinjaBool Of(bool value) => value ? True : False;

    public override string Render() => Value ? "true" : "false";
}

internal sealed class JinjaNumber(double value, bool isInteger) : JinjaValue
{
    public double Value { get; } = value;

    public bool IsInteger { get; } = isInteger;

    public override string TypeName => IsInteger ? "IntegerValue" : "FloatValue";

    public override bool IsTruthy => Value != 0 && !double.IsNaN(Value);

    public static JinjaNumber FromDouble(double d) => new(d, double.IsFinite(d) && Math.Floor(d) == d);

    public static JinjaNumber Parse(string literal) => new(double.Parse(literal, CultureInfo.InvariantCulture), !literal.Contains('.', StringComparison.Ordinal));

    public override string Render()
    {
        if (IsInteger)
        {
            return JsNumber(Value);
        }

        if (Value == 0 && double.IsNegative(Value))
        {
            return "-0.0";
        }

        // JavaScript: value % 1 === 0 ? value.toFixed(1) : value.toString()
        return double.IsFinite(Value) && Math.Floor(Value) == Value && Math.Abs(Value) < 1e21 ? JsNumber(Value) + ".0" : JsNumber(Value);
    }

    /// <summary>JavaScript's <c>Number.prototype.toString()</c>: the shortest round-trip digits, exponent past 1e21 or under 1e-6.</summary>
    public static string JsNumber(double d)
    {
        if (double.IsNaN(d))
        {
            return "NaN";
        }

        if (double.IsInfinity(d))
        {
            return d > 0 ? "Infinity" : "-Infinity";
        }

        if (d == 0)
        {
            return "0";
        }

        string shortest = d.ToString("R", CultureInfo.InvariantCulture);
        bool negative = d < 0;
        string body = negative ? shortest[1..] : shortest;
        int e = body.IndexOfAny(['E', 'e']);
        string mantissa = e < 0 ? body : body[..e];
        int shift = e < 0 ? 0 : int.Parse(body[(e + 1)..], CultureInfo.InvariantCulture);
        int dot = mantissa.IndexOf('.', StringComparison.Ordinal);
        string digits = dot < 0 ? mantissa : mantissa.Remove(dot, 1);
        int exponent = (dot < 0 ? mantissa.Length : dot) + shift;
        int lead = 0;
        while (lead < digits.Length - 1 && digits[lead] == '0')
        {
            lead++;
        }

        exponent -= lead;
        digits = digits[lead..].TrimEnd('0');
        if (digits.Length == 0)
        {
            return "0";
        }

        // digits d1d2... with the decimal point after `exponent` digits (JS's n).
        string text;
        if (exponent >= digits.Length && exponent <= 21)
        {
            text = digits + new string('0', exponent - digits.Length);
        }
        else if (exponent > 0 && exponent <= 21)
        {
            text = digits[..exponent] + "." + digits[exponent..];
        }
        else if (exponent <= 0 && exponent > -6)
        {
            text = "0." + new string('0', -exponent) + digits;
        }
        else
        {
            int k = exponent - 1;
            text = (digits.Length == 1 ? digits : digits[..1] + "." + digits[1..]) + "e" + (k >= 0 ? "+" : "-") + Math.Abs(k).ToString(CultureInfo.InvariantCulture);
        }

        return negative ? "-" + text : text;
    }
}

internal sealed class JinjaString(string value) : JinjaValue
{
    public static readonly JinjaString Empty = new("");

    public string Value { get; } = value;

    public override string TypeName => "StringValue";

    public override bool IsTruthy => Value.Length > 0;

    public override string Render() => Value;
}

internal sealed class JinjaArray(List<JinjaValue> items, bool isTuple = false) : JinjaValue
{
    public List<JinjaValue> Items { get; } = items;

    public bool IsTuple { get; } = isTuple;

    public override string TypeName => IsTuple ? "TupleValue" : "ArrayValue";

    public override bool IsTruthy => Items.Count > 0;

    public override string Render() => JinjaJson.Serialize(this, new JinjaJson.Options(), undefinedAsNull: false);
}

/// <summary>A mapping with insertion order (a JavaScript Map); keyword arguments travel as one, flagged.</summary>
internal class JinjaObject : JinjaValue
{
    public JinjaObject(IEnumerable<(string Key, JinjaValue Value)> entries, bool isKeywordArguments = false)
    {
        Entries = [];
        foreach (var (key, value) in entries)
        {
            Entries[key] = value;
        }

        IsKeywordArguments = isKeywordArguments;
    }

    public OrderedDictionary<string, JinjaValue> Entries { get; }

    public bool IsKeywordArguments { get; }

    public override string TypeName => IsKeywordArguments ? "KeywordArgumentsValue" : "ObjectValue";

    public override bool IsTruthy => Entries.Count > 0;

    public JinjaValue? Get(string key) => Entries.TryGetValue(key, out var v) ? v : null;

    public override string Render() => JinjaJson.Serialize(this, new JinjaJson.Options(), undefinedAsNull: false);
}

/// <summary>The result of <c>namespace()</c>: attributes that <c>set ns.x = …</c> can change; not a mapping.</summary>
internal sealed class JinjaNamespace(OrderedDictionary<string, JinjaValue> entries) : JinjaValue
{
    public OrderedDictionary<string, JinjaValue> Entries { get; } = entries;

    public override string TypeName => "NamespaceValue";

    public override string Render() => JinjaJson.Serialize(this, new JinjaJson.Options(), undefinedAsNull: false);
}

/// <summary>A callable: a macro, a built-in function or a method bound to its value.</summary>
internal sealed class JinjaFunction(Func<List<JinjaValue>, Scope, JinjaValue> invoke) : JinjaValue
{
    public Func<List<JinjaValue>, Scope, JinjaValue> Invoke { get; } = invoke;

    public override string TypeName => "FunctionValue";

    public override string Render() => "[object Function]";
}
