using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace Engine.Core.Cpu.Attention;

/// <summary>
/// Short-vector primitives of the attention kernels (lengths are a head size or a key tile, tens of elements), with an
/// AVX-512 path and a 256-bit path. Every routine reduces in an order fixed by its length alone, never by the address or
/// the calling thread, which is what keeps the kernels bit-identical for any thread count.
/// </summary>
internal static unsafe class AttentionSimd
{
    /// <summary>Widest vector the routines use, in floats; key tiles are padded to a multiple of it.</summary>
    internal static int Width => Vector512.IsHardwareAccelerated ? Vector512<float>.Count : Vector256<float>.Count;

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

    /// <summary>y[i] += alpha·x[i].</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void Axpy(float* y, float alpha, float* x, int n)
    {
        int i = 0;
        if (Vector512.IsHardwareAccelerated)
        {
            var va = Vector512.Create(alpha);
            for (; i <= n - 16; i += 16)
            {
                Vector512.MultiplyAddEstimate(va, Vector512.Load(x + i), Vector512.Load(y + i)).Store(y + i);
            }
        }

        var wa = Vector256.Create(alpha);
        for (; i <= n - 8; i += 8)
        {
            Vector256.MultiplyAddEstimate(wa, Vector256.Load(x + i), Vector256.Load(y + i)).Store(y + i);
        }

        for (; i < n; i++)
        {
            y[i] += alpha * x[i];
        }
    }

    /// <summary>y[i] *= alpha.</summary>
    internal static void Scale(float* y, float alpha, int n)
    {
        int i = 0;
        var wa = Vector256.Create(alpha);
        for (; i <= n - 8; i += 8)
        {
            (Vector256.Load(y + i) * wa).Store(y + i);
        }

        for (; i < n; i++)
        {
            y[i] *= alpha;
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
    /// y[c] += Σ_j w[j]·rows[j·stride + c] for c &lt; n: a weighted sum of <paramref name="count"/> rows (P·V, dS·K).
    /// Four vectors of y stay in registers across the whole row loop, so four independent FMA chains hide latency.
    /// </summary>
    internal static void AccumulateRows(float* y, float* w, float* rows, long stride, int count, int n)
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
                    var wj = Vector512.Create(w[j]);
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
                    y0 = Vector512.MultiplyAddEstimate(Vector512.Create(w[j]), Vector512.Load(r), y0);
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
                    var wj = Vector256.Create(w[j]);
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
                y0 = Vector256.MultiplyAddEstimate(Vector256.Create(w[j]), Vector256.Load(r), y0);
            }

            y0.Store(y + c);
        }

        for (; c < n; c++)
        {
            float acc = y[c];
            float* r = rows + c;
            for (int j = 0; j < count; j++, r += stride)
            {
                acc += w[j] * *r;
            }

            y[c] = acc;
        }
    }

    /// <summary>max_i x[i] over n ≥ 1 elements; <paramref name="x"/> must have room for n rounded up to <see cref="Width"/>.</summary>
    internal static float Max(float* x, int n)
    {
        if (Vector512.IsHardwareAccelerated)
        {
            var m = Vector512.Create(float.NegativeInfinity);
            for (int i = 0; i < n; i += 16)
            {
                var v = Vector512.Load(x + i);
                if (n - i < 16)
                {
                    v = Vector512.ConditionalSelect(TailMask512(n - i), v, Vector512.Create(float.NegativeInfinity));
                }

                m = Vector512.Max(m, v);
            }

            return MaxAcross(Vector256.Max(m.GetLower(), m.GetUpper()));
        }
        else
        {
            var m = Vector256.Create(float.NegativeInfinity);
            for (int i = 0; i < n; i += 8)
            {
                var v = Vector256.Load(x + i);
                if (n - i < 8)
                {
                    v = Vector256.ConditionalSelect(TailMask256(n - i), v, Vector256.Create(float.NegativeInfinity));
                }

                m = Vector256.Max(m, v);
            }

            return MaxAcross(m);
        }
    }

    /// <summary>
    /// x[i] ← exp(x[i] − shift) for i &lt; n and returns Σ of the new values; lanes from n up to the next multiple of
    /// <see cref="Width"/> are set to zero (so <paramref name="x"/> needs that room).
    /// </summary>
    internal static float ExpShifted(float* x, int n, float shift)
    {
        if (Vector512.IsHardwareAccelerated)
        {
            var s = Vector512.Create(shift);
            var sum = Vector512<float>.Zero;
            for (int i = 0; i < n; i += 16)
            {
                var e = Vector512.Exp(Vector512.Load(x + i) - s);
                if (n - i < 16)
                {
                    e = Vector512.ConditionalSelect(TailMask512(n - i), e, Vector512<float>.Zero);
                }

                e.Store(x + i);
                sum += e;
            }

            return Vector512.Sum(sum);
        }
        else
        {
            var s = Vector256.Create(shift);
            var sum = Vector256<float>.Zero;
            for (int i = 0; i < n; i += 8)
            {
                var e = Vector256.Exp(Vector256.Load(x + i) - s);
                if (n - i < 8)
                {
                    e = Vector256.ConditionalSelect(TailMask256(n - i), e, Vector256<float>.Zero);
                }

                e.Store(x + i);
                sum += e;
            }

            return Vector256.Sum(sum);
        }
    }

    private static Vector512<float> TailMask512(int remaining) =>
        Vector512.LessThan(Vector512<int>.Indices, Vector512.Create(remaining)).AsSingle();

    private static Vector256<float> TailMask256(int remaining) =>
        Vector256.LessThan(Vector256<int>.Indices, Vector256.Create(remaining)).AsSingle();

    private static float MaxAcross(Vector256<float> m)
    {
        var h = Vector128.Max(m.GetLower(), m.GetUpper());
        return MathF.Max(MathF.Max(h.GetElement(0), h.GetElement(1)), MathF.Max(h.GetElement(2), h.GetElement(3)));
    }
}
