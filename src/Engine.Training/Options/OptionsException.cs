using Engine.Core;

namespace Engine.Training.Options;

/// <summary>
/// A configuration file or override is wrong. The message names the source, the line and the key:
/// <c>sft.yaml:7: key 'learning_rat': unknown key; did you mean 'learning_rate'?</c>.
/// </summary>
public sealed class OptionsException : InputException
{
    /// <summary>Creates an exception with no details.</summary>
    public OptionsException()
    {
    }

    /// <summary>Creates an exception with a message.</summary>
    public OptionsException(string message)
        : base(message)
    {
    }

    /// <summary>Creates an exception with a message and its cause.</summary>
    public OptionsException(string message, Exception innerException)
        : base(message, innerException)
    {
    }

    /// <summary>Creates an exception about <paramref name="key"/> at <paramref name="line"/> (0 when unknown) of <paramref name="source"/>.</summary>
    public OptionsException(string source, int line, string? key, string detail, Exception? innerException = null)
        : base($"{source}{(line > 0 ? $":{line}" : "")}: {(key is null ? "" : $"key '{key}': ")}{detail}", innerException)
    {
        SourceName = source;
        Line = line;
        Key = key;
        Detail = detail;
    }

    /// <summary>The file name, or <c>override</c> for <c>key=value</c> pairs.</summary>
    public string? SourceName { get; }

    /// <summary>The 1-based line (0 when the source has no lines).</summary>
    public new int Line { get; }

    /// <summary>The key at fault, dotted for nested keys.</summary>
    public string? Key { get; }

    /// <summary>What is wrong, without the location.</summary>
    public new string? Detail { get; }
}
