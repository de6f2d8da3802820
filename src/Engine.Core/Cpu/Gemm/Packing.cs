using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Engine.Core.Cpu.Gemm;

/// <summary>
/// Copies operand blocks into the k-major panel layout the microkernels read: for a panel of <c>width</c> lanes
/// (MR rows of A or NR columns of B), element (k, lane) lands at <c>dst[k·width + lane]</c>, and lanes past the edge
/// of the matrix are zero so edge tiles run the full kernel on padding instead of a scalar loop.
/// </summary>
internal static unsafe class Packing
{
    /// <summary>
    /// Lanes are contiguous in the source (A transposed, B plain): dst[k·width + l] = src[k·ld + l] for l &lt; lanes, zero
    /// for lanes ≤ l &lt; width.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static void PackContiguousLanes(float* src, nint ld, int lanes, int width, int kc, float* dst)
    {
        uint bytes = (uint)lanes * sizeof(float);
        uint padBytes = (uint)(width - lanes) * sizeof(float);
        for (int k = 0; k < kc; k++)
        {
            float* d = dst + ((nint)k * width);
            Unsafe.CopyBlockUnaligned(d, src + (k * ld), bytes);
            if (padBytes != 0)
            {
                Unsafe.InitBlockUnaligned(d + lanes, 0, padBytes);
            }
        }
    }

    /// <summary>
    /// Lanes are strided in the source (A plain, B transposed): dst[k·width + l] = src[l·ld + k]. Transposes 8×8 blocks
    /// (AVX) or 4×4 blocks (SSE) in registers; the ragged rest is copied element by element.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static void PackStridedLanes(float* src, nint ld, int lanes, int width, int kc, float* dst)
    {
        int l = 0;
        if (Avx.IsSupported)
        {
            for (; l + 8 <= lanes; l += 8)
            {
                int k = 0;
                for (; k + 8 <= kc; k += 8)
                {
                    Transpose8x8(src + (l * ld) + k, ld, dst + ((nint)k * width) + l, width);
                }

                CopyStridedTail(src + (l * ld), ld, 8, k, kc, dst + l, width);
            }
        }

        if (Sse.IsSupported)
        {
            for (; l + 4 <= lanes; l += 4)
            {
                int k = 0;
                for (; k + 4 <= kc; k += 4)
                {
                    Transpose4x4(src + (l * ld) + k, ld, dst + ((nint)k * width) + l, width);
                }

                CopyStridedTail(src + (l * ld), ld, 4, k, kc, dst + l, width);
            }
        }

        CopyStridedTail(src + (l * ld), ld, lanes - l, 0, kc, dst + l, width);
        if (lanes < width)
        {
            uint padBytes = (uint)(width - lanes) * sizeof(float);
            for (int k = 0; k < kc; k++)
            {
                Unsafe.InitBlockUnaligned(dst + ((nint)k * width) + lanes, 0, padBytes);
            }
        }
    }

    private static void CopyStridedTail(float* src, nint ld, int lanes, int k0, int kc, float* dst, int width)
    {
        for (int k = k0; k < kc; k++)
        {
            for (int l = 0; l < lanes; l++)
            {
                dst[((nint)k * width) + l] = src[(l * ld) + k];
            }
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Transpose8x8(float* s, nint ld, float* d, nint dl)
    {
        var r0 = Avx.LoadVector256(s);
        var r1 = Avx.LoadVector256(s + ld);
        var r2 = Avx.LoadVector256(s + (2 * ld));
        var r3 = Avx.LoadVector256(s + (3 * ld));
        var r4 = Avx.LoadVector256(s + (4 * ld));
        var r5 = Avx.LoadVector256(s + (5 * ld));
        var r6 = Avx.LoadVector256(s + (6 * ld));
        var r7 = Avx.LoadVector256(s + (7 * ld));
        var t0 = Avx.UnpackLow(r0, r1);
        var t1 = Avx.UnpackHigh(r0, r1);
        var t2 = Avx.UnpackLow(r2, r3);
        var t3 = Avx.UnpackHigh(r2, r3);
        var t4 = Avx.UnpackLow(r4, r5);
        var t5 = Avx.UnpackHigh(r4, r5);
        var t6 = Avx.UnpackLow(r6, r7);
        var t7 = Avx.UnpackHigh(r6, r7);
        var u0 = Avx.Shuffle(t0, t2, 0x44);
        var u1 = Avx.Shuffle(t0, t2, 0xEE);
        var u2 = Avx.Shuffle(t1, t3, 0x44);
        var u3 = Avx.Shuffle(t1, t3, 0xEE);
        var u4 = Avx.Shuffle(t4, t6, 0x44);
        var u5 = Avx.Shuffle(t4, t6, 0xEE);
        var u6 = Avx.Shuffle(t5, t7, 0x44);
        var u7 = Avx.Shuffle(t5, t7, 0xEE);
        Avx.Store(d, Avx.Permute2x128(u0, u4, 0x20));
        Avx.Store(d + dl, Avx.Permute2x128(u1, u5, 0x20));
        Avx.Store(d + (2 * dl), Avx.Permute2x128(u2, u6, 0x20));
        Avx.Store(d + (3 * dl), Avx.Permute2x128(u3, u7, 0x20));
        Avx.Store(d + (4 * dl), Avx.Permute2x128(u0, u4, 0x31));
        Avx.Store(d + (5 * dl), Avx.Permute2x128(u1, u5, 0x31));
        Avx.Store(d + (6 * dl), Avx.Permute2x128(u2, u6, 0x31));
        Avx.Store(d + (7 * dl), Avx.Permute2x128(u3, u7, 0x31));
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Transpose4x4(float* s, nint ld, float* d, nint dl)
    {
        var r0 = Sse.LoadVector128(s);
        var r1 = Sse.LoadVector128(s + ld);
        var r2 = Sse.LoadVector128(s + (2 * ld));
        var r3 = Sse.LoadVector128(s + (3 * ld));
        var t0 = Sse.UnpackLow(r0, r1);
        var t1 = Sse.UnpackLow(r2, r3);
        var t2 = Sse.UnpackHigh(r0, r1);
        var t3 = Sse.UnpackHigh(r2, r3);
        Sse.Store(d, Sse.MoveLowToHigh(t0, t1));
        Sse.Store(d + dl, Sse.MoveHighToLow(t1, t0));
        Sse.Store(d + (2 * dl), Sse.MoveLowToHigh(t2, t3));
        Sse.Store(d + (3 * dl), Sse.MoveHighToLow(t3, t2));
    }
}
