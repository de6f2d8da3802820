using System.Globalization;

namespace Engine.Models.Chat.Jinja;

/// <summary>Filters (<c>x | name</c>, <c>x | name(args)</c>) and tests (<c>x is name</c>), as <c>@huggingface/jinja</c> has them.</summary>
internal sealed partial class JinjaInterpreter
{
    private JinjaValue ApplyFilter(JinjaValue operand, Node filter, Scope scope) => filter switch
    {
        IdentifierNode id => ApplySimpleFilter(operand, id.Name, scope),
        CallNode { Callee: IdentifierNode id } call => ApplyCallFilter(operand, id.Name, call.Arguments, scope),
        _ => throw new JinjaError("unknown filter", filter.Position),
    };

    private static JinjaValue ApplySimpleFilter(JinjaValue operand, string name, Scope scope)
    {
        if (name == "safe")
        {
            return operand;
        }

        if (name == "tojson")
        {
            return new JinjaString(JinjaJson.Serialize(operand, new JinjaJson.Options()));
        }

        switch (operand)
        {
            case JinjaArray a:
                return name switch
                {
                    "list" => a,
                    "first" => a.Items.Count > 0 ? a.Items[0] : JinjaUndefined.Instance,
                    "last" => a.Items.Count > 0 ? a.Items[^1] : JinjaUndefined.Instance,
                    "length" => new JinjaNumber(a.Items.Count, true),
                    "reverse" => new JinjaArray(Enumerable.Reverse(a.Items).ToList()),
                    "sort" => new JinjaArray(Sorted(a.Items, x => x, caseSensitive: false, reverse: false)),
                    "join" => new JinjaString(string.Concat(a.Items.Select(JoinText))),
                    "string" => new JinjaString(JinjaJson.Serialize(a, new JinjaJson.Options(), undefinedAsNull: false)),
                    "unique" => new JinjaArray(Unique(a.Items)),
                    _ => throw new JinjaError($"unknown filter '{name}' for an array"),
                };
            case JinjaString s:
                return name switch
                {
                    "length" => new JinjaNumber(s.Value.Length, true),
                    "upper" or "lower" or "title" or "capitalize" => JinjaBuiltins.CallStringMethod(s, name, []),
                    "trim" => new JinjaString(JinjaBuiltins.Trim(s.Value)),
                    "indent" => new JinjaString(Indent(s.Value, "    ", first: false, blank: false)),
                    "join" or "string" => s,
                    "int" => ParseInt(s.Value) is double i ? new JinjaNumber(i, true) : new JinjaNumber(0, true),
                    "float" => new JinjaNumber(ParseFloat(s.Value) ?? 0, false),
                    _ => throw new JinjaError($"unknown filter '{name}' for a string"),
                };
            case JinjaNumber n:
                return name switch
                {
                    "abs" => new JinjaNumber(Math.Abs(n.Value), n.IsInteger),
                    "int" => new JinjaNumber(Math.Truncate(n.Value) + 0, true),
                    "float" => new JinjaNumber(n.Value, false),
                    "string" => new JinjaString(n.Render()),
                    _ => throw new JinjaError($"unknown filter '{name}' for a number"),
                };
            case JinjaObject o:
                return name switch
                {
                    "items" => JinjaBuiltins.Items(o),
                    "length" => new JinjaNumber(o.Entries.Count, true),
                    _ => JinjaBuiltins.ObjectMethod(o, name) is JinjaFunction f ? f.Invoke([], scope) : throw new JinjaError($"unknown filter '{name}' for an object"),
                };
            case JinjaBool b:
                return name switch
                {
                    "bool" => b,
                    "int" => new JinjaNumber(b.Value ? 1 : 0, true),
                    "float" => new JinjaNumber(b.Value ? 1 : 0, false),
                    "string" => new JinjaString(b.Value ? "true" : "false"),
                    _ => throw new JinjaError($"unknown filter '{name}' for a boolean"),
                };
            default:
                throw new JinjaError($"cannot apply filter '{name}' to {operand.TypeName}");
        }
    }

