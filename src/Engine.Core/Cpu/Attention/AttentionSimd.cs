using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using Engine.Core.Cpu.Simd;

namespace Engine.Core.Cpu.Attention;

/// <summary>
/// Primitives over a head-size row (tens of floats) for the attention kernels, with an AVX-512 path and a 256-bit path. Every routine reduces in an order fixed by its length alone, never by the address or
/// the calling thread, which is what keeps the kernels bit-identical for any thread count.
/// </summary>
internal static unsafe class AttentionSimd
{
    /// <summary>Σ a[i]·b[i].</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static float Dot(float* a, float* b, int n)
    {
        int i = 0;
        float sum = 0f;
        if (Vector512.IsHardwareAccelerated && n >= Vector512<float>.Count)
        {
            var acc0 = Vector512<float>.Zero;
            var acc1 = Vector512<float>.Zero;
            for (; i <= n - 32; i += 32)
            {
                acc0 = Vector512.MultiplyAddEstimate(Vector512.Load(a + i), Vector512.Load(b + i), acc0);
                acc1 = Vector512.MultiplyAddEstimate(Vector512.Load(a + i + 16), Vector512.Load(b + i + 16), acc1);
            }

            if (i <= n - 16)
            {
                acc0 = Vector512.MultiplyAddEstimate(Vector512.Load(a + i), Vector512.Load(b + i), acc0);
                i += 16;
            }

            sum = Vector512.Sum(acc0 + acc1);
        }
        else if (n >= Vector256<float>.Count)
        {
            var acc0 = Vector256<float>.Zero;
            var acc1 = Vector256<float>.Zero;
            for (; i <= n - 16; i += 16)
            {
                acc0 = Vector256.MultiplyAddEstimate(Vector256.Load(a + i), Vector256.Load(b + i), acc0);
                acc1 = Vector256.MultiplyAddEstimate(Vector256.Load(a + i + 8), Vector256.Load(b + i + 8), acc1);
            }

            if (i <= n - 8)
            {
                acc0 = Vector256.MultiplyAddEstimate(Vector256.Load(a + i), Vector256.Load(b + i), acc0);
                i += 8;
            }

            sum = Vector256.Sum(acc0 + acc1);
        }

        for (; i < n; i++)
        {
            sum += a[i] * b[i];
        }

        return sum;
    }

    /// <summary>y[i] += x[i].</summary>
    internal static void Add(float* y, float* x, int n)
    {
        int i = 0;
        for (; i <= n - 8; i += 8)
        {
            (Vector256.Load(y + i) + Vector256.Load(x + i)).Store(y + i);
        }

        for (; i < n; i++)
        {
            y[i] += x[i];
        }
    }

    /// <summary>y[i] = alpha·x[i].</summary>
    internal static void ScaleTo(float* y, float alpha, float* x, int n)
    {
        int i = 0;
        var wa = Vector256.Create(alpha);
        for (; i <= n - 8; i += 8)
        {
            (Vector256.Load(x + i) * wa).Store(y + i);
        }

        for (; i < n; i++)
        {
            y[i] = alpha * x[i];
        }
    }

    /// <summary>
    /// y[c] += Σ_j w[j·wStride]·rows[j·stride + c] for c &lt; n: a weighted sum of <paramref name="count"/> rows
    /// (P·V, dS·K, dSᵀ·Q). Four vectors of y stay in registers across the whole row loop, so four independent FMA
    /// chains hide latency.
    /// </summary>
    internal static void AccumulateRows(float* y, float* w, int wStride, float* rows, long stride, int count, int n)
    {
        int c = 0;
        if (Vector512.IsHardwareAccelerated)
        {
            c = AccumulateRowBlocks<V512>(y, w, wStride, rows, stride, count, n, c);
            c = AccumulateRowVectors<V512>(y, w, wStride, rows, stride, count, n, c);
        }
        else
        {
            c = AccumulateRowBlocks<V256>(y, w, wStride, rows, stride, count, n, c);
        }

        c = AccumulateRowVectors<V256>(y, w, wStride, rows, stride, count, n, c);
        for (; c < n; c++)
        {
            float acc = y[c];
            float* r = rows + c;
            for (int j = 0; j < count; j++, r += stride)
            {
                acc += w[j * wStride] * *r;
            }

            y[c] = acc;
        }
    }

    // AccumulateRows over blocks of four vectors from column c on; returns the first column not done.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int AccumulateRowBlocks<V>(float* y, float* w, int wStride, float* rows, long stride, int count, int n, int c)
        where V : unmanaged, IVec<V>
    {
        int lanes = V.Count;
        for (; c <= n - (4 * lanes); c += 4 * lanes)
        {
            var y0 = V.Load(y + c);
            var y1 = V.Load(y + c + lanes);
            var y2 = V.Load(y + c + (2 * lanes));
            var y3 = V.Load(y + c + (3 * lanes));
            float* r = rows + c;
            for (int j = 0; j < count; j++, r += stride)
            {
                var wj = V.Create(w[j * wStride]);
                y0 = V.MulAdd(wj, V.Load(r), y0);
                y1 = V.MulAdd(wj, V.Load(r + lanes), y1);
                y2 = V.MulAdd(wj, V.Load(r + (2 * lanes)), y2);
                y3 = V.MulAdd(wj, V.Load(r + (3 * lanes)), y3);
            }

            V.Store(y + c, y0);
            V.Store(y + c + lanes, y1);
            V.Store(y + c + (2 * lanes), y2);
            V.Store(y + c + (3 * lanes), y3);
        }

        return c;
    }

    // AccumulateRows one vector at a time from column c on; returns the first column not done.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int AccumulateRowVectors<V>(float* y, float* w, int wStride, float* rows, long stride, int count, int n, int c)
        where V : unmanaged, IVec<V>
    {
        for (; c <= n - V.Count; c += V.Count)
        {
            var y0 = V.Load(y + c);
            float* r = rows + c;
            for (int j = 0; j < count; j++, r += stride)
            {
                y0 = V.MulAdd(V.Create(w[j * wStride]), V.Load(r), y0);
            }

            V.Store(y + c, y0);
        }

        return c;
    }
}
