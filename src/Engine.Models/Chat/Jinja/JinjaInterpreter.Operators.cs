namespace Engine.Models.Chat.Jinja;

/// <summary>Operators, member access, slicing and macros.</summary>
internal sealed partial class JinjaInterpreter
{
    private JinjaValue EvaluateBinary(BinaryNode node, Scope scope)
    {
        string op = node.Operator;
        var left = Evaluate(node.Left, scope);
        if (op == "and")
        {
            return left.IsTruthy ? Evaluate(node.Right, scope) : left;
        }

        if (op == "or")
        {
            return left.IsTruthy ? left : Evaluate(node.Right, scope);
        }

        var right = Evaluate(node.Right, scope);
        switch (op)
        {
            case "==":
                return JinjaBool.Of(LooseEquals(left, right));
            case "!=":
                return JinjaBool.Of(!LooseEquals(left, right));
        }

        if (left is JinjaNumber a && right is JinjaNumber b && op is not ("~" or "**"))
        {
            bool isFloat = !a.IsInteger || !b.IsInteger;
            switch (op)
            {
                case "+":
                    return Number(a.Value + b.Value, isFloat);
                case "-":
                    return Number(a.Value - b.Value, isFloat);
                case "*":
                    return Number(a.Value * b.Value, isFloat);
                case "/":
                    return new JinjaNumber(a.Value / b.Value, false);
                case "//":
                    return Number(Math.Floor(a.Value / b.Value), isFloat);
                case "%":
                    return Number(a.Value % b.Value, isFloat);
                case "<":
                    return JinjaBool.Of(a.Value < b.Value);
                case ">":
                    return JinjaBool.Of(a.Value > b.Value);
                case ">=":
                    return JinjaBool.Of(a.Value >= b.Value);
                case "<=":
                    return JinjaBool.Of(a.Value <= b.Value);
            }
        }
        else if (left is JinjaUndefined || right is JinjaUndefined)
        {
            if (right is JinjaUndefined && op is "in" or "not in")
            {
                return JinjaBool.Of(op == "not in");
            }

            if (op == "~" && left is not JinjaNull && right is not JinjaNull)
            {
                return Concatenate(left is JinjaUndefined ? "" : RawString(left), right is JinjaUndefined ? "" : RawString(right));
            }

            throw new JinjaError($"cannot perform operation {op} on undefined values");
        }
        else if (left is JinjaNull || right is JinjaNull)
        {
            throw new JinjaError($"cannot perform operation {op} on null values");
        }
        else if (op == "~")
        {
            return Concatenate(RawString(left), RawString(right));
        }
        else if (op == "**" && NumericLike(left) is double x && NumericLike(right) is double y)
        {
            if (x == 0 && y < 0)
            {
                throw new JinjaError("0.0 cannot be raised to a negative power");
            }

            double result = Math.Pow(x, y);
            if (!double.IsFinite(result))
            {
                throw new JinjaError("exponentiation result is not a finite real number");
            }

            return Number(result, left is JinjaNumber { IsInteger: false } || right is JinjaNumber { IsInteger: false } || y < 0);
        }
        else if (left is JinjaArray la && right is JinjaArray ra)
        {
            if (op == "+")
            {
                if ((long)la.Items.Count + ra.Items.Count > limits.MaxOutputChars)
                {
                    throw new JinjaError($"a list would exceed {limits.MaxOutputChars:N0} items (the template's output limit)");
                }

                return new JinjaArray([.. la.Items, .. ra.Items]);
            }
        }
        else if (right is JinjaArray list && op is "in" or "not in")
        {
            bool member = list.Items.Any(item => StrictEquals(item, left));
            return JinjaBool.Of(op == "in" ? member : !member);
        }

        if ((left is JinjaString || right is JinjaString) && op == "+")
        {
            return Concatenate(RawString(left), RawString(right));
        }

        if (left is JinjaString ls && right is JinjaString rs && op is "in" or "not in")
        {
            bool contains = rs.Value.Contains(ls.Value, StringComparison.Ordinal);
            return JinjaBool.Of(op == "in" ? contains : !contains);
        }

        if (left is JinjaString key && right is JinjaObject obj && op is "in" or "not in")
        {
            bool has = obj.Entries.ContainsKey(key.Value);
            return JinjaBool.Of(op == "in" ? has : !has);
        }

        throw new JinjaError($"unknown operator \"{op}\" between {left.TypeName} and {right.TypeName}");
    }

    private static JinjaNumber Number(double value, bool isFloat) => new(value, !isFloat);

