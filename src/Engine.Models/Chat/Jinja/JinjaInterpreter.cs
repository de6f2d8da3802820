using System.Text;

namespace Engine.Models.Chat.Jinja;

/// <summary>
/// Runs a parsed template with <c>@huggingface/jinja</c>'s semantics (scoping, truthiness, JavaScript-style equality and
/// number printing), within <see cref="JinjaLimits"/>, and records where the root output's generation blocks lie.
/// </summary>
internal sealed partial class JinjaInterpreter
{
    private readonly JinjaLimits limits;
    private long iterations;
    private int depth;
    private StringBuilder? root;

    public JinjaInterpreter(JinjaLimits limits)
    {
        this.limits = limits;
    }

    /// <summary>[start, end) output offsets of each <c>{% generation %}</c> block rendered into the root output.</summary>
    public List<CharSpan> GenerationSpans { get; } = [];

    private int? openGeneration;

    public string Run(List<Node> program, Scope globals)
    {
        root = new StringBuilder();
        RenderBlock(program, globals, root);
        if (openGeneration is int open)
        {
            GenerationSpans.Add(new CharSpan(open, root.Length - open));
        }

        return root.ToString();
    }

    private sealed class BreakSignal : Exception;

    private sealed class ContinueSignal : Exception;

    private void Append(StringBuilder output, string text)
    {
        if (output.Length + (long)text.Length > limits.MaxOutputChars)
        {
            throw new JinjaError($"the output exceeds {limits.MaxOutputChars:N0} characters (the template's output limit)");
        }

        output.Append(text);
    }

    private void RenderBlock(List<Node> statements, Scope scope, StringBuilder output)
    {
        foreach (var statement in statements)
        {
            try
            {
                Render(statement, scope, output);
            }
            catch (JinjaError e) when (e.Position < 0)
            {
                throw e.At(statement.Position);
            }
        }
    }

    private void Render(Node statement, Scope scope, StringBuilder output)
    {
        switch (statement)
        {
            case TextNode t:
                Append(output, t.Text);
                break;
            case CommentNode:
                break;
            case GenerationNode g:
                MarkGeneration(g, output);
                break;
            case IfNode node:
                RenderBlock(Evaluate(node.Test, scope).IsTruthy ? node.Body : node.Alternate, scope, output);
                break;
            case ForNode node:
                RenderFor(node, scope, output);
                break;
            case SetNode node:
                ExecuteSet(node, scope);
                break;
            case BreakNode:
                throw new BreakSignal();
            case ContinueNode:
                throw new ContinueSignal();
            default:
                var value = Evaluate(statement, scope);
                if (value is not (JinjaNull or JinjaUndefined))
                {
                    Append(output, value.Render());
                }

                break;
        }
    }

    // Only the root output's offsets mean anything to a caller; blocks inside macros or set-blocks are not tracked.
    private void MarkGeneration(GenerationNode g, StringBuilder output)
    {
        if (!ReferenceEquals(output, root))
        {
            return;
        }

        if (!g.End)
        {
            openGeneration ??= output.Length;
        }
        else if (openGeneration is int open)
        {
            GenerationSpans.Add(new CharSpan(open, output.Length - open));
            openGeneration = null;
        }
    }

    private void CountIteration()
    {
        if (++iterations > limits.MaxLoopIterations)
        {
            throw new JinjaError($"the template ran more than {limits.MaxLoopIterations:N0} loop iterations (the template's loop limit)");
        }
    }

    private void RenderFor(ForNode node, Scope outer, StringBuilder output)
    {
        var scope = new Scope(outer);
        var iterable = Evaluate(node.Iterable, scope);
        List<JinjaValue> candidates = iterable switch
        {
            JinjaArray a => a.Items,
            JinjaObject o => o.Entries.Keys.Select(k => (JinjaValue)new JinjaString(k)).ToList(),
            _ => throw new JinjaError($"expected an array or object to loop over, got {iterable.TypeName}", node.Iterable.Position),
        };

        var items = new List<JinjaValue>(candidates.Count);
        foreach (var current in candidates)
        {
            if (node.LoopVariable is ArrayNode tuple)
            {
                if (current is not JinjaArray values)
                {
                    throw new JinjaError($"cannot unpack non-iterable type: {current.TypeName}", node.LoopVariable.Position);
                }

                if (values.Items.Count != tuple.Items.Count)
                {
                    throw new JinjaError($"too {(tuple.Items.Count > values.Items.Count ? "few" : "many")} items to unpack", node.LoopVariable.Position);
                }
            }

            if (node.Filter is { } filter)
            {
                var test = new Scope(scope);
                Bind(node.LoopVariable, current, test);
                if (!Evaluate(filter, test).IsTruthy)
                {
                    continue;
                }
            }

            items.Add(current);
        }

        bool none = true;
        for (int i = 0; i < items.Count; i++)
        {
            CountIteration();
            scope.Set("loop", Loop(i, items));
            Bind(node.LoopVariable, items[i], scope);
            int mark = output.Length;
            try
            {
                RenderBlock(node.Body, scope, output);
            }
            catch (ContinueSignal)
            {
                output.Length = mark;
                continue;
            }
            catch (BreakSignal)
            {
                output.Length = mark;
                break;
            }

            none = false;
        }

        if (none)
        {
            RenderBlock(node.Else, scope, output);
        }
    }

