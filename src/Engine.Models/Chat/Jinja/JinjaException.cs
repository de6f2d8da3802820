using Engine.Core;

namespace Engine.Models.Chat.Jinja;

/// <summary>
/// A chat template that does not parse, or fails while rendering (an unknown filter, <c>raise_exception</c>, a limit):
/// <c>source: line L, column C: detail</c>, the line and column counted in the template text (1-based).
/// </summary>
public sealed class JinjaException : InputException
{
    /// <summary>Creates the error of <paramref name="source"/> at <paramref name="line"/>:<paramref name="column"/>.</summary>
    public JinjaException(string source, int line, int column, string detail, Exception? innerException = null)
        : base(source, null, null, $"line {line}, column {column}: {detail}", innerException)
    {
        TemplateLine = line;
        TemplateColumn = column;
        TemplateDetail = detail;
    }

    /// <summary>The 1-based line in the template text.</summary>
    public int TemplateLine { get; }

    /// <summary>The 1-based column in the template text.</summary>
    public int TemplateColumn { get; }

    /// <summary>What went wrong, without the location.</summary>
    public string TemplateDetail { get; }
}

/// <summary>An error inside the interpreter, located at a preprocessed-source offset (-1 until a node claims it).</summary>
internal sealed class JinjaError(string message, int position = -1) : Exception(message)
{
    public int Position { get; } = position;

    public JinjaError At(int position) => Position >= 0 ? this : new JinjaError(Message, position);
}