    private static double? NumericLike(JinjaValue v) => v switch
    {
        JinjaNumber n => n.Value,
        JinjaBool b => b.Value ? 1 : 0,
        _ => null,
    };

    private JinjaString Concatenate(string a, string b)
    {
        if ((long)a.Length + b.Length > limits.MaxOutputChars)
        {
            throw new JinjaError($"a string would exceed {limits.MaxOutputChars:N0} characters (the template's output limit)");
        }

        return new JinjaString(a + b);
    }

    /// <summary>JavaScript's <c>String(value.value)</c>, which <c>~</c> and <c>+</c> use (floats print without ".0").</summary>
    internal static string RawString(JinjaValue v) => v switch
    {
        JinjaString s => s.Value,
        JinjaNumber n => JinjaNumber.JsNumber(n.Value),
        JinjaBool b => b.Value ? "true" : "false",
        JinjaArray a => string.Join(",", a.Items.Select(i => i.Render())),
        JinjaObject or JinjaNamespace => "[object Map]",
        JinjaUndefined => "undefined",
        JinjaNull => "null",
        _ => v.Render(),
    };

    /// <summary>JavaScript's <c>a.value == b.value</c>: numbers, booleans and numeric strings compare as numbers, null equals undefined, containers by identity.</summary>
    internal static bool LooseEquals(JinjaValue a, JinjaValue b)
    {
        if (a is JinjaNull or JinjaUndefined || b is JinjaNull or JinjaUndefined)
        {
            return a is JinjaNull or JinjaUndefined && b is JinjaNull or JinjaUndefined;
        }

        if (a is JinjaString sa && b is JinjaString sb)
        {
            return string.Equals(sa.Value, sb.Value, StringComparison.Ordinal);
        }

        if (a is JinjaArray or JinjaObject or JinjaNamespace or JinjaFunction || b is JinjaArray or JinjaObject or JinjaNamespace or JinjaFunction)
        {
            return ReferenceEquals(Identity(a), Identity(b));
        }

        return ToJsNumber(a) == ToJsNumber(b);
    }

    /// <summary>JavaScript's <c>a.value === b.value</c>.</summary>
    internal static bool StrictEquals(JinjaValue a, JinjaValue b) => (a, b) switch
    {
        (JinjaString x, JinjaString y) => string.Equals(x.Value, y.Value, StringComparison.Ordinal),
        (JinjaNumber x, JinjaNumber y) => x.Value == y.Value,
        (JinjaBool x, JinjaBool y) => x.Value == y.Value,
        (JinjaNull, JinjaNull) or (JinjaUndefined, JinjaUndefined) => true,
        _ => ReferenceEquals(Identity(a), Identity(b)) && Identity(a) is not null,
    };

    private static object? Identity(JinjaValue v) => v switch
    {
        JinjaArray a => a.Items,
        JinjaObject o => o.Entries,
        JinjaNamespace n => n.Entries,
        JinjaFunction f => f,
        _ => null,
    };

    private static double ToJsNumber(JinjaValue v) => v switch
    {
        JinjaNumber n => n.Value,
        JinjaBool b => b.Value ? 1 : 0,
        JinjaString s => s.Value.Trim().Length == 0 ? 0
            : double.TryParse(s.Value.Trim(), System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out double d) ? d : double.NaN,
        _ => double.NaN,
    };

    private JinjaValue EvaluateMember(MemberNode node, Scope scope)
    {
        var target = Evaluate(node.Target, scope);
        JinjaValue property;
        if (node.Computed)
        {
            if (node.Property is SliceNode slice)
            {
                return Slice(target, slice, scope);
            }

            property = Evaluate(node.Property, scope);
        }
        else
        {
            property = node.Property is IdentifierNode id ? new JinjaString(id.Name) : ((LiteralNode)node.Property).Value;
        }

        switch (target)
        {
            case JinjaObject o:
                return property is JinjaString key
                    ? o.Get(key.Value) ?? JinjaBuiltins.ObjectMethod(o, key.Value) ?? JinjaUndefined.Instance
                    : throw new JinjaError($"cannot access a property with a non-string: got {property.TypeName}");
            case JinjaNamespace ns:
                return property is JinjaString name
                    ? ns.Entries.TryGetValue(name.Value, out var value) ? value : JinjaUndefined.Instance
                    : throw new JinjaError($"cannot access a property with a non-string: got {property.TypeName}");
            case JinjaArray or JinjaString:
                if (property is JinjaNumber index)
                {
                    int count = target is JinjaArray arr ? arr.Items.Count : ((JinjaString)target).Value.Length;
                    long i = (long)Math.Truncate(index.Value);
                    i = i < 0 ? i + count : i;
                    if (i < 0 || i >= count)
                    {
                        return JinjaUndefined.Instance;
                    }

                    return target is JinjaArray items ? items.Items[(int)i] : new JinjaString(((JinjaString)target).Value[(int)i].ToString());
                }

                return property is JinjaString member
                    ? (target is JinjaString s ? JinjaBuiltins.StringMethod(s, member.Value) : JinjaBuiltins.ArrayMember((JinjaArray)target, member.Value)) ?? JinjaUndefined.Instance
                    : throw new JinjaError($"cannot access a property with a non-string/non-number: got {property.TypeName}");
            default:
                return property is JinjaString ? JinjaUndefined.Instance : throw new JinjaError($"cannot access a property with a non-string: got {property.TypeName}");
        }
    }