    private JinjaValue ApplyCallFilter(JinjaValue operand, string name, List<Node> argumentNodes, Scope scope)
    {
        switch (name)
        {
            case "tojson":
                return ToJson(operand, EvaluateArguments(argumentNodes, scope).Keywords);
            case "join":
            {
                var items = operand switch
                {
                    JinjaString s => SplitCodePoints(s.Value),
                    JinjaArray a => a.Items.Select(JoinText).ToList(),
                    _ => throw new JinjaError($"cannot apply filter 'join' to {operand.TypeName}"),
                };
                var (args, kwargs) = EvaluateArguments(argumentNodes, scope);
                var separator = args.FirstOrDefault() ?? kwargs.Get("separator") ?? JinjaString.Empty;
                return separator is JinjaString sep ? new JinjaString(string.Join(sep.Value, items)) : throw new JinjaError("join: the separator must be a string");
            }

            case "int" or "float":
            {
                var (args, kwargs) = EvaluateArguments(argumentNodes, scope);
                bool isInt = name == "int";
                var fallback = args.FirstOrDefault() ?? kwargs.Get("default") ?? new JinjaNumber(0, isInt);
                return operand switch
                {
                    JinjaString s => (isInt ? ParseInt(s.Value) : ParseFloat(s.Value)) is double v ? new JinjaNumber(v, isInt) : fallback,
                    JinjaNumber n => new JinjaNumber(isInt ? Math.Truncate(n.Value) + 0 : n.Value, isInt),
                    JinjaBool b => new JinjaNumber(b.Value ? 1 : 0, isInt),
                    _ => throw new JinjaError($"cannot apply filter '{name}' to {operand.TypeName}"),
                };
            }

            case "default":
            {
                var (args, kwargs) = EvaluateArguments(argumentNodes, scope);
                var fallback = args.Count > 0 ? args[0] : JinjaString.Empty;
                var boolean = args.Count > 1 ? args[1] : kwargs.Get("boolean") ?? JinjaBool.False;
                if (boolean is not JinjaBool flag)
                {
                    throw new JinjaError("default: the 'boolean' flag must be a boolean");
                }

                return operand is JinjaUndefined || (flag.Value && !operand.IsTruthy) ? fallback : operand;
            }
        }

        switch (operand)
        {
            case JinjaArray a:
                return name switch
                {
                    "sort" => SortFilter(a, EvaluateArguments(argumentNodes, scope)),
                    "selectattr" or "rejectattr" => SelectAttribute(a, name, argumentNodes, scope),
                    "map" => MapAttribute(a, EvaluateArguments(argumentNodes, scope).Keywords),
                    _ => throw new JinjaError($"unknown filter '{name}' for an array"),
                };
            case JinjaString s when name == "indent":
            {
                var (args, kwargs) = EvaluateArguments(argumentNodes, scope);
                var width = args.ElementAtOrDefault(0) ?? kwargs.Get("width") ?? new JinjaNumber(4, true);
                string pad = width switch
                {
                    JinjaString w => w.Value,
                    JinjaNumber { IsInteger: true } w => new string(' ', (int)Math.Clamp(w.Value, 0, 1024)),
                    _ => throw new JinjaError("indent: the width must be an integer or a string"),
                };
                bool first = (args.ElementAtOrDefault(1) ?? kwargs.Get("first") ?? JinjaBool.False).IsTruthy;
                bool blank = (args.ElementAtOrDefault(2) ?? kwargs.Get("blank") ?? JinjaBool.False).IsTruthy;
                return new JinjaString(Indent(s.Value, pad, first, blank));
            }

            case JinjaString s when name == "replace":
            {
                var (args, kwargs) = EvaluateArguments(argumentNodes, scope);
                return JinjaBuiltins.CallStringMethod(s, "replace", [.. args, kwargs]);
            }

            case JinjaObject o when JinjaBuiltins.ObjectMethod(o, name) is JinjaFunction f:
                return f.Invoke(EvaluateCallArguments(argumentNodes, scope), scope);
            default:
                throw new JinjaError($"cannot apply filter '{name}' to {operand.TypeName}");
        }
    }

    private static JinjaString ToJson(JinjaValue operand, JinjaObject kwargs)
    {
        var indent = kwargs.Get("indent") ?? JinjaNull.Instance;
        var ensureAscii = kwargs.Get("ensure_ascii") ?? JinjaBool.False;
        var sortKeys = kwargs.Get("sort_keys") ?? JinjaBool.False;
        var separators = kwargs.Get("separators") ?? JinjaNull.Instance;
        if (indent is not (JinjaNull or JinjaNumber { IsInteger: true }))
        {
            throw new JinjaError("tojson: indent must be an integer");
        }

        if (ensureAscii is not JinjaBool ascii || sortKeys is not JinjaBool sort)
        {
            throw new JinjaError("tojson: ensure_ascii and sort_keys must be booleans");
        }

        (string, string)? seps = separators switch
        {
            JinjaNull => null,
            JinjaArray { Items: [JinjaString item, JinjaString key] } => (item.Value, key.Value),
            _ => throw new JinjaError("tojson: separators must be a tuple of two strings"),
        };
        int? width = indent is JinjaNumber n ? (int)Math.Clamp(n.Value, -1, 1024) : null;
        return new JinjaString(JinjaJson.Serialize(operand, new JinjaJson.Options(width, ascii.Value, seps, sort.Value)));
    }

