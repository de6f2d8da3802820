using System.Text.Json;
using Engine.Core;
using Engine.Core.IO;

namespace Engine.Models.HuggingFace;

/// <summary>Reading the small JSON files of a checkpoint directory with a size and depth limit, so a hostile file fails fast.</summary>
internal static class JsonFiles
{
    /// <summary>
    /// Parses <paramref name="path"/>; a file over <paramref name="maxBytes"/> or JSON that is invalid or nested deeper than
    /// <paramref name="maxDepth"/> throws <see cref="InputException"/> naming the file (and the line for bad JSON).
    /// </summary>
    public static JsonDocument Read(string path, long maxBytes, int maxDepth, string what)
    {
        byte[] bytes = InputFiles.ReadAllBytes(path, maxBytes, what);
        try
        {
            return JsonDocument.Parse(bytes, new JsonDocumentOptions { MaxDepth = maxDepth });
        }
        catch (JsonException e)
        {
            throw new InputException(path, e.LineNumber + 1, null, $"{what} is not valid JSON: {e.Message}", e);
        }
    }
}
