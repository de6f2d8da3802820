using Engine.Core;

namespace Engine.Models.Formats;

/// <summary>
/// A safetensors file breaks the format. The message names the file, the tensor (when one is involved) and the
/// header field at fault, so a bad checkpoint can be diagnosed from the message alone.
/// </summary>
public sealed class SafetensorsException : InputException
{
    /// <summary>Creates an exception with no details.</summary>
    public SafetensorsException()
    {
    }

    /// <summary>Creates an exception with a message.</summary>
    public SafetensorsException(string message)
        : base(message)
    {
    }

    /// <summary>Creates an exception with a message and the exception that caused it.</summary>
    public SafetensorsException(string message, Exception innerException)
        : base(message, innerException)
    {
    }

    /// <summary>Creates an exception about <paramref name="field"/> of <paramref name="tensorName"/> in <paramref name="path"/>.</summary>
    /// <param name="path">The file.</param>
    /// <param name="tensorName">The tensor concerned, or null for file- and header-level faults.</param>
    /// <param name="field">The field at fault, e.g. <c>data_offsets</c>, <c>shape</c>, <c>header length</c>.</param>
    /// <param name="detail">What is wrong.</param>
    /// <param name="innerException">The exception that revealed the fault, if any.</param>
    public SafetensorsException(string path, string? tensorName, string field, string detail, Exception? innerException = null)
        : base(Format(path, tensorName, field, detail), innerException)
    {
        Path = path;
        TensorName = tensorName;
        Field = field;
    }

    /// <summary>The file at fault.</summary>
    public string? Path { get; }

    /// <summary>The tensor at fault, or null for file- and header-level faults.</summary>
    public string? TensorName { get; }

    /// <summary>The header field at fault.</summary>
    public new string? Field { get; }

    private static string Format(string path, string? tensorName, string field, string detail) =>
        tensorName is null
            ? $"safetensors file '{path}': {field}: {detail}"
            : $"safetensors file '{path}': tensor '{tensorName}': {field}: {detail}";
}