    private static JinjaArray SortFilter(JinjaArray a, (List<JinjaValue> Args, JinjaObject Kwargs) arguments)
    {
        var (args, kwargs) = arguments;
        var reverse = args.ElementAtOrDefault(0) ?? kwargs.Get("reverse") ?? JinjaBool.False;
        var caseSensitive = args.ElementAtOrDefault(1) ?? kwargs.Get("case_sensitive") ?? JinjaBool.False;
        var attribute = args.ElementAtOrDefault(2) ?? kwargs.Get("attribute") ?? JinjaNull.Instance;
        if (reverse is not JinjaBool r || caseSensitive is not JinjaBool c)
        {
            throw new JinjaError("sort: reverse and case_sensitive must be booleans");
        }

        string? path = attribute switch
        {
            JinjaNull => null,
            JinjaString s => s.Value,
            JinjaNumber { IsInteger: true } i => JinjaNumber.JsNumber(i.Value),
            _ => throw new JinjaError("sort: attribute must be a string, an integer or none"),
        };
        return new JinjaArray(Sorted(a.Items, x => path is null ? x : AttributePath(x, path), c.Value, r.Value));
    }

    private static List<JinjaValue> Sorted(List<JinjaValue> items, Func<JinjaValue, JinjaValue> key, bool caseSensitive, bool reverse)
    {
        var keyed = items.Select((item, index) => (item, index, key: key(item))).ToList();
        keyed.Sort((x, y) =>
        {
            int c = JinjaBuiltins.Compare(x.key, y.key, caseSensitive);
            c = reverse ? -c : c;
            return c != 0 ? c : x.index.CompareTo(y.index);
        });
        return keyed.Select(k => k.item).ToList();
    }

    /// <summary><c>getAttributeValue</c>: a dotted path through objects and array indices.</summary>
    private static JinjaValue AttributePath(JinjaValue item, string path)
    {
        var value = item;
        foreach (string part in path.Split('.'))
        {
            value = value switch
            {
                JinjaObject o => o.Get(part) ?? JinjaUndefined.Instance,
                JinjaNamespace ns => ns.Entries.TryGetValue(part, out var v) ? v : JinjaUndefined.Instance,
                JinjaArray a when int.TryParse(part, NumberStyles.Integer, CultureInfo.InvariantCulture, out int i) && i >= 0 && i < a.Items.Count => a.Items[i],
                _ => JinjaUndefined.Instance,
            };
            if (value is JinjaUndefined)
            {
                break;
            }
        }

        return value;
    }

    private JinjaArray SelectAttribute(JinjaArray a, string name, List<Node> argumentNodes, Scope scope)
    {
        if (a.Items.Any(i => i is not (JinjaObject or JinjaNamespace)))
        {
            throw new JinjaError($"{name} can only be applied to an array of objects");
        }

        if (argumentNodes.Any(n => n is not LiteralNode { Value: JinjaString }))
        {
            throw new JinjaError($"the arguments of {name} must be strings");
        }

        var args = argumentNodes.Select(n => ((JinjaString)((LiteralNode)n).Value).Value).ToList();
        if (args.Count == 0)
        {
            throw new JinjaError($"{name} needs the name of an attribute");
        }

        JinjaValue? against = args.Count > 2 ? new JinjaString(args[2]) : null;
        bool select = name == "selectattr";
        return new JinjaArray(a.Items.Where(item =>
        {
            var value = item is JinjaObject o ? o.Get(args[0]) : ((JinjaNamespace)item).Entries.GetValueOrDefault(args[0]);
            bool result = value is not null && (args.Count > 1 ? RunTest(args[1], value, against) : value.IsTruthy);
            return select ? result : !result;
        }).ToList());
    }

    private static JinjaArray MapAttribute(JinjaArray a, JinjaObject kwargs)
    {
        if (kwargs.Get("attribute") is not { } attribute)
        {
            throw new JinjaError("map is supported with attribute= only");
        }

        if (attribute is not JinjaString path)
        {
            throw new JinjaError("map: attribute must be a string");
        }

        var fallback = kwargs.Get("default");
        return new JinjaArray(a.Items.Select(item =>
        {
            if (item is not (JinjaObject or JinjaNamespace))
            {
                throw new JinjaError("map: the items must be objects");
            }

            var value = AttributePath(item, path.Value);
            return value is JinjaUndefined ? fallback ?? JinjaUndefined.Instance : value;
        }).ToList());
    }

