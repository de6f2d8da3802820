namespace Engine.Training.Data;

/// <summary>How SFT examples are assigned to packed rows (<see cref="CollatorOptions.Packing"/>).</summary>
public enum PackingStrategy
{
    /// <summary>
    /// Best-fit decreasing (TRL's <c>bfd</c>): examples longest first, each into the row whose free space is the
    /// smallest that still holds it, a new row when none does. Rows come out nearly full, so little padding is trained on.
    /// </summary>
    Bfd,

    /// <summary>In data order: an example goes into the current row if it fits, else starts the next one.</summary>
    Sequential,
}

/// <summary>Best-fit-decreasing bin packing of sequence lengths into rows of a fixed capacity.</summary>
public static class BestFitDecreasing
{
    /// <summary>
    /// Rows of item indices: items sorted by length, longest first (ties in their given order), each placed in the open
    /// row with the least free space that fits it, else in a new row. Rows are returned in the order they were opened, and
    /// within a row items keep the order they were placed in. O(n log n).
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">A length is not in [1, <paramref name="capacity"/>].</exception>
    public static List<List<int>> Pack(IReadOnlyList<int> lengths, int capacity)
    {
        ArgumentNullException.ThrowIfNull(lengths);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(capacity);
        var order = Enumerable.Range(0, lengths.Count).OrderByDescending(i => lengths[i]).ToArray();
        var rows = new List<List<int>>();

        // Open rows by (free space, row index): the first entry at or above a length is the best fit.
        var free = new SortedSet<(int Free, int Row)>();
        foreach (int item in order)
        {
            int length = lengths[item];
            if (length < 1 || length > capacity)
            {
                throw new ArgumentOutOfRangeException(nameof(lengths), $"item {item} has length {length}, outside [1, {capacity}]");
            }

            // An empty view's Min is (0, 0), which no open row that fits can be (its free space is at least length ≥ 1).
            var best = free.GetViewBetween((length, int.MinValue), (capacity, int.MaxValue)).Min;
            if (best.Free >= length)
            {
                free.Remove(best);
                rows[best.Row].Add(item);
                free.Add((best.Free - length, best.Row));
            }
            else
            {
                rows.Add([item]);
                free.Add((capacity - length, rows.Count - 1));
            }
        }

        return rows;
    }
}
