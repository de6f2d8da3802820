using System.Runtime.CompilerServices;

namespace Engine.Core.Tensors;

/// <summary>
/// A tensor shape of rank 0 to 4, stored inline (no allocation). Row-major: the last dimension is contiguous.
/// </summary>
public readonly struct Shape : IEquatable<Shape>
{
    /// <summary>Largest supported rank.</summary>
    public const int MaxRank = 4;

    private readonly Dims dims;

    /// <summary>Number of dimensions.</summary>
    public int Rank { get; }

    /// <summary>Creates a shape from its dimensions; each must be non-negative.</summary>
    public Shape(params ReadOnlySpan<long> dimensions)
    {
        if (dimensions.Length > MaxRank)
        {
            throw new ArgumentException($"rank {dimensions.Length} exceeds the maximum of {MaxRank}", nameof(dimensions));
        }

        Rank = dimensions.Length;
        for (int i = 0; i < dimensions.Length; i++)
        {
            if (dimensions[i] < 0)
            {
                throw new ArgumentException($"dimension {i} is negative ({dimensions[i]})", nameof(dimensions));
            }

            dims[i] = dimensions[i];
        }
    }

    /// <summary>The size of dimension <paramref name="axis"/>; negative axes count from the end.</summary>
    public long this[int axis]
    {
        get
        {
            int a = axis < 0 ? axis + Rank : axis;
            if ((uint)a >= (uint)Rank)
            {
                throw new ArgumentOutOfRangeException(nameof(axis), $"axis {axis} is out of range for rank {Rank}");
            }

            return dims[a];
        }
    }

    /// <summary>Total number of elements (1 for rank 0).</summary>
    public long ElementCount
    {
        get
        {
            long n = 1;
            for (int i = 0; i < Rank; i++)
            {
                n = checked(n * dims[i]);
            }

            return n;
        }
    }

    /// <summary>Number of rows when the tensor is viewed as a matrix [rows, last dimension].</summary>
    public long Rows => Rank == 0 ? 1 : ElementCount / Math.Max(1, dims[Rank - 1]);

    /// <summary>Size of the last dimension (1 for rank 0).</summary>
    public long Last => Rank == 0 ? 1 : dims[Rank - 1];

    /// <inheritdoc/>
    public bool Equals(Shape other)
    {
        if (Rank != other.Rank)
        {
            return false;
        }

        for (int i = 0; i < Rank; i++)
        {
            if (dims[i] != other.dims[i])
            {
                return false;
            }
        }

        return true;
    }

    /// <inheritdoc/>
    public override bool Equals(object? obj) => obj is Shape s && Equals(s);

    /// <inheritdoc/>
    public override int GetHashCode()
    {
        var h = new HashCode();
        h.Add(Rank);
        for (int i = 0; i < Rank; i++)
        {
            h.Add(dims[i]);
        }

        return h.ToHashCode();
    }

    /// <summary>Equality of rank and every dimension.</summary>
    public static bool operator ==(Shape a, Shape b) => a.Equals(b);

    /// <summary>Inequality of rank or some dimension.</summary>
    public static bool operator !=(Shape a, Shape b) => !a.Equals(b);

    /// <summary>Formats as <c>[2, 3, 4]</c>.</summary>
    public override string ToString()
    {
        var parts = new string[Rank];
        for (int i = 0; i < Rank; i++)
        {
            parts[i] = dims[i].ToString(System.Globalization.CultureInfo.InvariantCulture);
        }

        return "[" + string.Join(", ", parts) + "]";
    }

    [InlineArray(MaxRank)]
    private struct Dims
    {
        private long element0;
    }
}
