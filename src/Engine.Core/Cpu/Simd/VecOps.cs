using System.Runtime.CompilerServices;

namespace Engine.Core.Cpu.Simd;

/// <summary>
/// Row reductions written once for every width. Each needs n ≥ V.Count; the elements past the last full vector are
/// read by one overlapping vector at n − V.Count whose already-counted lanes are masked out.
/// </summary>
internal static unsafe class VecOps
{
    /// <summary>Σ x[i].</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Sum<V>(float* x, int n)
        where V : unmanaged, IVec<V>
    {
        var zero = V.Create(0f);
        V acc0 = zero, acc1 = zero;
        int i = 0;
        for (; i <= n - (2 * V.Count); i += 2 * V.Count)
        {
            acc0 += V.Load(x + i);
            acc1 += V.Load(x + i + V.Count);
        }

        if (i <= n - V.Count)
        {
            acc0 += V.Load(x + i);
            i += V.Count;
        }

        if (i < n)
        {
            acc1 += V.Select(V.TailMask(n - i), V.Load(x + n - V.Count), zero);
        }

        return V.Sum(acc0 + acc1);
    }

    /// <summary>Σ (x[i] − center)².</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float SumSquaredDeviations<V>(float* x, int n, float center)
        where V : unmanaged, IVec<V>
    {
        var zero = V.Create(0f);
        var c = V.Create(center);
        V acc0 = zero, acc1 = zero;
        int i = 0;
        for (; i <= n - (2 * V.Count); i += 2 * V.Count)
        {
            var d0 = V.Load(x + i) - c;
            var d1 = V.Load(x + i + V.Count) - c;
            acc0 = V.MulAdd(d0, d0, acc0);
            acc1 = V.MulAdd(d1, d1, acc1);
        }

        if (i <= n - V.Count)
        {
            var d = V.Load(x + i) - c;
            acc0 = V.MulAdd(d, d, acc0);
            i += V.Count;
        }

        if (i < n)
        {
            var d = V.Select(V.TailMask(n - i), V.Load(x + n - V.Count) - c, zero);
            acc1 = V.MulAdd(d, d, acc1);
        }

        return V.Sum(acc0 + acc1);
    }

    /// <summary>Σ a[i]·b[i].</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Dot<V>(float* a, float* b, int n)
        where V : unmanaged, IVec<V>
    {
        var zero = V.Create(0f);
        V acc0 = zero, acc1 = zero;
        int i = 0;
        for (; i <= n - (2 * V.Count); i += 2 * V.Count)
        {
            acc0 = V.MulAdd(V.Load(a + i), V.Load(b + i), acc0);
            acc1 = V.MulAdd(V.Load(a + i + V.Count), V.Load(b + i + V.Count), acc1);
        }

        if (i <= n - V.Count)
        {
            acc0 = V.MulAdd(V.Load(a + i), V.Load(b + i), acc0);
            i += V.Count;
        }

        if (i < n)
        {
            int at = n - V.Count;
            acc1 = V.MulAdd(V.Select(V.TailMask(n - i), V.Load(a + at), zero), V.Load(b + at), acc1);
        }

        return V.Sum(acc0 + acc1);
    }

    /// <summary>max x[i].</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Max<V>(float* x, int n)
        where V : unmanaged, IVec<V>
    {
        // The overlapping tail needs no mask: counting an element twice does not change a maximum.
        V acc0 = V.Load(x), acc1 = V.Load(x + n - V.Count);
        int i = 0;
        for (; i <= n - (2 * V.Count); i += 2 * V.Count)
        {
            acc0 = V.Max(acc0, V.Load(x + i));
            acc1 = V.Max(acc1, V.Load(x + i + V.Count));
        }

        if (i <= n - V.Count)
        {
            acc0 = V.Max(acc0, V.Load(x + i));
        }

        return V.MaxAcross(V.Max(acc0, acc1));
    }

    /// <summary>
    /// Σ exp(x[i] − shift); when <paramref name="store"/> is not null it also receives exp(x[i] − shift)
    /// (it may be <paramref name="x"/> itself).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float SumExp<V>(float* x, int n, float shift, float* store)
        where V : unmanaged, IVec<V>
    {
        var zero = V.Create(0f);
        var s = V.Create(shift);
        V acc0 = zero, acc1 = zero;
        int i = 0;
        for (; i <= n - (2 * V.Count); i += 2 * V.Count)
        {
            var e0 = V.Exp(V.Load(x + i) - s);
            var e1 = V.Exp(V.Load(x + i + V.Count) - s);
            acc0 += e0;
            acc1 += e1;
            if (store != null)
            {
                V.Store(store + i, e0);
                V.Store(store + i + V.Count, e1);
            }
        }

        if (i <= n - V.Count)
        {
            var e = V.Exp(V.Load(x + i) - s);
            acc0 += e;
            if (store != null)
            {
                V.Store(store + i, e);
            }

            i += V.Count;
        }

        if (i < n)
        {
            // Lanes below the mask were stored already (and, in place, overwritten): keep them as they are.
            int at = n - V.Count;
            var mask = V.TailMask(n - i);
            var e = V.Select(mask, V.Exp(V.Load(x + at) - s), zero);
            acc1 += e;
            if (store != null)
            {
                V.Store(store + at, V.Select(mask, e, V.Load(store + at)));
            }
        }

        return V.Sum(acc0 + acc1);
    }
}
