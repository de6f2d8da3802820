using Engine.Core.Tensors;

namespace Engine.Core.Backends;

// Column blocks of row-major matrices: a fused projection's output holds several logical outputs side by side
// (q|k|v, gate|up), and a per-block op (a LoRA adapter on q_proj only) reads or writes one block of columns.
public abstract partial class Backend
{
    /// <summary>
    /// Copies a block of columns between two [N, ·] matrices: dst[n, dstColumn + j] = src[n, srcColumn + j] for
    /// j &lt; width, or adds into dst when <paramref name="accumulate"/> is set. Both tensors are 2-D with the same N rows.
    /// </summary>
    public void CopyColumns(Tensor destination, int destinationColumn, Tensor source, int sourceColumn, int width, bool accumulate)
    {
        RequireF32(destination, nameof(destination), rank: 2);
        RequireF32(source, nameof(source), rank: 2);
        if (destination.Shape[0] != source.Shape[0])
        {
            throw new ArgumentException($"column copy needs the same rows: {destination.Shape} and {source.Shape}");
        }

        if (width < 0 || destinationColumn < 0 || sourceColumn < 0
            || destinationColumn + (long)width > destination.Shape[1] || sourceColumn + (long)width > source.Shape[1])
        {
            throw new ArgumentOutOfRangeException(
                nameof(width), $"columns [{sourceColumn}, +{width}) of {source.Shape} to [{destinationColumn}, +{width}) of {destination.Shape} are out of range");
        }

        CopyColumnsCore(destination, destinationColumn, source, sourceColumn, width, accumulate);
    }

    /// <summary>Backend implementation of <see cref="CopyColumns"/> (arguments already checked).</summary>
    protected abstract void CopyColumnsCore(Tensor destination, int destinationColumn, Tensor source, int sourceColumn, int width, bool accumulate);
}
