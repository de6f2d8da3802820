namespace Engine.Models.Chat.Jinja;

/// <summary>Builds the syntax tree from tokens, with <c>@huggingface/jinja</c>'s grammar and precedence.</summary>
internal sealed class JinjaParser
{
    private readonly List<Token> tokens;
    private readonly int maxDepth;
    private int current;
    private int depth;

    private JinjaParser(List<Token> tokens, int maxDepth)
    {
        this.tokens = tokens;
        this.maxDepth = maxDepth;
    }

    public static List<Node> Parse(List<Token> tokens, int maxDepth)
    {
        var parser = new JinjaParser(tokens, maxDepth);
        var body = new List<Node>();
        while (parser.current < tokens.Count)
        {
            body.Add(parser.ParseAny());
        }

        return body;
    }

    private int EndPosition => tokens.Count == 0 ? 0 : tokens[^1].Position + tokens[^1].Value.Length;

    private Token Next()
    {
        if (current >= tokens.Count)
        {
            throw new JinjaError("unexpected end of the template (a tag, block or expression is not closed)", EndPosition);
        }

        return tokens[current++];
    }

    private Token Expect(TokenKind kind, string what)
    {
        var token = Next();
        return token.Kind == kind ? token : throw new JinjaError($"expected {what}, found {Describe(token)}", token.Position);
    }

    private static string Describe(Token t) => t.Kind switch
    {
        TokenKind.Text => "text",
        TokenKind.StringLiteral => "a string",
        TokenKind.GenerationMarker => "a generation tag",
        _ => $"'{t.Value}'",
    };

    private bool Is(TokenKind kind) => current < tokens.Count && tokens[current].Kind == kind;

    private bool IsIdentifier(string name, int offset = 0) =>
        current + offset < tokens.Count && tokens[current + offset].Kind == TokenKind.Identifier && tokens[current + offset].Value == name;

    private bool IsStatement(params string[] names) =>
        current + 1 < tokens.Count && tokens[current].Kind == TokenKind.OpenStatement
        && tokens[current + 1].Kind == TokenKind.Identifier && names.Contains(tokens[current + 1].Value);

    private void ExpectIdentifier(string name)
    {
        var token = Next();
        if (token.Kind != TokenKind.Identifier || token.Value != name)
        {
            throw new JinjaError($"expected '{name}', found {Describe(token)}", token.Position);
        }
    }

    private List<Node> ParseUntil(string opening, int position, params string[] ends)
    {
        if (depth + 1 > maxDepth)
        {
            throw new JinjaError($"blocks nest deeper than {maxDepth} levels", position);
        }

        depth++;
        var body = new List<Node>();
        while (!IsStatement(ends))
        {
            if (current >= tokens.Count)
            {
                throw new JinjaError($"'{opening}' is never closed (expected {string.Join(" or ", ends.Select(e => $"{{% {e} %}}"))})", position);
            }

            body.Add(ParseAny());
        }

        depth--;
        return body;
    }

    private void ExpectEnd(string name)
    {
        Expect(TokenKind.OpenStatement, "'{%'");
        ExpectIdentifier(name);
        Expect(TokenKind.CloseStatement, "'%}'");
    }

    private Node ParseAny()
    {
        var token = tokens[current];
        switch (token.Kind)
        {
            case TokenKind.Comment:
                current++;
                return new CommentNode(token.Position);
            case TokenKind.Text:
                current++;
                return new TextNode(token.Position, token.Value);
            case TokenKind.GenerationMarker:
                current++;
                return new GenerationNode(token.Position, token.Value == "end");
            case TokenKind.OpenStatement:
                return ParseStatement();
            case TokenKind.OpenExpression:
                current++;
                var expression = ParseExpression();
                Expect(TokenKind.CloseExpression, "'}}'");
                return expression;
            default:
                throw new JinjaError($"unexpected {Describe(token)}", token.Position);
        }
    }

