using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Engine.Core.Cpu.Gemm;

/// <summary>
/// Copies one K block of an operand into the k-major panel layout the microkernels read: panel p of <c>width</c> lanes
/// (MR rows of A or NR columns of B) starts at <c>dst + p·width·kc</c> and holds element (k, lane) at <c>k·width + lane</c>;
/// lanes past the edge of the matrix are zero, so edge tiles run the full kernel on padding instead of a scalar loop.
/// </summary>
internal static unsafe class Packing
{
    /// <summary>
    /// Lanes contiguous in the source (A transposed, B plain): lane l of panel p at row k is src[k·ld + p·width + l].
    /// Rows are read front to back across all the panels, so the source streams sequentially.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static void PackContiguousLanes(float* src, nint ld, int lanes, int width, int panels, int kc, float* dst)
    {
        nint panelStride = (nint)width * kc;
        int fullPanels = Math.Min(panels, lanes / width);
        int tailLanes = panels > fullPanels ? lanes - (fullPanels * width) : 0;
        for (int k = 0; k < kc; k++)
        {
            float* s = src + (k * ld);
            float* d = dst + ((nint)k * width);
            for (int p = 0; p < fullPanels; p++)
            {
                CopyLanes(s + (p * width), d + (p * panelStride), width);
            }

            if (panels > fullPanels)
            {
                float* dt = d + (fullPanels * panelStride);
                float* st = s + (fullPanels * width);
                for (int l = 0; l < width; l++)
                {
                    dt[l] = l < tailLanes ? st[l] : 0f;
                }
            }
        }
    }

    /// <summary>
    /// Lanes strided in the source (A plain, B transposed): lane l of panel p at row k is src[(p·width + l)·ld + k].
    /// Transposes 8×8 (AVX) and 4×4 (SSE) blocks in registers, eight lanes at a time along all of k, so the source is
    /// read as eight sequential streams (the destination is small and cache-resident); the ragged rest is copied one by
    /// one.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static void PackStridedLanes(float* src, nint ld, int lanes, int width, int panels, int kc, float* dst)
    {
        for (int p = 0; p < panels; p++)
        {
            int valid = Math.Min(width, lanes - (p * width));
            PackStridedPanel(src + (p * width * ld), ld, valid, width, kc, dst + ((nint)p * width * kc));
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void PackStridedPanel(float* src, nint ld, int lanes, int width, int kc, float* dst)
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

                CopyStrided(src, ld, l, l + 8, width, k, kc, dst);
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

                CopyStrided(src, ld, l, l + 4, width, k, kc, dst);
            }
        }

        CopyStrided(src, ld, l, lanes, width, 0, kc, dst);
        for (int k = 0; k < kc; k++)
        {
            for (int pad = lanes; pad < width; pad++)
            {
                dst[((nint)k * width) + pad] = 0f;
            }
        }
    }

    /// <summary>Lanes [l0, l1) of rows [k0, k1) one element at a time.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void CopyStrided(float* src, nint ld, int l0, int l1, int width, int k0, int k1, float* dst)
    {
        for (int k = k0; k < k1; k++)
        {
            float* d = dst + ((nint)k * width);
            for (int l = l0; l < l1; l++)
            {
                d[l] = src[(l * ld) + k];
            }
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void CopyLanes(float* s, float* d, int width)
    {
        int l = 0;
        if (Vector512.IsHardwareAccelerated)
        {
            for (; l + 16 <= width; l += 16)
            {
                Vector512.Store(Vector512.Load(s + l), d + l);
            }
        }

        if (Vector256.IsHardwareAccelerated)
        {
            for (; l + 8 <= width; l += 8)
            {
                Vector256.Store(Vector256.Load(s + l), d + l);
            }
        }

        for (; l + 4 <= width; l += 4)
        {
            Vector128.Store(Vector128.Load(s + l), d + l);
        }

        for (; l < width; l++)
        {
            d[l] = s[l];
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