    private static JinjaObject Loop(int i, List<JinjaValue> items)
    {
        int n = items.Count;
        return new JinjaObject(
        [
            ("index", new JinjaNumber(i + 1, true)), ("index0", new JinjaNumber(i, true)),
            ("revindex", new JinjaNumber(n - i, true)), ("revindex0", new JinjaNumber(n - i - 1, true)),
            ("first", JinjaBool.Of(i == 0)), ("last", JinjaBool.Of(i == n - 1)), ("length", new JinjaNumber(n, true)),
            ("previtem", i > 0 ? items[i - 1] : JinjaUndefined.Instance), ("nextitem", i < n - 1 ? items[i + 1] : JinjaUndefined.Instance),
        ]);
    }

    private static void Bind(Node target, JinjaValue value, Scope scope)
    {
        if (target is IdentifierNode id)
        {
            scope.Set(id.Name, value);
            return;
        }

        var names = ((ArrayNode)target).Items;
        var values = ((JinjaArray)value).Items;
        for (int j = 0; j < names.Count; j++)
        {
            if (names[j] is not IdentifierNode name)
            {
                throw new JinjaError("can only unpack into names", names[j].Position);
            }

            scope.Set(name.Name, values[j]);
        }
    }

    private void ExecuteSet(SetNode node, Scope scope)
    {
        JinjaValue value;
        if (node.Value is { } expression)
        {
            value = Evaluate(expression, scope);
        }
        else
        {
            var body = new StringBuilder();
            RenderBlock(node.Body, scope, body);
            value = new JinjaString(body.ToString());
        }

        switch (node.Target)
        {
            case IdentifierNode id:
                scope.Set(id.Name, value);
                break;
            case ArrayNode { IsTuple: true } tuple:
                if (value is not JinjaArray array)
                {
                    throw new JinjaError($"cannot unpack non-iterable type in set: {value.TypeName}", node.Position);
                }

                if (array.Items.Count != tuple.Items.Count)
                {
                    throw new JinjaError($"too {(tuple.Items.Count > array.Items.Count ? "few" : "many")} items to unpack in set", node.Position);
                }

                Bind(tuple, array, scope);
                break;
            case MemberNode member:
                if (Evaluate(member.Target, scope) is not JinjaNamespace ns)
                {
                    throw new JinjaError("cannot assign an attribute of something that is not a namespace()", member.Position);
                }

                if (member.Property is not IdentifierNode property)
                {
                    throw new JinjaError("cannot assign to a member with a non-identifier property", member.Position);
                }

                ns.Entries[property.Name] = value;
                break;
            default:
                throw new JinjaError("invalid target of an assignment", node.Target.Position);
        }
    }

    private JinjaValue Evaluate(Node node, Scope scope)
    {
        System.Runtime.CompilerServices.RuntimeHelpers.EnsureSufficientExecutionStack();
        try
        {
            return EvaluateNode(node, scope);
        }
        catch (JinjaError e) when (e.Position < 0)
        {
            throw e.At(node.Position);
        }
    }