    private Node ParseStatement()
    {
        var open = Expect(TokenKind.OpenStatement, "'{%'");
        var nameToken = Next();
        if (nameToken.Kind != TokenKind.Identifier)
        {
            throw new JinjaError($"expected a statement name after '{{%', found {Describe(nameToken)}", nameToken.Position);
        }

        int at = open.Position;
        switch (nameToken.Value)
        {
            case "set":
                return ParseSet(at);
            case "if":
            {
                var node = ParseIf(at);
                ExpectEnd("endif");
                return node;
            }

            case "macro":
            {
                var name = ParsePrimary();
                if (name is not IdentifierNode id)
                {
                    throw new JinjaError("expected a name after 'macro'", name.Position);
                }

                var parameters = ParseArguments(parameters: true);
                Expect(TokenKind.CloseStatement, "'%}'");
                var body = ParseUntil("macro", at, "endmacro");
                ExpectEnd("endmacro");
                return new MacroNode(at, id.Name, parameters, body);
            }

            case "for":
            {
                var node = ParseFor(at);
                ExpectEnd("endfor");
                return node;
            }

            case "call":
            {
                List<Node>? callerParameters = Is(TokenKind.OpenParen) ? ParseArguments(parameters: true) : null;
                var callee = ParsePrimary();
                if (callee is not IdentifierNode)
                {
                    throw new JinjaError("expected a macro name after 'call'", callee.Position);
                }

                var call = new CallNode(callee.Position, callee, ParseArguments(parameters: false));
                Expect(TokenKind.CloseStatement, "'%}'");
                var body = ParseUntil("call", at, "endcall");
                ExpectEnd("endcall");
                return new CallBlockNode(at, call, callerParameters, body);
            }

            case "break":
                Expect(TokenKind.CloseStatement, "'%}'");
                return new BreakNode(at);
            case "continue":
                Expect(TokenKind.CloseStatement, "'%}'");
                return new ContinueNode(at);
            case "filter":
            {
                Node filter = ParsePrimary();
                if (filter is IdentifierNode && Is(TokenKind.OpenParen))
                {
                    filter = ParseCall(filter);
                }

                Expect(TokenKind.CloseStatement, "'%}'");
                var body = ParseUntil("filter", at, "endfilter");
                ExpectEnd("endfilter");
                return new FilterBlockNode(at, filter, body);
            }

            default:
                throw new JinjaError($"unknown statement '{nameToken.Value}'", nameToken.Position);
        }
    }

    private SetNode ParseSet(int at)
    {
        var target = ParseExpressionSequence(primary: false);
        if (Is(TokenKind.Equals))
        {
            current++;
            var value = ParseExpressionSequence(primary: false);
            Expect(TokenKind.CloseStatement, "'%}'");
            return new SetNode(at, target, value, []);
        }

        Expect(TokenKind.CloseStatement, "'%}'");
        var body = ParseUntil("set", at, "endset");
        ExpectEnd("endset");
        return new SetNode(at, target, null, body);
    }

    private IfNode ParseIf(int at)
    {
        var test = ParseExpression();
        Expect(TokenKind.CloseStatement, "'%}'");
        var body = ParseUntil("if", at, "elif", "else", "endif");
        var alternate = new List<Node>();
        if (IsStatement("elif"))
        {
            int elif = tokens[current].Position;
            current += 2;
            alternate.Add(ParseIf(elif));
        }
        else if (IsStatement("else"))
        {
            current += 2;
            Expect(TokenKind.CloseStatement, "'%}'");
            alternate = ParseUntil("if", at, "endif");
        }

        return new IfNode(at, test, body, alternate);
    }

