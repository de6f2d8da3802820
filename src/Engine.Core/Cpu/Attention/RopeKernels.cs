using System.Runtime.Intrinsics;

namespace Engine.Core.Cpu.Attention;

/// <summary>Rotary position embedding over the q and k heads of fused qkv rows; each work item owns a run of rows.</summary>
internal static unsafe class RopeKernels
{
    /// <summary>Everything a RoPE work item needs, on the caller's stack.</summary>
    internal struct State
    {
        public float* Qkv;
        public float* Table;
        public long Rows;
        public int T;
        public int RotatedHeads;
        public int HeadSize;
        public int QkvChannels;
        public int PositionOffset;
        public int RowsPerItem;
        public bool Inverse;
    }

    /// <summary>Rows per work item: about 16K rotated floats, so small shapes stay on one thread.</summary>
    internal static int RowsPerItem(int rotatedHeads, int headSize) => Math.Max(1, 16384 / (rotatedHeads * headSize));

    /// <summary>Rotates the q and k heads of rows [index·RowsPerItem, …) forward or by the inverse rotation.</summary>
    internal static void Item(ref State s, int index)
    {
        long first = (long)index * s.RowsPerItem;
        long end = Math.Min(s.Rows, first + s.RowsPerItem);
        int half = s.HeadSize / 2;
        for (long row = first; row < end; row++)
        {
            int pos = s.PositionOffset + (int)(row % s.T);
            float* cos = s.Table + ((long)pos * s.HeadSize);
            float* sin = cos + half;
            float* head = s.Qkv + (row * s.QkvChannels);
            for (int h = 0; h < s.RotatedHeads; h++, head += s.HeadSize)
            {
                // The inverse of a rotation by θ is the rotation by −θ: flipping the sign of sin.
                if (s.Inverse)
                {
                    RotateHalf<Negate>(head, head + half, cos, sin, half);
                }
                else
                {
                    RotateHalf<Keep>(head, head + half, cos, sin, half);
                }
            }
        }
    }

    // The sign of sin is a type argument so the JIT folds it away instead of branching per vector.
    private static void RotateHalf<TSign>(float* x1, float* x2, float* cos, float* sin, int half)
        where TSign : struct, ISign
    {
        int i = 0;
        if (Vector512.IsHardwareAccelerated)
        {
            for (; i <= half - 16; i += 16)
            {
                var a = Vector512.Load(x1 + i);
                var b = Vector512.Load(x2 + i);
                var c = Vector512.Load(cos + i);
                var s = Vector512.Load(sin + i);
                if (TSign.Negative)
                {
                    s = -s;
                }

                ((a * c) - (b * s)).Store(x1 + i);
                ((b * c) + (a * s)).Store(x2 + i);
            }
        }

        for (; i <= half - 8; i += 8)
        {
            var a = Vector256.Load(x1 + i);
            var b = Vector256.Load(x2 + i);
            var c = Vector256.Load(cos + i);
            var s = Vector256.Load(sin + i);
            if (TSign.Negative)
            {
                s = -s;
            }

            ((a * c) - (b * s)).Store(x1 + i);
            ((b * c) + (a * s)).Store(x2 + i);
        }

        for (; i < half; i++)
        {
            float a = x1[i], b = x2[i], c = cos[i], s = TSign.Negative ? -sin[i] : sin[i];
            x1[i] = (a * c) - (b * s);
            x2[i] = (b * c) + (a * s);
        }
    }

    private interface ISign
    {
        static abstract bool Negative { get; }
    }

    private struct Keep : ISign
    {
        public static bool Negative => false;
    }

    private struct Negate : ISign
    {
        public static bool Negative => true;
    }
}