    private JinjaValue EvaluateNode(Node node, Scope scope)
    {
        switch (node)
        {
            case IdentifierNode id:
                return scope.Lookup(id.Name);
            case LiteralNode l:
                return l.Value;
            case BinaryNode b:
                return EvaluateBinary(b, scope);
            case MemberNode m:
                return EvaluateMember(m, scope);
            case CallNode c:
            {
                var args = EvaluateCallArguments(c.Arguments, scope);
                var fn = Evaluate(c.Callee, scope);
                return fn is JinjaFunction f ? f.Invoke(args, scope) : throw new JinjaError($"cannot call something that is not a function: got {fn.TypeName}");
            }

            case FilterNode f:
                return ApplyFilter(Evaluate(f.Operand, scope), f.Filter, scope);
            case TestNode t:
            {
                var operand = Evaluate(t.Operand, scope);
                bool result = RunTest(t.Test, operand, null);
                return JinjaBool.Of(t.Negate ? !result : result);
            }

            case TernaryNode t:
                return Evaluate(t.Condition, scope).IsTruthy ? Evaluate(t.IfTrue, scope) : Evaluate(t.IfFalse, scope);
            case UnaryNode u:
                return EvaluateUnary(u, scope);
            case ArrayNode a:
                return new JinjaArray(a.Items.Select(x => Evaluate(x, scope)).ToList(), a.IsTuple);
            case ObjectNode o:
            {
                var entries = new List<(string, JinjaValue)>();
                foreach (var (keyNode, valueNode) in o.Entries)
                {
                    var key = Evaluate(keyNode, scope);
                    entries.Add((key is JinjaString s ? s.Value : throw new JinjaError($"object keys must be strings: got {key.TypeName}", keyNode.Position), Evaluate(valueNode, scope)));
                }

                return new JinjaObject(entries);
            }

            case SelectNode s:
                return Evaluate(s.Condition, scope).IsTruthy ? Evaluate(s.Value, scope) : JinjaUndefined.Instance;
            case IfNode or ForNode or SetNode or TextNode or CommentNode or GenerationNode:
            {
                var output = new StringBuilder();
                Render(node, scope, output);
                return new JinjaString(output.ToString());
            }

            case MacroNode m:
                DefineMacro(m, scope);
                return JinjaNull.Instance;
            case CallBlockNode c:
                return EvaluateCallBlock(c, scope);
            case FilterBlockNode f:
            {
                var output = new StringBuilder();
                RenderBlock(f.Body, scope, output);
                return ApplyFilter(new JinjaString(output.ToString()), f.Filter, scope);
            }

            default:
                throw new JinjaError($"'{node.GetType().Name}' cannot be evaluated here");
        }
    }

    private JinjaValue EvaluateUnary(UnaryNode u, Scope scope)
    {
        var argument = Evaluate(u.Argument, scope);
        if (u.Operator == "not")
        {
            return JinjaBool.Of(!argument.IsTruthy);
        }

        double sign = u.Operator == "-" ? -1 : 1;
        return argument switch
        {
            JinjaNumber n => new JinjaNumber(sign * n.Value, n.IsInteger),
            JinjaBool b => new JinjaNumber(sign * (b.Value ? 1 : 0), true),
            _ => throw new JinjaError($"unknown operator '{u.Operator}' for {argument.TypeName}"),
        };
    }

    private List<JinjaValue> EvaluateCallArguments(List<Node> args, Scope scope)
    {
        if (!args.Any(a => a is KeywordArgumentNode or SpreadNode))
        {
            return args.Select(a => Evaluate(a, scope)).ToList();
        }

        var (positional, keywords) = EvaluateArguments(args, scope);
        if (keywords.Entries.Count > 0)
        {
            positional.Add(keywords);
        }

        return positional;
    }

    private (List<JinjaValue> Positional, JinjaObject Keywords) EvaluateArguments(List<Node> args, Scope scope)
    {
        var positional = new List<JinjaValue>();
        var keywords = new JinjaObject([], isKeywordArguments: true);
        foreach (var argument in args)
        {
            if (argument is SpreadNode { Keywords: false } spread)
            {
                var value = Evaluate(spread.Argument, scope);
                positional.AddRange(value is JinjaArray a ? a.Items : throw new JinjaError($"cannot unpack non-iterable type: {value.TypeName}", spread.Position));
            }
            else if (argument is not (KeywordArgumentNode or SpreadNode))
            {
                positional.Add(Evaluate(argument, scope));
            }
        }

        foreach (var argument in args)
        {
            if (argument is KeywordArgumentNode k)
            {
                AddKeyword(k.Key, Evaluate(k.Value, scope), k.Position);
            }
            else if (argument is SpreadNode { Keywords: true } spread)
            {
                var value = Evaluate(spread.Argument, scope);
                if (value is not JinjaObject o)
                {
                    throw new JinjaError($"argument after ** must be a mapping, not {value.TypeName}", spread.Position);
                }

                foreach (var (key, v) in o.Entries)
                {
                    AddKeyword(key, v, spread.Position);
                }
            }
        }

        return (positional, keywords);

        void AddKeyword(string key, JinjaValue value, int position)
        {
            if (!keywords.Entries.TryAdd(key, value))
            {
                throw new JinjaError($"got multiple values for keyword argument '{key}'", position);
            }
        }
    }
}
