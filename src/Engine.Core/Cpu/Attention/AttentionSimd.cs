using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

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
            for (; c <= n - 64; c += 64)
            {
                var y0 = Vector512.Load(y + c);
                var y1 = Vector512.Load(y + c + 16);
                var y2 = Vector512.Load(y + c + 32);
                var y3 = Vector512.Load(y + c + 48);
                float* r = rows + c;
                for (int j = 0; j < count; j++, r += stride)
                {
                    var wj = Vector512.Create(w[j * wStride]);
                    y0 = Vector512.MultiplyAddEstimate(wj, Vector512.Load(r), y0);
                    y1 = Vector512.MultiplyAddEstimate(wj, Vector512.Load(r + 16), y1);
                    y2 = Vector512.MultiplyAddEstimate(wj, Vector512.Load(r + 32), y2);
                    y3 = Vector512.MultiplyAddEstimate(wj, Vector512.Load(r + 48), y3);
                }

                y0.Store(y + c);
                y1.Store(y + c + 16);
                y2.Store(y + c + 32);
                y3.Store(y + c + 48);
            }

            for (; c <= n - 16; c += 16)
            {
                var y0 = Vector512.Load(y + c);
                float* r = rows + c;
                for (int j = 0; j < count; j++, r += stride)
                {
                    y0 = Vector512.MultiplyAddEstimate(Vector512.Create(w[j * wStride]), Vector512.Load(r), y0);
                }

                y0.Store(y + c);
            }
        }
        else
        {
            for (; c <= n - 32; c += 32)
            {
                var y0 = Vector256.Load(y + c);
                var y1 = Vector256.Load(y + c + 8);
                var y2 = Vector256.Load(y + c + 16);
                var y3 = Vector256.Load(y + c + 24);
                float* r = rows + c;
                for (int j = 0; j < count; j++, r += stride)
                {
                    var wj = Vector256.Create(w[j * wStride]);
                    y0 = Vector256.MultiplyAddEstimate(wj, Vector256.Load(r), y0);
                    y1 = Vector256.MultiplyAddEstimate(wj, Vector256.Load(r + 8), y1);
                    y2 = Vector256.MultiplyAddEstimate(wj, Vector256.Load(r + 16), y2);
                    y3 = Vector256.MultiplyAddEstimate(wj, Vector256.Load(r + 24), y3);
                }

                y0.Store(y + c);
                y1.Store(y + c + 8);
                y2.Store(y + c + 16);
                y3.Store(y + c + 24);
            }
        }

        for (; c <= n - 8; c += 8)
        {
            var y0 = Vector256.Load(y + c);
            float* r = rows + c;
            for (int j = 0; j < count; j++, r += stride)
            {
                y0 = Vector256.MultiplyAddEstimate(Vector256.Create(w[j * wStride]), Vector256.Load(r), y0);
            }

            y0.Store(y + c);
        }

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
}