    private static bool RunTest(string name, JinjaValue operand, JinjaValue? against) => name switch
    {
        "boolean" => operand is JinjaBool,
        "callable" => operand is JinjaFunction,
        "odd" => operand is JinjaNumber { IsInteger: true } n ? n.Value % 2 != 0 : throw new JinjaError($"cannot odd on {operand.TypeName}"),
        "even" => operand is JinjaNumber { IsInteger: true } n ? n.Value % 2 == 0 : throw new JinjaError($"cannot even on {operand.TypeName}"),
        "false" => operand is JinjaBool { Value: false },
        "true" => operand is JinjaBool { Value: true },
        "none" => operand is JinjaNull,
        "string" => operand is JinjaString,
        "number" => operand is JinjaNumber,
        "integer" => operand is JinjaNumber { IsInteger: true },
        "iterable" => operand is JinjaArray { IsTuple: false } or JinjaString,
        "mapping" => operand is JinjaObject,
        "sequence" => operand is JinjaArray or JinjaObject or JinjaString,
        "lower" => operand is JinjaString s && string.Equals(s.Value, s.Value.ToLowerInvariant(), StringComparison.Ordinal),
        "upper" => operand is JinjaString s && string.Equals(s.Value, s.Value.ToUpperInvariant(), StringComparison.Ordinal),
        "defined" => operand is not JinjaUndefined,
        "undefined" => operand is JinjaUndefined,
        "equalto" or "eq" => against is not null && StrictEquals(operand, against),
        _ => throw new JinjaError($"unknown test '{name}'"),
    };

    private static string JoinText(JinjaValue v) => v is JinjaUndefined or JinjaNull ? "" : RawString(v);

    private static List<string> SplitCodePoints(string s)
    {
        var points = new List<string>();
        for (int i = 0; i < s.Length; i++)
        {
            bool pair = char.IsHighSurrogate(s[i]) && i + 1 < s.Length && char.IsLowSurrogate(s[i + 1]);
            points.Add(s.Substring(i, pair ? 2 : 1));
            i += pair ? 1 : 0;
        }

        return points;
    }

    private static List<JinjaValue> Unique(List<JinjaValue> items)
    {
        var output = new List<JinjaValue>();
        foreach (var item in items)
        {
            if (!output.Any(seen => StrictEquals(seen, item)))
            {
                output.Add(item);
            }
        }

        return output;
    }

    private static string Indent(string text, string pad, bool first, bool blank) =>
        string.Join("\n", text.Split('\n').Select((line, i) => (!first && i == 0) || (!blank && line.Length == 0) ? line : pad + line));

    // JavaScript's parseInt(s, 10): optional sign and leading digits after whitespace; null for NaN.
    private static double? ParseInt(string s)
    {
        string t = JinjaBuiltins.Trim(s);
        int i = 0;
        if (i < t.Length && t[i] is '+' or '-')
        {
            i++;
        }

        int start = i;
        while (i < t.Length && char.IsAsciiDigit(t[i]))
        {
            i++;
        }

        return i == start ? null : double.Parse(t[..i], CultureInfo.InvariantCulture) + 0;
    }

    // JavaScript's parseFloat: the longest leading decimal literal (or Infinity); null for NaN.
    private static double? ParseFloat(string s)
    {
        string t = JinjaBuiltins.Trim(s);
        int i = 0;
        if (i < t.Length && t[i] is '+' or '-')
        {
            i++;
        }

        if (string.CompareOrdinal(t, i, "Infinity", 0, 8) == 0)
        {
            return t[0] == '-' ? double.NegativeInfinity : double.PositiveInfinity;
        }

        int digits = 0;
        for (; i < t.Length && char.IsAsciiDigit(t[i]); i++, digits++)
        {
        }

        if (i < t.Length && t[i] == '.')
        {
            for (i++; i < t.Length && char.IsAsciiDigit(t[i]); i++, digits++)
            {
            }
        }

        if (digits == 0)
        {
            return null;
        }

        int end = i;
        if (i < t.Length && t[i] is 'e' or 'E')
        {
            int j = i + 1;
            if (j < t.Length && t[j] is '+' or '-')
            {
                j++;
            }

            int k = j;
            while (k < t.Length && char.IsAsciiDigit(t[k]))
            {
                k++;
            }

            end = k > j ? k : end;
        }

        string literal = t[..end];
        return double.Parse(literal.EndsWith('.') ? literal + "0" : literal, NumberStyles.Float, CultureInfo.InvariantCulture);
    }
}
