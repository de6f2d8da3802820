namespace Engine.Models.Chat.Jinja;

/// <summary>A node of a parsed template; <see cref="Position"/> is its offset in the preprocessed source.</summary>
internal abstract record Node(int Position);

internal sealed record TextNode(int Position, string Text) : Node(Position);

internal sealed record CommentNode(int Position) : Node(Position);

internal sealed record GenerationNode(int Position, bool End) : Node(Position);

internal sealed record IfNode(int Position, Node Test, List<Node> Body, List<Node> Alternate) : Node(Position);

internal sealed record ForNode(int Position, Node LoopVariable, Node Iterable, Node? Filter, List<Node> Body, List<Node> Else) : Node(Position);

internal sealed record SetNode(int Position, Node Target, Node? Value, List<Node> Body) : Node(Position);

internal sealed record MacroNode(int Position, string Name, List<Node> Parameters, List<Node> Body) : Node(Position);

internal sealed record CallBlockNode(int Position, CallNode Call, List<Node>? CallerParameters, List<Node> Body) : Node(Position);

internal sealed record FilterBlockNode(int Position, Node Filter, List<Node> Body) : Node(Position);

internal sealed record BreakNode(int Position) : Node(Position);

internal sealed record ContinueNode(int Position) : Node(Position);

internal sealed record IdentifierNode(int Position, string Name) : Node(Position);

internal sealed record LiteralNode(int Position, JinjaValue Value) : Node(Position);

internal sealed record ArrayNode(int Position, List<Node> Items, bool IsTuple) : Node(Position);

internal sealed record ObjectNode(int Position, List<(Node Key, Node Value)> Entries) : Node(Position);

internal sealed record MemberNode(int Position, Node Target, Node Property, bool Computed) : Node(Position);

internal sealed record SliceNode(int Position, Node? Start, Node? Stop, Node? Step) : Node(Position);

internal sealed record CallNode(int Position, Node Callee, List<Node> Arguments) : Node(Position);

internal sealed record KeywordArgumentNode(int Position, string Key, Node Value) : Node(Position);

internal sealed record SpreadNode(int Position, Node Argument, bool Keywords) : Node(Position);

internal sealed record BinaryNode(int Position, string Operator, Node Left, Node Right) : Node(Position);

internal sealed record UnaryNode(int Position, string Operator, Node Argument) : Node(Position);

internal sealed record FilterNode(int Position, Node Operand, Node Filter) : Node(Position);

internal sealed record TestNode(int Position, Node Operand, bool Negate, string Test) : Node(Position);

internal sealed record TernaryNode(int Position, Node Condition, Node IfTrue, Node IfFalse) : Node(Position);

internal sealed record SelectNode(int Position, Node Value, Node Condition) : Node(Position);
