using Engine.Core.Tensors;

namespace Engine.Core.Cpu;

/// <summary>
/// How a row-wise op over a [N, C] tensor is split into work items: fixed runs of rows of about one
/// <see cref="CpuBackend.ElementChunk"/> of elements each. The split depends only on the shape, never on the thread
/// count, which is what keeps reductions over rows bit-identical for any number of threads.
/// </summary>
internal struct RowChunks
{
    /// <summary>N, the number of rows.</summary>
    public long Rows;

    /// <summary>C, the row length.</summary>
    public int C;

    /// <summary>Rows per work item.</summary>
    public int RowsPerItem;

    /// <summary>Number of work items.</summary>
    public int Items;

    /// <summary>The split of <paramref name="tensor"/> viewed as [rows, last dimension].</summary>
    public static RowChunks Of(Tensor tensor) => Of(tensor.Shape.Rows, tensor.Shape.Last);

    /// <summary>The split of <paramref name="rows"/> rows of <paramref name="columns"/> elements.</summary>
    public static RowChunks Of(long rows, long columns)
    {
        int c = checked((int)columns);
        int perItem = PerItem(c);
        return new RowChunks
        {
            Rows = rows, C = c, RowsPerItem = perItem, Items = c == 0 ? 0 : checked((int)((rows + perItem - 1) / perItem)),
        };
    }

    /// <summary>Rows per work item for rows of <paramref name="c"/> elements.</summary>
    public static int PerItem(long c) => (int)Math.Max(1, CpuBackend.ElementChunk / Math.Max(1, c));

    /// <summary>The rows [First, End) of work item <paramref name="item"/>.</summary>
    public readonly (long First, long End) Range(int item)
    {
        long first = (long)item * RowsPerItem;
        return (first, Math.Min(Rows, first + RowsPerItem));
    }
}
