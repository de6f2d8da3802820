using Engine.Core;

namespace Engine.Training.Data;

/// <summary>
/// A dataset line is malformed. The message names the file, the line and the field:
/// <c>data.jsonl:17: field 'chosen': expected a string or a list of messages</c>.
/// </summary>
public sealed class DatasetException : InputException
{
    /// <summary>Creates an exception with no details.</summary>
    public DatasetException()
    {
    }

    /// <summary>Creates an exception with a message.</summary>
    public DatasetException(string message)
        : base(message)
    {
    }

    /// <summary>Creates an exception with a message and its cause.</summary>
    public DatasetException(string message, Exception innerException)
        : base(message, innerException)
    {
    }

    /// <summary>Creates an exception about <paramref name="field"/> (null for whole-line faults) of line <paramref name="line"/> of <paramref name="source"/>.</summary>
    public DatasetException(string source, long line, string? field, string detail, Exception? innerException = null)
        : base(source, line, field, detail, innerException)
    {
        SourceName = source;
        Line = line;
        Field = field;
        Detail = detail;
    }

    /// <summary>The file or stream name.</summary>
    public string? SourceName { get; }

    /// <summary>The 1-based line number.</summary>
    public new long Line { get; }

    /// <summary>The field at fault as spelled in the file, or null for whole-line faults (bad JSON, bad UTF-8, too long).</summary>
    public new string? Field { get; }

    /// <summary>What is wrong, without the location.</summary>
    public new string? Detail { get; }
}
