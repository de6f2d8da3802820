namespace Engine.Core;

/// <summary>
/// An expected failure caused by what the user gave (a file, a flag, an option, a checkpoint), not a bug. The message
/// is one line that names the file, the line or offset and the field at fault, e.g.
/// <c>out/ckpt/config.json: field 'n_layer': 1000000000 layers do not fit the weights file (12 found)</c>; the
/// <c>engine</c> command prints it as is and exits with 1. Every project's own input errors derive from it.
/// </summary>
public class InputException : Exception
{
    /// <summary>Creates an exception with no details.</summary>
    public InputException()
    {
    }

    /// <summary>Creates an exception whose message is already the one line shown to the user.</summary>
    public InputException(string message)
        : base(message)
    {
    }

    /// <summary>Creates an exception whose message is already the one line shown to the user, with its cause.</summary>
    public InputException(string message, Exception? innerException)
        : base(message, innerException)
    {
    }

    /// <summary>
    /// Creates an exception about <paramref name="field"/> at <paramref name="line"/> of <paramref name="file"/>:
    /// <c>file:line: field 'name': detail</c> (the line and field parts are left out when null).
    /// </summary>
    /// <param name="file">The file, directory or flag at fault, as the user spelled it.</param>
    /// <param name="line">The 1-based line (or null when the source has no lines or it is unknown).</param>
    /// <param name="field">The field, key or flag at fault, or null for faults of the whole file.</param>
    /// <param name="detail">What is wrong, and where it helps, what to do.</param>
    /// <param name="innerException">The exception that revealed the fault, if any.</param>
    public InputException(string file, long? line, string? field, string detail, Exception? innerException = null)
        : base(Format(file, line, field, detail), innerException)
    {
        File = file;
        Line = line;
        Field = field;
        Detail = detail;
    }

    /// <summary>The file, directory or flag at fault, when the exception was created with its parts.</summary>
    public string? File { get; }

    /// <summary>The 1-based line, when known.</summary>
    public long? Line { get; }

    /// <summary>The field, key or flag at fault, when one is.</summary>
    public string? Field { get; }

    /// <summary>What is wrong, without the location.</summary>
    public string? Detail { get; }

    /// <summary>The one-line form: <c>file:line: field 'name': detail</c>.</summary>
    public static string Format(string file, long? line, string? field, string detail) =>
        $"{file}{(line is long l ? $":{l}" : "")}: {(field is null ? "" : $"field '{field}': ")}{detail}";
}
