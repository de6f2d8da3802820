namespace Engine.Core.Numerics;

/// <summary>
/// A seeded xoshiro256** generator: the same seed gives the same numbers on every machine and .NET version,
/// which <see cref="System.Random"/> does not promise. Used for weight initialisation, sampling and shuffling.
/// </summary>
public sealed class RandomStream
{
    private ulong s0, s1, s2, s3;

    /// <summary>Seeds the four words of state from <paramref name="seed"/> with SplitMix64.</summary>
    public RandomStream(ulong seed)
    {
        s0 = SplitMix(ref seed);
        s1 = SplitMix(ref seed);
        s2 = SplitMix(ref seed);
        s3 = SplitMix(ref seed);
    }

    /// <summary>The full state, for checkpoints.</summary>
    public (ulong, ulong, ulong, ulong) State
    {
        get => (s0, s1, s2, s3);
        set => (s0, s1, s2, s3) = value;
    }

    /// <summary>The next 64 random bits.</summary>
    public ulong NextUInt64()
    {
        ulong result = RotateLeft(s1 * 5, 7) * 9;
        ulong t = s1 << 17;
        s2 ^= s0;
        s3 ^= s1;
        s1 ^= s2;
        s0 ^= s3;
        s2 ^= t;
        s3 = RotateLeft(s3, 45);
        return result;
    }

    /// <summary>Uniform double in [0, 1) with 53 random bits.</summary>
    public double NextDouble() => (NextUInt64() >> 11) * (1.0 / (1UL << 53));

    /// <summary>Uniform integer in [0, <paramref name="maxExclusive"/>).</summary>
    public int NextInt(int maxExclusive)
    {
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(maxExclusive, 0);
        return (int)((NextUInt64() >> 32) * (ulong)maxExclusive >> 32);
    }

    /// <summary>Standard normal sample (Box–Muller, one of the pair).</summary>
    public double NextNormal()
    {
        double u1 = 1.0 - NextDouble();
        double u2 = NextDouble();
        return Math.Sqrt(-2.0 * Math.Log(u1)) * Math.Cos(2.0 * Math.PI * u2);
    }

    /// <summary>Fills <paramref name="values"/> with normal samples of the given standard deviation.</summary>
    public void FillNormal(Span<float> values, double std)
    {
        for (int i = 0; i < values.Length; i++)
        {
            values[i] = (float)(NextNormal() * std);
        }
    }

    private static ulong RotateLeft(ulong x, int k) => (x << k) | (x >> (64 - k));

    private static ulong SplitMix(ref ulong x)
    {
        ulong z = x += 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }
}
