using Engine.Core;

namespace Engine.Models.Tokenizers;

/// <summary>
/// A <c>tokenizer.json</c> file breaks the format or uses a feature this loader does not support. The message names
/// the file and the JSON path of the field at fault (e.g. <c>model.merges[12]</c>), so a bad file can be diagnosed
/// from the message alone.
/// </summary>
public sealed class TokenizerFormatException : InputException
{
    /// <summary>Creates an exception with no details.</summary>
    public TokenizerFormatException()
    {
    }

    /// <summary>Creates an exception with a message.</summary>
    public TokenizerFormatException(string message)
        : base(message)
    {
    }

    /// <summary>Creates an exception with a message and the exception that caused it.</summary>
    public TokenizerFormatException(string message, Exception innerException)
        : base(message, innerException)
    {
    }

    /// <summary>Creates an exception about the field at <paramref name="jsonPath"/> of <paramref name="path"/>.</summary>
    /// <param name="path">The file (or a name for in-memory JSON).</param>
    /// <param name="jsonPath">The field at fault, e.g. <c>model.vocab</c>; empty for the whole document.</param>
    /// <param name="detail">What is wrong.</param>
    /// <param name="innerException">The exception that revealed the fault, if any.</param>
    public TokenizerFormatException(string path, string jsonPath, string detail, Exception? innerException = null)
        : base(jsonPath.Length == 0 ? $"tokenizer file '{path}': {detail}" : $"tokenizer file '{path}': {jsonPath}: {detail}", innerException)
    {
        Path = path;
        JsonPath = jsonPath;
    }

    /// <summary>The file at fault.</summary>
    public string? Path { get; }

    /// <summary>The JSON path of the field at fault; empty when the whole document is at fault.</summary>
    public string? JsonPath { get; }
}
