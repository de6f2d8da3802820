namespace Engine.Core.Tensors;

/// <summary>Thread-safe live and peak byte counts of one kind of allocation, so leaks show up in tests.</summary>
public sealed class MemoryCounter
{
    private long live;
    private long peak;

    /// <summary>Bytes currently allocated.</summary>
    public long LiveBytes => Volatile.Read(ref live);

    /// <summary>Largest value <see cref="LiveBytes"/> has reached.</summary>
    public long PeakBytes => Volatile.Read(ref peak);

    /// <summary>Records an allocation of <paramref name="bytes"/> and raises the peak if needed.</summary>
    public void Allocated(long bytes)
    {
        long now = Interlocked.Add(ref live, bytes);
        long p;
        while (now > (p = Volatile.Read(ref peak)) && Interlocked.CompareExchange(ref peak, now, p) != p)
        {
        }
    }

    /// <summary>Records that <paramref name="bytes"/> were freed.</summary>
    public void Freed(long bytes) => Interlocked.Add(ref live, -bytes);
}
