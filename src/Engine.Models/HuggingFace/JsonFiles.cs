using System.Text.Json;

namespace Engine.Models.HuggingFace;

/// <summary>Reading the small JSON files of a checkpoint directory with a size and depth limit, so a hostile file fails fast.</summary>
internal static class JsonFiles
{
    /// <summary>
    /// Parses <paramref name="path"/>; a file over <paramref name="maxBytes"/> or JSON that is invalid or nested deeper than
    /// <paramref name="maxDepth"/> throws <see cref="InvalidDataException"/> naming the file (and the line for bad JSON).
    /// </summary>
    public static JsonDocument Read(string path, long maxBytes, int maxDepth, string what)
    {
        long length = new FileInfo(path).Length;
        if (length > maxBytes)
        {
            throw new InvalidDataException($"{path}: {length} bytes is too large for {what} (limit {maxBytes})");
        }

        try
        {
            return JsonDocument.Parse(File.ReadAllBytes(path), new JsonDocumentOptions { MaxDepth = maxDepth });
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{path}: not valid JSON (line {e.LineNumber + 1}): {e.Message}", e);
        }
    }
}