    private ForNode ParseFor(int at)
    {
        var loopVariable = ParseExpressionSequence(primary: true);
        if (loopVariable is not (IdentifierNode or ArrayNode { IsTuple: true }))
        {
            throw new JinjaError("expected a name or a tuple of names for the loop variable", loopVariable.Position);
        }

        if (!IsIdentifier("in"))
        {
            throw new JinjaError("expected 'in' after the loop variable", current < tokens.Count ? tokens[current].Position : EndPosition);
        }

        current++;
        var iterable = ParseExpression();
        Node? filter = null;
        if (iterable is SelectNode select)
        {
            iterable = select.Value;
            filter = select.Condition;
        }

        Expect(TokenKind.CloseStatement, "'%}'");
        var body = ParseUntil("for", at, "endfor", "else");
        var otherwise = new List<Node>();
        if (IsStatement("else"))
        {
            current += 2;
            Expect(TokenKind.CloseStatement, "'%}'");
            otherwise = ParseUntil("for", at, "endfor");
        }

        return new ForNode(at, loopVariable, iterable, filter, body, otherwise);
    }

    private Node ParseExpressionSequence(bool primary)
    {
        var first = primary ? ParsePrimary() : ParseExpression();
        if (!Is(TokenKind.Comma))
        {
            return first;
        }

        var items = new List<Node> { first };
        while (Is(TokenKind.Comma))
        {
            current++;
            items.Add(primary ? ParsePrimary() : ParseExpression());
        }

        return new ArrayNode(first.Position, items, IsTuple: true);
    }

    private Node ParseExpression()
    {
        if (++depth > maxDepth)
        {
            throw new JinjaError($"expressions nest deeper than {maxDepth} levels", current < tokens.Count ? tokens[current].Position : EndPosition);
        }

        try
        {
            return ParseIfExpression();
        }
        finally
        {
            depth--;
        }
    }

    private Node ParseIfExpression()
    {
        var a = ParseOr();
        if (!IsIdentifier("if"))
        {
            return a;
        }

        current++;
        var test = ParseOr();
        if (IsIdentifier("else"))
        {
            current++;
            return new TernaryNode(a.Position, test, a, ParseIfExpression());
        }

        return new SelectNode(a.Position, a, test);
    }

    private Node ParseOr()
    {
        var left = ParseAnd();
        while (IsIdentifier("or"))
        {
            current++;
            left = new BinaryNode(left.Position, "or", left, ParseAnd());
        }

        return left;
    }

    private Node ParseAnd()
    {
        var left = ParseNot();
        while (IsIdentifier("and"))
        {
            current++;
            left = new BinaryNode(left.Position, "and", left, ParseNot());
        }

        return left;
    }

    private Node ParseNot()
    {
        if (IsIdentifier("not"))
        {
            int at = tokens[current++].Position;
            return new UnaryNode(at, "not", ParseNot());
        }

        return ParseComparison();
    }

    private Node ParseComparison()
    {
        var left = ParseAdditive();
        while (true)
        {
            string op;
            if (IsIdentifier("not") && IsIdentifier("in", 1))
            {
                op = "not in";
                current += 2;
            }
            else if (IsIdentifier("in"))
            {
                op = "in";
                current++;
            }
            else if (Is(TokenKind.ComparisonBinaryOperator))
            {
                op = tokens[current++].Value;
            }
            else
            {
                return left;
            }

            left = new BinaryNode(left.Position, op, left, ParseAdditive());
        }
    }

    private Node ParseAdditive()
    {
        var left = ParseMultiplicative();
        while (Is(TokenKind.AdditiveBinaryOperator))
        {
            string op = tokens[current++].Value;
            left = new BinaryNode(left.Position, op, left, ParseMultiplicative());
        }

        return left;
    }

    private Node ParseMultiplicative()
    {
        var left = ParsePower();
        while (Is(TokenKind.MultiplicativeBinaryOperator))
        {
            string op = tokens[current++].Value;
            left = new BinaryNode(left.Position, op, left, ParsePower());
        }

        return left;
    }

    private Node ParsePower()
    {
        var left = ParseTest();
        while (Is(TokenKind.ExponentiationBinaryOperator))
        {
            current++;
            left = new BinaryNode(left.Position, "**", left, ParseTest());
        }

        return left;
    }

