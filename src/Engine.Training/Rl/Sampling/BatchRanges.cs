namespace Engine.Training.Rl.Sampling;

/// <summary>The rows of a batch cut into consecutive passes of at most a given size (0 or less = one pass of all).</summary>
internal static class BatchRanges
{
    /// <summary>(start, count) of each pass over <paramref name="total"/> rows, <paramref name="rowsPerPass"/> at a time.</summary>
    public static IEnumerable<(int Start, int Count)> Of(int total, int rowsPerPass)
    {
        int chunk = rowsPerPass > 0 ? rowsPerPass : Math.Max(1, total);
        for (int start = 0; start < total; start += chunk)
        {
            yield return (start, Math.Min(chunk, total - start));
        }
    }
}
