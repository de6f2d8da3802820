namespace Engine.Models.Chat.Jinja;

/// <summary>Variables of one block (the template, a for loop, a macro call); lookups walk out to the parents.</summary>
internal sealed class Scope(Scope? parent)
{
    private readonly Dictionary<string, JinjaValue> variables = new(StringComparer.Ordinal);

    public Scope? Parent { get; } = parent;

    /// <summary>Whether this is the scope a <c>{% call %}</c> block passes to its macro (it holds <c>caller</c>).</summary>
    public bool IsCallBlock { get; init; }

    public void Set(string name, JinjaValue value) => variables[name] = value;

    public bool TryGetOwn(string name, out JinjaValue value) => variables.TryGetValue(name, out value!);

    public JinjaValue Lookup(string name)
    {
        for (var scope = this; scope is not null; scope = scope.Parent)
        {
            if (scope.variables.TryGetValue(name, out var value))
            {
                return value;
            }
        }

        return JinjaUndefined.Instance;
    }
}