    private JinjaValue Slice(JinjaValue target, SliceNode node, Scope scope)
    {
        if (target is not (JinjaArray or JinjaString))
        {
            throw new JinjaError("only arrays and strings can be sliced");
        }

        int? Part(Node? n, string name)
        {
            var v = n is null ? JinjaUndefined.Instance : Evaluate(n, scope);
            return v switch
            {
                JinjaUndefined => null,
                JinjaNumber { IsInteger: true } i => (int)Math.Clamp(i.Value, int.MinValue, int.MaxValue),
                _ => throw new JinjaError($"slice {name} must be an integer or left out"),
            };
        }

        int? start = Part(node.Start, "start"), stop = Part(node.Stop, "stop"), step = Part(node.Step, "step");
        if (target is JinjaArray array)
        {
            return new JinjaArray(SliceIndices(array.Items.Count, start, stop, step ?? 1).Select(i => array.Items[i]).ToList());
        }

        // Array.from(string): by code point.
        var points = SplitCodePoints(((JinjaString)target).Value);

        return new JinjaString(string.Concat(SliceIndices(points.Count, start, stop, step ?? 1).Select(i => points[i])));
    }

    /// <summary>Python's slice of a sequence of <paramref name="length"/> items, as <c>@huggingface/jinja</c>'s <c>slice</c>.</summary>
    private static IEnumerable<int> SliceIndices(int length, int? start, int? stop, int step)
    {
        if (step == 0)
        {
            throw new JinjaError("slice step cannot be zero");
        }

        long s, e;
        if (step > 0)
        {
            s = start is int a ? (a < 0 ? Math.Max(length + (long)a, 0) : Math.Min(a, length)) : 0;
            e = stop is int b ? (b < 0 ? Math.Max(length + (long)b, 0) : Math.Min(b, length)) : length;
            for (long i = s; i < e; i += step)
            {
                yield return (int)i;
            }
        }
        else
        {
            s = start is int a ? (a < 0 ? Math.Max(length + (long)a, -1) : Math.Min(a, length - 1)) : length - 1;
            e = stop is int b ? (b < -1 ? Math.Max(length + (long)b, -1) : Math.Min(b, length - 1)) : -1;
            for (long i = s; i > e; i += step)
            {
                yield return (int)i;
            }
        }
    }

    private void DefineMacro(MacroNode node, Scope defining)
    {
        var special = SpecialArguments(node.Body);
        defining.Set(node.Name, new JinjaFunction((args, callSite) =>
        {
            var parent = defining;
            if (special.Contains("caller"))
            {
                parent = new Scope(defining);
                parent.Set("caller", callSite.IsCallBlock && callSite.TryGetOwn("caller", out var caller) ? caller : JinjaUndefined.Instance);
            }

            var scope = new Scope(parent);
            BindMacroArguments($"'{node.Name}'", node.Parameters, special, args, scope);
            return RenderCaptured(node.Body, scope);
        }));
    }

    private JinjaValue EvaluateCallBlock(CallBlockNode node, Scope scope)
    {
        var parameters = node.CallerParameters ?? [];
        var special = SpecialArguments(node.Body);
        var caller = new JinjaFunction((args, _) =>
        {
            var body = new Scope(scope);
            BindMacroArguments("None", parameters, special, args, body);
            return RenderCaptured(node.Body, body);
        });
        var (positional, keywords) = EvaluateArguments(node.Call.Arguments, scope);
        positional.Add(keywords);
        var fn = Evaluate(node.Call.Callee, scope);
        if (fn is not JinjaFunction f)
        {
            throw new JinjaError($"cannot call something that is not a function: got {fn.TypeName}", node.Call.Position);
        }

        var site = new Scope(scope) { IsCallBlock = true };
        site.Set("caller", caller);
        return f.Invoke(positional, site);
    }

