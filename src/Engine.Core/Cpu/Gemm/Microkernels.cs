// The three kernels follow one pattern (rows unrolled, each guarded by TRows.Count so an instantiation keeps only its
// rows); change them together.
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Engine.Core.Cpu.Gemm;

/// <summary>
/// Register-blocked GEMM microkernels: C[rows, NR] (op)= α·Σ_k a[k,·]ᵀ·b[k,·] over packed panels, where a holds MR values per k
/// (one per row, padded) and b holds NR values per k (one per column, padded). Each accumulator sums its k terms in
/// increasing k with one FMA per term, so a C element's value does not depend on which tile or thread computed it.
/// The row count is a type parameter so edge panels of fewer than MR rows run exactly the work they need.
/// </summary>
internal static unsafe class Microkernels
{
    /// <summary>AVX-512F: a 12×32 tile in 24 zmm accumulators, two B vectors and one broadcast per k (27 of 32 registers).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static void Avx512<TRows>(int kc, float* a, float* b, float* c, nint ldc, in Epilogue epilogue)
        where TRows : struct, IRowCount
    {
        // Start fetching the C rows now: their lines arrive while the k loop runs instead of stalling the write-back.
        Sse.Prefetch0(c + 0);
        Sse.Prefetch0(c + 16);
        Sse.Prefetch0(c + 31);
        if (TRows.Count > 1)
        {
            Sse.Prefetch0(c + (1 * ldc) + 0);
            Sse.Prefetch0(c + (1 * ldc) + 16);
            Sse.Prefetch0(c + (1 * ldc) + 31);
        }
        if (TRows.Count > 2)
        {
            Sse.Prefetch0(c + (2 * ldc) + 0);
            Sse.Prefetch0(c + (2 * ldc) + 16);
            Sse.Prefetch0(c + (2 * ldc) + 31);
        }
        if (TRows.Count > 3)
        {
            Sse.Prefetch0(c + (3 * ldc) + 0);
            Sse.Prefetch0(c + (3 * ldc) + 16);
            Sse.Prefetch0(c + (3 * ldc) + 31);
        }
        if (TRows.Count > 4)
        {
            Sse.Prefetch0(c + (4 * ldc) + 0);
            Sse.Prefetch0(c + (4 * ldc) + 16);
            Sse.Prefetch0(c + (4 * ldc) + 31);
        }
        if (TRows.Count > 5)
        {
            Sse.Prefetch0(c + (5 * ldc) + 0);
            Sse.Prefetch0(c + (5 * ldc) + 16);
            Sse.Prefetch0(c + (5 * ldc) + 31);
        }
        if (TRows.Count > 6)
        {
            Sse.Prefetch0(c + (6 * ldc) + 0);
            Sse.Prefetch0(c + (6 * ldc) + 16);
            Sse.Prefetch0(c + (6 * ldc) + 31);
        }
        if (TRows.Count > 7)
        {
            Sse.Prefetch0(c + (7 * ldc) + 0);
            Sse.Prefetch0(c + (7 * ldc) + 16);
            Sse.Prefetch0(c + (7 * ldc) + 31);
        }
        if (TRows.Count > 8)
        {
            Sse.Prefetch0(c + (8 * ldc) + 0);
            Sse.Prefetch0(c + (8 * ldc) + 16);
            Sse.Prefetch0(c + (8 * ldc) + 31);
        }
        if (TRows.Count > 9)
        {
            Sse.Prefetch0(c + (9 * ldc) + 0);
            Sse.Prefetch0(c + (9 * ldc) + 16);
            Sse.Prefetch0(c + (9 * ldc) + 31);
        }
        if (TRows.Count > 10)
        {
            Sse.Prefetch0(c + (10 * ldc) + 0);
            Sse.Prefetch0(c + (10 * ldc) + 16);
            Sse.Prefetch0(c + (10 * ldc) + 31);
        }
        if (TRows.Count > 11)
        {
            Sse.Prefetch0(c + (11 * ldc) + 0);
            Sse.Prefetch0(c + (11 * ldc) + 16);
            Sse.Prefetch0(c + (11 * ldc) + 31);
        }

        Vector512<float> c0a = default, c0b = default, c1a = default, c1b = default, c2a = default, c2b = default, c3a = default, c3b = default, c4a = default, c4b = default, c5a = default, c5b = default, c6a = default, c6b = default, c7a = default, c7b = default, c8a = default, c8b = default, c9a = default, c9b = default, c10a = default, c10b = default, c11a = default, c11b = default;
        for (int k = 0; k < kc; k++)
        {
            Vector512<float> b0 = Vector512.Load(b), b1 = Vector512.Load(b + 16);
            Vector512<float> x;
            x = Vector512.Create(a[0]);
            c0a = Avx512F.FusedMultiplyAdd(x, b0, c0a);
            c0b = Avx512F.FusedMultiplyAdd(x, b1, c0b);
            if (TRows.Count > 1)
            {
                x = Vector512.Create(a[1]);
                c1a = Avx512F.FusedMultiplyAdd(x, b0, c1a);
                c1b = Avx512F.FusedMultiplyAdd(x, b1, c1b);
            }
            if (TRows.Count > 2)
            {
                x = Vector512.Create(a[2]);
                c2a = Avx512F.FusedMultiplyAdd(x, b0, c2a);
                c2b = Avx512F.FusedMultiplyAdd(x, b1, c2b);
            }
            if (TRows.Count > 3)
            {
                x = Vector512.Create(a[3]);
                c3a = Avx512F.FusedMultiplyAdd(x, b0, c3a);
                c3b = Avx512F.FusedMultiplyAdd(x, b1, c3b);
            }
            if (TRows.Count > 4)
            {
                x = Vector512.Create(a[4]);
                c4a = Avx512F.FusedMultiplyAdd(x, b0, c4a);
                c4b = Avx512F.FusedMultiplyAdd(x, b1, c4b);
            }
            if (TRows.Count > 5)
            {
                x = Vector512.Create(a[5]);
                c5a = Avx512F.FusedMultiplyAdd(x, b0, c5a);
                c5b = Avx512F.FusedMultiplyAdd(x, b1, c5b);
            }
            if (TRows.Count > 6)
            {
                x = Vector512.Create(a[6]);
                c6a = Avx512F.FusedMultiplyAdd(x, b0, c6a);
                c6b = Avx512F.FusedMultiplyAdd(x, b1, c6b);
            }
            if (TRows.Count > 7)
            {
                x = Vector512.Create(a[7]);
                c7a = Avx512F.FusedMultiplyAdd(x, b0, c7a);
                c7b = Avx512F.FusedMultiplyAdd(x, b1, c7b);
            }
            if (TRows.Count > 8)
            {
                x = Vector512.Create(a[8]);
                c8a = Avx512F.FusedMultiplyAdd(x, b0, c8a);
                c8b = Avx512F.FusedMultiplyAdd(x, b1, c8b);
            }
            if (TRows.Count > 9)
            {
                x = Vector512.Create(a[9]);
                c9a = Avx512F.FusedMultiplyAdd(x, b0, c9a);
                c9b = Avx512F.FusedMultiplyAdd(x, b1, c9b);
            }
            if (TRows.Count > 10)
            {
                x = Vector512.Create(a[10]);
                c10a = Avx512F.FusedMultiplyAdd(x, b0, c10a);
                c10b = Avx512F.FusedMultiplyAdd(x, b1, c10b);
            }
            if (TRows.Count > 11)
            {
                x = Vector512.Create(a[11]);
                c11a = Avx512F.FusedMultiplyAdd(x, b0, c11a);
                c11b = Avx512F.FusedMultiplyAdd(x, b1, c11b);
            }
            a += 12;
            b += 32;
        }

        StoreAvx512(c + (0 * ldc), c0a, c0b, in epilogue);

        if (TRows.Count > 1)
        {
            StoreAvx512(c + (1 * ldc), c1a, c1b, in epilogue);
        }

        if (TRows.Count > 2)
        {
            StoreAvx512(c + (2 * ldc), c2a, c2b, in epilogue);
        }

        if (TRows.Count > 3)
        {
            StoreAvx512(c + (3 * ldc), c3a, c3b, in epilogue);
        }

        if (TRows.Count > 4)
        {
            StoreAvx512(c + (4 * ldc), c4a, c4b, in epilogue);
        }

        if (TRows.Count > 5)
        {
            StoreAvx512(c + (5 * ldc), c5a, c5b, in epilogue);
        }

        if (TRows.Count > 6)
        {
            StoreAvx512(c + (6 * ldc), c6a, c6b, in epilogue);
        }

        if (TRows.Count > 7)
        {
            StoreAvx512(c + (7 * ldc), c7a, c7b, in epilogue);
        }

        if (TRows.Count > 8)
        {
            StoreAvx512(c + (8 * ldc), c8a, c8b, in epilogue);
        }

        if (TRows.Count > 9)
        {
            StoreAvx512(c + (9 * ldc), c9a, c9b, in epilogue);
        }

        if (TRows.Count > 10)
        {
            StoreAvx512(c + (10 * ldc), c10a, c10b, in epilogue);
        }

        if (TRows.Count > 11)
        {
            StoreAvx512(c + (11 * ldc), c11a, c11b, in epilogue);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void StoreAvx512(float* c, Vector512<float> lo, Vector512<float> hi, in Epilogue e)
    {
        var alpha = Vector512.Create(e.Alpha);
        lo *= alpha;
        hi *= alpha;
        if (e.Mode == EpilogueMode.Accumulate)
        {
            var beta = Vector512.Create(e.Beta);
            lo = Avx512F.FusedMultiplyAdd(Vector512.Load(c), beta, lo);
            hi = Avx512F.FusedMultiplyAdd(Vector512.Load(c + 16), beta, hi);
        }
        else if (e.Mode == EpilogueMode.Bias)
        {
            lo += Vector512.Load(e.Bias);
            hi += Vector512.Load(e.Bias + 16);
        }

        lo.Store(c);
        hi.Store(c + 16);
    }

    /// <summary>AVX2 + FMA: a 6×16 tile in 12 ymm accumulators, two B vectors and one broadcast per k (15 of 16 registers).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static void Avx2<TRows>(int kc, float* a, float* b, float* c, nint ldc, in Epilogue epilogue)
        where TRows : struct, IRowCount
    {
        // Start fetching the C rows now: their lines arrive while the k loop runs instead of stalling the write-back.
        Sse.Prefetch0(c + 0);
        Sse.Prefetch0(c + 15);
        if (TRows.Count > 1)
        {
            Sse.Prefetch0(c + (1 * ldc) + 0);
            Sse.Prefetch0(c + (1 * ldc) + 15);
        }
        if (TRows.Count > 2)
        {
            Sse.Prefetch0(c + (2 * ldc) + 0);
            Sse.Prefetch0(c + (2 * ldc) + 15);
        }
        if (TRows.Count > 3)
        {
            Sse.Prefetch0(c + (3 * ldc) + 0);
            Sse.Prefetch0(c + (3 * ldc) + 15);
        }
        if (TRows.Count > 4)
        {
            Sse.Prefetch0(c + (4 * ldc) + 0);
            Sse.Prefetch0(c + (4 * ldc) + 15);
        }
        if (TRows.Count > 5)
        {
            Sse.Prefetch0(c + (5 * ldc) + 0);
            Sse.Prefetch0(c + (5 * ldc) + 15);
        }

        Vector256<float> c0a = default, c0b = default, c1a = default, c1b = default, c2a = default, c2b = default, c3a = default, c3b = default, c4a = default, c4b = default, c5a = default, c5b = default;
        for (int k = 0; k < kc; k++)
        {
            Vector256<float> b0 = Vector256.Load(b), b1 = Vector256.Load(b + 8);
            Vector256<float> x;
            x = Vector256.Create(a[0]);
            c0a = Fma.MultiplyAdd(x, b0, c0a);
            c0b = Fma.MultiplyAdd(x, b1, c0b);
            if (TRows.Count > 1)
            {
                x = Vector256.Create(a[1]);
                c1a = Fma.MultiplyAdd(x, b0, c1a);
                c1b = Fma.MultiplyAdd(x, b1, c1b);
            }
            if (TRows.Count > 2)
            {
                x = Vector256.Create(a[2]);
                c2a = Fma.MultiplyAdd(x, b0, c2a);
                c2b = Fma.MultiplyAdd(x, b1, c2b);
            }
            if (TRows.Count > 3)
            {
                x = Vector256.Create(a[3]);
                c3a = Fma.MultiplyAdd(x, b0, c3a);
                c3b = Fma.MultiplyAdd(x, b1, c3b);
            }
            if (TRows.Count > 4)
            {
                x = Vector256.Create(a[4]);
                c4a = Fma.MultiplyAdd(x, b0, c4a);
                c4b = Fma.MultiplyAdd(x, b1, c4b);
            }
            if (TRows.Count > 5)
            {
                x = Vector256.Create(a[5]);
                c5a = Fma.MultiplyAdd(x, b0, c5a);
                c5b = Fma.MultiplyAdd(x, b1, c5b);
            }
            a += 6;
            b += 16;
        }

        StoreAvx2(c + (0 * ldc), c0a, c0b, in epilogue);

        if (TRows.Count > 1)
        {
            StoreAvx2(c + (1 * ldc), c1a, c1b, in epilogue);
        }

        if (TRows.Count > 2)
        {
            StoreAvx2(c + (2 * ldc), c2a, c2b, in epilogue);
        }

        if (TRows.Count > 3)
        {
            StoreAvx2(c + (3 * ldc), c3a, c3b, in epilogue);
        }

        if (TRows.Count > 4)
        {
            StoreAvx2(c + (4 * ldc), c4a, c4b, in epilogue);
        }

        if (TRows.Count > 5)
        {
            StoreAvx2(c + (5 * ldc), c5a, c5b, in epilogue);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void StoreAvx2(float* c, Vector256<float> lo, Vector256<float> hi, in Epilogue e)
    {
        var alpha = Vector256.Create(e.Alpha);
        lo *= alpha;
        hi *= alpha;
        if (e.Mode == EpilogueMode.Accumulate)
        {
            var beta = Vector256.Create(e.Beta);
            lo = Fma.MultiplyAdd(Vector256.Load(c), beta, lo);
            hi = Fma.MultiplyAdd(Vector256.Load(c + 8), beta, hi);
        }
        else if (e.Mode == EpilogueMode.Bias)
        {
            lo += Vector256.Load(e.Bias);
            hi += Vector256.Load(e.Bias + 8);
        }

        lo.Store(c);
        hi.Store(c + 8);
    }

    /// <summary>Portable 128-bit SIMD (SSE or AdvSIMD; multiply then add, no FMA assumed): a 4×8 tile in 8 accumulators.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static void Portable<TRows>(int kc, float* a, float* b, float* c, nint ldc, in Epilogue epilogue)
        where TRows : struct, IRowCount
    {
        Vector128<float> c0a = default, c0b = default, c1a = default, c1b = default, c2a = default, c2b = default, c3a = default, c3b = default;
        for (int k = 0; k < kc; k++)
        {
            Vector128<float> b0 = Vector128.Load(b), b1 = Vector128.Load(b + 4);
            Vector128<float> x;
            x = Vector128.Create(a[0]);
            c0a = c0a + (x * b0);
            c0b = c0b + (x * b1);
            if (TRows.Count > 1)
            {
                x = Vector128.Create(a[1]);
                c1a = c1a + (x * b0);
                c1b = c1b + (x * b1);
            }
            if (TRows.Count > 2)
            {
                x = Vector128.Create(a[2]);
                c2a = c2a + (x * b0);
                c2b = c2b + (x * b1);
            }
            if (TRows.Count > 3)
            {
                x = Vector128.Create(a[3]);
                c3a = c3a + (x * b0);
                c3b = c3b + (x * b1);
            }
            a += 4;
            b += 8;
        }

        StorePortable(c + (0 * ldc), c0a, c0b, in epilogue);

        if (TRows.Count > 1)
        {
            StorePortable(c + (1 * ldc), c1a, c1b, in epilogue);
        }

        if (TRows.Count > 2)
        {
            StorePortable(c + (2 * ldc), c2a, c2b, in epilogue);
        }

        if (TRows.Count > 3)
        {
            StorePortable(c + (3 * ldc), c3a, c3b, in epilogue);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void StorePortable(float* c, Vector128<float> lo, Vector128<float> hi, in Epilogue e)
    {
        var alpha = Vector128.Create(e.Alpha);
        lo *= alpha;
        hi *= alpha;
        if (e.Mode == EpilogueMode.Accumulate)
        {
            var beta = Vector128.Create(e.Beta);
            lo = lo + (Vector128.Load(c) * beta);
            hi = hi + (Vector128.Load(c + 4) * beta);
        }
        else if (e.Mode == EpilogueMode.Bias)
        {
            lo += Vector128.Load(e.Bias);
            hi += Vector128.Load(e.Bias + 4);
        }

        lo.Store(c);
        hi.Store(c + 4);
    }

    /// <summary>Runs the Avx512 kernel for a panel of <paramref name="rows"/> (1..12) rows.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static void RunAvx512(int rows, int kc, float* a, float* b, float* c, nint ldc, in Epilogue epilogue)
    {
        switch (rows)
        {
            case 1: Avx512<R1>(kc, a, b, c, ldc, in epilogue); break;
            case 2: Avx512<R2>(kc, a, b, c, ldc, in epilogue); break;
            case 3: Avx512<R3>(kc, a, b, c, ldc, in epilogue); break;
            case 4: Avx512<R4>(kc, a, b, c, ldc, in epilogue); break;
            case 5: Avx512<R5>(kc, a, b, c, ldc, in epilogue); break;
            case 6: Avx512<R6>(kc, a, b, c, ldc, in epilogue); break;
            case 7: Avx512<R7>(kc, a, b, c, ldc, in epilogue); break;
            case 8: Avx512<R8>(kc, a, b, c, ldc, in epilogue); break;
            case 9: Avx512<R9>(kc, a, b, c, ldc, in epilogue); break;
            case 10: Avx512<R10>(kc, a, b, c, ldc, in epilogue); break;
            case 11: Avx512<R11>(kc, a, b, c, ldc, in epilogue); break;
            default: Avx512<R12>(kc, a, b, c, ldc, in epilogue); break;
        }
    }

    /// <summary>Runs the Avx2 kernel for a panel of <paramref name="rows"/> (1..6) rows.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static void RunAvx2(int rows, int kc, float* a, float* b, float* c, nint ldc, in Epilogue epilogue)
    {
        switch (rows)
        {
            case 1: Avx2<R1>(kc, a, b, c, ldc, in epilogue); break;
            case 2: Avx2<R2>(kc, a, b, c, ldc, in epilogue); break;
            case 3: Avx2<R3>(kc, a, b, c, ldc, in epilogue); break;
            case 4: Avx2<R4>(kc, a, b, c, ldc, in epilogue); break;
            case 5: Avx2<R5>(kc, a, b, c, ldc, in epilogue); break;
            default: Avx2<R6>(kc, a, b, c, ldc, in epilogue); break;
        }
    }

    /// <summary>Runs the Portable kernel for a panel of <paramref name="rows"/> (1..4) rows.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static void RunPortable(int rows, int kc, float* a, float* b, float* c, nint ldc, in Epilogue epilogue)
    {
        switch (rows)
        {
            case 1: Portable<R1>(kc, a, b, c, ldc, in epilogue); break;
            case 2: Portable<R2>(kc, a, b, c, ldc, in epilogue); break;
            case 3: Portable<R3>(kc, a, b, c, ldc, in epilogue); break;
            default: Portable<R4>(kc, a, b, c, ldc, in epilogue); break;
        }
    }
}

/// <summary>A row count known at JIT time, so a kernel instantiation drops the rows it does not have.</summary>
internal interface IRowCount
{
    /// <summary>Rows of C the kernel computes.</summary>
    static abstract int Count { get; }
}

/// <summary>1 row.</summary>
internal readonly struct R1 : IRowCount
{
    /// <inheritdoc/>
    public static int Count => 1;
}

/// <summary>2 rows.</summary>
internal readonly struct R2 : IRowCount
{
    /// <inheritdoc/>
    public static int Count => 2;
}

/// <summary>3 rows.</summary>
internal readonly struct R3 : IRowCount
{
    /// <inheritdoc/>
    public static int Count => 3;
}

/// <summary>4 rows.</summary>
internal readonly struct R4 : IRowCount
{
    /// <inheritdoc/>
    public static int Count => 4;
}

/// <summary>5 rows.</summary>
internal readonly struct R5 : IRowCount
{
    /// <inheritdoc/>
    public static int Count => 5;
}

/// <summary>6 rows.</summary>
internal readonly struct R6 : IRowCount
{
    /// <inheritdoc/>
    public static int Count => 6;
}

/// <summary>7 rows.</summary>
internal readonly struct R7 : IRowCount
{
    /// <inheritdoc/>
    public static int Count => 7;
}

/// <summary>8 rows.</summary>
internal readonly struct R8 : IRowCount
{
    /// <inheritdoc/>
    public static int Count => 8;
}

/// <summary>9 rows.</summary>
internal readonly struct R9 : IRowCount
{
    /// <inheritdoc/>
    public static int Count => 9;
}

/// <summary>10 rows.</summary>
internal readonly struct R10 : IRowCount
{
    /// <inheritdoc/>
    public static int Count => 10;
}

/// <summary>11 rows.</summary>
internal readonly struct R11 : IRowCount
{
    /// <inheritdoc/>
    public static int Count => 11;
}

/// <summary>12 rows.</summary>
internal readonly struct R12 : IRowCount
{
    /// <inheritdoc/>
    public static int Count => 12;
}
