using System.Numerics.Tensors;
using System.Runtime.CompilerServices;

namespace Engine.Core.Cpu.Attention;

/// <summary>
/// Incremental attention against a KV cache [B,NKV,maxT,HS]: one work item per (batch, kv head) first appends the new
/// k/v rows of its head to the cache, then runs every query of its head group over the cached prefix plus the new
/// tokens. Each item owns its cache rows and output heads, so results do not depend on the thread count; scratch is on
/// the stack, so calls allocate nothing.
/// </summary>
internal static unsafe class DecodeKernels
{
    /// <summary>Largest cache length the stack score row is sized for (256 KiB).</summary>
    internal const int MaxCacheLength = 65536;

    internal struct State
    {
        public float* Qkv;
        public float* Out;
        public float* KCache;
        public float* VCache;
        public int* Positions;
        public int B;
        public int Tq;
        public int NH;
        public int NKV;
        public int HS;
        public int MaxT;
        public float Scale;
    }

    /// <summary>Only the cache write of <see cref="Item"/> for one (batch, kv head).</summary>
    internal static void WriteItem(ref State s, int index)
    {
        int b = index / s.NKV, g = index % s.NKV, hs = s.HS;
        int p = s.Positions[b];
        long qkvStride = (long)(s.NH + (2 * s.NKV)) * hs;
        float* rows = s.Qkv + ((long)b * s.Tq * qkvStride);
        long headBase = (((long)b * s.NKV) + g) * s.MaxT * hs;
        float* kHead = s.KCache + headBase;
        float* vHead = s.VCache + headBase;
        for (int t = 0; t < s.Tq; t++)
        {
            float* row = rows + (t * qkvStride);
            Buffer.MemoryCopy(row + ((long)(s.NH + g) * hs), kHead + ((long)(p + t) * hs), hs * sizeof(float), hs * sizeof(float));
            Buffer.MemoryCopy(row + ((long)(s.NH + s.NKV + g) * hs), vHead + ((long)(p + t) * hs), hs * sizeof(float), hs * sizeof(float));
        }
    }

    [SkipLocalsInit]
    internal static void Item(ref State s, int index)
    {
        WriteItem(ref s, index);
        int b = index / s.NKV, g = index % s.NKV, hs = s.HS, group = s.NH / s.NKV;
        int p = s.Positions[b];
        long qkvStride = (long)(s.NH + (2 * s.NKV)) * hs, outStride = (long)s.NH * hs;
        float* rows = s.Qkv + ((long)b * s.Tq * qkvStride);
        long headBase = (((long)b * s.NKV) + g) * s.MaxT * hs;
        float* kHead = s.KCache + headBase;
        float* vHead = s.VCache + headBase;

        float* scores = stackalloc float[p + s.Tq];
        for (int hh = 0; hh < group; hh++)
        {
            int h = (g * group) + hh;
            for (int t = 0; t < s.Tq; t++)
            {
                float* q = rows + (t * qkvStride) + ((long)h * hs);
                int n = p + t + 1;
                for (int j = 0; j < n; j++)
                {
                    scores[j] = AttentionSimd.Dot(q, kHead + ((long)j * hs), hs) * s.Scale;
                }

                var span = new Span<float>(scores, n);
                float max = TensorPrimitives.Max<float>(span);
                TensorPrimitives.Subtract(span, max, span);
                TensorPrimitives.Exp(span, span);
                float sum = TensorPrimitives.Sum<float>(span);
                float* o = s.Out + ((long)b * s.Tq * outStride) + (t * outStride) + ((long)h * hs);
                new Span<float>(o, hs).Clear();
                AttentionSimd.AccumulateRows(o, scores, 1, vHead, hs, n, hs);
                AttentionSimd.ScaleTo(o, 1f / sum, o, hs);
            }
        }
    }
}