    private Node ParseTest()
    {
        var operand = ParseFilter();
        while (IsIdentifier("is"))
        {
            current++;
            bool negate = IsIdentifier("not");
            if (negate)
            {
                current++;
            }

            var test = ParsePrimary();
            if (test is not IdentifierNode id)
            {
                throw new JinjaError("expected the name of a test after 'is'", test.Position);
            }

            operand = new TestNode(operand.Position, operand, negate, id.Name);
        }

        return operand;
    }

    private Node ParseFilter()
    {
        var operand = ParseUnarySign();
        while (Is(TokenKind.Pipe))
        {
            current++;
            Node filter = ParsePrimary();
            if (filter is not IdentifierNode)
            {
                throw new JinjaError("expected the name of a filter after '|'", filter.Position);
            }

            if (Is(TokenKind.OpenParen))
            {
                filter = ParseCall(filter);
            }

            operand = new FilterNode(filter.Position, operand, filter);
        }

        return operand;
    }

    private Node ParseUnarySign()
    {
        if (current < tokens.Count && tokens[current].Kind is TokenKind.UnaryOperator or TokenKind.AdditiveBinaryOperator
            && tokens[current].Value is "-" or "+")
        {
            var op = tokens[current++];
            return new UnaryNode(op.Position, op.Value, ParseUnarySign());
        }

        var member = ParseMember(ParsePrimary());
        return Is(TokenKind.OpenParen) ? ParseCall(member) : member;
    }

    private Node ParseCall(Node callee)
    {
        Node expression = new CallNode(callee.Position, callee, ParseArguments(parameters: false));
        expression = ParseMember(expression);
        return Is(TokenKind.OpenParen) ? ParseCall(expression) : expression;
    }

    private List<Node> ParseArguments(bool parameters)
    {
        Expect(TokenKind.OpenParen, "'('");
        var args = new List<Node>();
        var names = new HashSet<string>(StringComparer.Ordinal);
        bool sawKeyword = false, sawSpread = false;
        while (!Is(TokenKind.CloseParen))
        {
            if (current >= tokens.Count)
            {
                throw new JinjaError("an argument list is never closed with ')'", EndPosition);
            }

            bool keywordSpread = Is(TokenKind.ExponentiationBinaryOperator);
            bool spread = Is(TokenKind.MultiplicativeBinaryOperator) && tokens[current].Value == "*";
            if (parameters && (keywordSpread || spread))
            {
                throw new JinjaError("argument unpacking is not allowed in parameter declarations", tokens[current].Position);
            }

            if (keywordSpread)
            {
                int at = tokens[current++].Position;
                args.Add(new SpreadNode(at, ParseExpression(), Keywords: true));
                if (Is(TokenKind.Comma))
                {
                    current++;
                }

                if (!Is(TokenKind.CloseParen))
                {
                    throw new JinjaError("'**' must be applied to the last argument", at);
                }

                break;
            }

            Node argument;
            if (spread)
            {
                int at = tokens[current++].Position;
                if (sawSpread)
                {
                    throw new JinjaError("only one '*' argument unpacking is allowed", at);
                }

                sawSpread = true;
                argument = new SpreadNode(at, ParseExpression(), Keywords: false);
            }
            else
            {
                argument = ParseExpression();
                if (Is(TokenKind.Equals))
                {
                    current++;
                    if (argument is not IdentifierNode key)
                    {
                        throw new JinjaError(parameters ? "expected a name for a parameter" : "expected a name for a keyword argument", argument.Position);
                    }

                    argument = new KeywordArgumentNode(argument.Position, key.Name, ParseExpression());
                }

                if (parameters)
                {
                    string name = argument switch
                    {
                        IdentifierNode i => i.Name,
                        KeywordArgumentNode k => k.Key,
                        _ => throw new JinjaError("expected a name for a parameter", argument.Position),
                    };
                    if (!names.Add(name))
                    {
                        throw new JinjaError($"duplicate parameter name '{name}'", argument.Position);
                    }
                }

                if (argument is KeywordArgumentNode)
                {
                    sawKeyword = true;
                }
                else if (sawKeyword)
                {
                    throw new JinjaError(parameters ? "a parameter without a default follows one with a default" : "positional arguments must come before keyword arguments", argument.Position);
                }
                else if (sawSpread)
                {
                    throw new JinjaError("positional arguments must not follow '*' argument unpacking", argument.Position);
                }
            }

            args.Add(argument);
            if (Is(TokenKind.Comma))
            {
                current++;
            }
        }

        Expect(TokenKind.CloseParen, "')'");
        return args;
    }