    private JinjaString RenderCaptured(List<Node> body, Scope scope)
    {
        if (++depth > limits.MaxDepth)
        {
            depth--;
            throw new JinjaError($"macros call each other deeper than {limits.MaxDepth} levels (the template's recursion limit)");
        }

        try
        {
            var output = new System.Text.StringBuilder();
            RenderBlock(body, scope, output);
            return new JinjaString(output.ToString());
        }
        finally
        {
            depth--;
        }
    }

    private void BindMacroArguments(string name, List<Node> parameters, HashSet<string> special, List<JinjaValue> args, Scope scope)
    {
        var positional = new List<JinjaValue>(args);
        var keywords = new OrderedDictionary<string, JinjaValue>();
        if (positional.Count > 0 && positional[^1] is JinjaObject { IsKeywordArguments: true } kw)
        {
            positional.RemoveAt(positional.Count - 1);
            foreach (var (k, v) in kw.Entries)
            {
                keywords[k] = v;
            }
        }

        var pending = new List<(string, Node)>();
        for (int i = 0; i < parameters.Count; i++)
        {
            var (parameter, fallback) = parameters[i] switch
            {
                IdentifierNode id => (id.Name, (Node?)null),
                KeywordArgumentNode k => (k.Key, k.Value),
                _ => throw new JinjaError("invalid macro parameter", parameters[i].Position),
            };
            JinjaValue? value = i < positional.Count ? positional[i] : null;
            if (value is null && keywords.Remove(parameter, out var given))
            {
                value = given;
            }

            if (value is null && fallback is not null)
            {
                pending.Add((parameter, fallback));
            }

            scope.Set(parameter, value ?? JinjaUndefined.Instance);
        }

        if (special.Contains("kwargs"))
        {
            scope.Set("kwargs", new JinjaObject(keywords.Select(kv => (kv.Key, kv.Value))));
        }
        else if (keywords.Count > 0)
        {
            throw new JinjaError($"macro {name} takes no keyword argument '{keywords.GetAt(0).Key}'");
        }

        if (special.Contains("varargs"))
        {
            scope.Set("varargs", new JinjaArray(positional.Skip(parameters.Count).ToList()));
        }
        else if (positional.Count > parameters.Count)
        {
            throw new JinjaError($"macro {name} takes not more than {parameters.Count} argument(s)");
        }

        foreach (var (parameter, fallback) in pending)
        {
            scope.Set(parameter, Evaluate(fallback, scope));
        }
    }

    // The special names a macro body reads (Jinja gives it caller/kwargs/varargs only then).
    private static HashSet<string> SpecialArguments(List<Node> body)
    {
        var found = new HashSet<string>(StringComparer.Ordinal);
        var stack = new Stack<object>(body);
        while (stack.Count > 0)
        {
            switch (stack.Pop())
            {
                case IdentifierNode { Name: "caller" or "kwargs" or "varargs" } id:
                    found.Add(id.Name);
                    break;
                case MacroNode:
                    break;
                case Node node:
                    foreach (var child in Children(node))
                    {
                        stack.Push(child);
                    }

                    break;
            }
        }

        return found;
    }

    private static IEnumerable<Node> Children(Node node) => node switch
    {
        IfNode n => [n.Test, .. n.Body, .. n.Alternate],
        ForNode n => [n.Iterable, .. n.Filter is null ? [] : new[] { n.Filter }, .. n.Body, .. n.Else],
        SetNode n => [.. n.Value is null ? [] : new[] { n.Value }, .. n.Body],
        CallBlockNode n => [n.Call, .. n.Body],
        FilterBlockNode n => [.. FilterArguments(n.Filter), .. n.Body],
        ArrayNode n => n.Items,
        ObjectNode n => n.Entries.SelectMany(e => new[] { e.Key, e.Value }),
        MemberNode n => [n.Target, n.Property],
        SliceNode n => new[] { n.Start, n.Stop, n.Step }.OfType<Node>(),
        CallNode n => [n.Callee, .. n.Arguments],
        KeywordArgumentNode n => [n.Value],
        SpreadNode n => [n.Argument],
        BinaryNode n => [n.Left, n.Right],
        UnaryNode n => [n.Argument],
        FilterNode n => [n.Operand, .. FilterArguments(n.Filter)],
        TestNode n => [n.Operand],
        TernaryNode n => [n.Condition, n.IfTrue, n.IfFalse],
        SelectNode n => [n.Value, n.Condition],
        _ => [],
    };

    private static List<Node> FilterArguments(Node filter) => filter is CallNode c ? c.Arguments : [];
}