    private Node ParseSubscript(int at)
    {
        var parts = new List<Node?>();
        bool isSlice = false;
        while (!Is(TokenKind.CloseSquareBracket))
        {
            if (current >= tokens.Count)
            {
                throw new JinjaError("'[' is never closed with ']'", at);
            }

            if (Is(TokenKind.Colon))
            {
                parts.Add(null);
                current++;
                isSlice = true;
            }
            else
            {
                parts.Add(ParseExpression());
                if (Is(TokenKind.Colon))
                {
                    current++;
                    isSlice = true;
                }
            }
        }

        if (parts.Count == 0)
        {
            throw new JinjaError("expected an index, a key or a slice inside '[]'", at);
        }

        if (!isSlice)
        {
            return parts[0]!;
        }

        if (parts.Count > 3)
        {
            throw new JinjaError("a slice takes at most 3 parts (start:stop:step)", at);
        }

        return new SliceNode(at, parts[0], parts.Count > 1 ? parts[1] : null, parts.Count > 2 ? parts[2] : null);
    }

    private Node ParseMember(Node target)
    {
        while (Is(TokenKind.Dot) || Is(TokenKind.OpenSquareBracket))
        {
            var op = tokens[current++];
            if (op.Kind == TokenKind.OpenSquareBracket)
            {
                var property = ParseSubscript(op.Position);
                Expect(TokenKind.CloseSquareBracket, "']'");
                target = new MemberNode(op.Position, target, property, Computed: true);
            }
            else
            {
                var property = ParsePrimary();
                if (property is not (IdentifierNode or LiteralNode { Value: JinjaNumber { IsInteger: true } }))
                {
                    throw new JinjaError("expected a name or an integer after '.'", property.Position);
                }

                target = new MemberNode(op.Position, target, property, Computed: false);
            }
        }

        return target;
    }

    private Node ParsePrimary()
    {
        var token = Next();
        switch (token.Kind)
        {
            case TokenKind.NumericLiteral:
                return new LiteralNode(token.Position, JinjaNumber.Parse(token.Value));
            case TokenKind.StringLiteral:
            {
                string value = token.Value;
                while (Is(TokenKind.StringLiteral))
                {
                    value += tokens[current++].Value;
                }

                return new LiteralNode(token.Position, new JinjaString(value));
            }

            case TokenKind.Identifier:
                return new IdentifierNode(token.Position, token.Value);
            case TokenKind.OpenParen:
            {
                var expression = ParseExpressionSequence(primary: false);
                Expect(TokenKind.CloseParen, "')'");
                return expression;
            }

            case TokenKind.OpenSquareBracket:
            {
                var items = new List<Node>();
                while (!Is(TokenKind.CloseSquareBracket))
                {
                    items.Add(ParseExpression());
                    if (Is(TokenKind.Comma))
                    {
                        current++;
                    }
                }

                current++;
                return new ArrayNode(token.Position, items, IsTuple: false);
            }

            case TokenKind.OpenCurlyBracket:
            {
                var entries = new List<(Node, Node)>();
                while (!Is(TokenKind.CloseCurlyBracket))
                {
                    var key = ParseExpression();
                    Expect(TokenKind.Colon, "':' between a key and its value");
                    entries.Add((key, ParseExpression()));
                    if (Is(TokenKind.Comma))
                    {
                        current++;
                    }
                }

                current++;
                return new ObjectNode(token.Position, entries);
            }

            default:
                throw new JinjaError($"unexpected {Describe(token)}", token.Position);
        }
    }
}
