using System.Runtime.CompilerServices;

namespace Engine.Core.Cpu.Attention;

/// <summary>
/// Causal self-attention over fused qkv rows [B,T,(NH+2·NKV)·HS], FlashAttention style: scores are produced one key
/// tile at a time into a small stack buffer and folded into an online softmax, so no [T,T] matrix ever exists. The
/// per-item scratch lives on the stack (its contents never outlive a tile), so calls allocate nothing.
/// </summary>
internal static unsafe class AttentionKernels
{
    /// <summary>Keys per tile: a 64×64 float tile of k plus one of v is 32 KiB, about an L1 data cache.</summary>
    private const int KeyTile = 64;

    /// <summary>Scratch floats a tile may use per head-size unit, bounding stack use for very large heads.</summary>
    private const int ScratchFloats = 8192;

    /// <summary>What every attention work item reads, on the caller's stack.</summary>
    internal struct State
    {
        public float* Qkv;
        public float* Out;
        public float* Lse;
        public float* QkvGrad;
        public float* OutGrad;
        public int B;
        public int T;
        public int NH;
        public int NKV;
        public int HS;
        public float Scale;
        public int QueryTile;
        public int QueryTiles;
        public int KeyTileBackward;

        /// <summary>Floats between consecutive time steps of qkv.</summary>
        public readonly long QkvStride => (long)(NH + (2 * NKV)) * HS;

        /// <summary>Floats between consecutive time steps of the output.</summary>
        public readonly long OutStride => (long)NH * HS;
    }

    /// <summary>Fills the tiling fields of <paramref name="s"/> from its shape.</summary>
    internal static void Plan(ref State s)
    {
        s.Scale = 1f / MathF.Sqrt(s.HS);
        s.QueryTile = Math.Clamp(ScratchFloats / s.HS, 1, 16);
        s.QueryTiles = (s.T + s.QueryTile - 1) / s.QueryTile;

        // Backward keeps dK and dV accumulators for a tile beside the k and v rows it reads.
        s.KeyTileBackward = Math.Clamp(ScratchFloats / (2 * s.HS), 1, 32);
    }

    /// <summary>Forward work items: one per (query tile, batch, head).</summary>
    internal static int ForwardItems(in State s) => s.QueryTiles * s.B * s.NH;

    /// <summary>Backward work items: one per (batch, kv head), which owns dq of its query heads and dk, dv of its kv head.</summary>
    internal static int BackwardItems(in State s) => s.B * s.NKV;

    /// <summary>
    /// Attention of one tile of queries of one (b, h): online softmax over key tiles, then out = acc / l and
    /// lse = m + log l. The last query tiles, which see the most keys, come first so the pool ends balanced.
    /// </summary>
    [SkipLocalsInit]
    internal static void ForwardItem(ref State s, int index)
    {
        int heads = s.B * s.NH;
        int tile = s.QueryTiles - 1 - (index / heads);
        int b = index % heads / s.NH;
        int h = index % s.NH;
        int g = h / (s.NH / s.NKV);
        int hs = s.HS;
        long qkvStride = s.QkvStride;
        int t0 = tile * s.QueryTile;
        int t1 = Math.Min(s.T, t0 + s.QueryTile);

        float* batch = s.Qkv + ((long)b * s.T * qkvStride);
        float* qBase = batch + ((long)h * hs);
        float* kBase = batch + ((long)(s.NH + g) * hs);
        float* vBase = batch + ((long)(s.NH + s.NKV + g) * hs);

        int nq = t1 - t0;
        float* acc = stackalloc float[nq * hs];
        float* rowMax = stackalloc float[nq];
        float* rowSum = stackalloc float[nq];
        float* p = stackalloc float[KeyTile];
        new Span<float>(acc, nq * hs).Clear();
        new Span<float>(rowMax, nq).Fill(float.NegativeInfinity);
        new Span<float>(rowSum, nq).Clear();

        for (int s0 = 0; s0 < t1; s0 += KeyTile)
        {
            float* kTile = kBase + (s0 * qkvStride);
            float* vTile = vBase + (s0 * qkvStride);
            for (int t = Math.Max(t0, s0); t < t1; t++)
            {
                int i = t - t0;
                int n = Math.Min(KeyTile, t + 1 - s0);
                float* q = qBase + (t * qkvStride);
                float* k = kTile;
                for (int j = 0; j < n; j++, k += qkvStride)
                {
                    p[j] = AttentionSimd.Dot(q, k, hs) * s.Scale;
                }

                float mOld = rowMax[i];
                float mNew = MathF.Max(mOld, AttentionSimd.Max(p, n));
                float sum = AttentionSimd.ExpShifted(p, n, mNew);
                float* a = acc + (i * hs);
                if (mOld != mNew)
                {
                    // exp(−∞) = 0 on the first tile, where acc and the running sum are still zero.
                    float correction = MathF.Exp(mOld - mNew);
                    rowSum[i] *= correction;
                    AttentionSimd.Scale(a, correction, hs);
                }

                rowSum[i] += sum;
                rowMax[i] = mNew;
                AttentionSimd.AccumulateRows(a, p, vTile, qkvStride, n, hs);
            }
        }

        float* outBase = s.Out + ((long)b * s.T * s.OutStride) + ((long)h * hs);
        float* lse = s.Lse + (((long)b * s.NH) + h) * s.T;
        for (int t = t0; t < t1; t++)
        {
            int i = t - t0;
            AttentionSimd.ScaleTo(outBase + (t * s.OutStride), 1f / rowSum[i], acc + (i * hs), hs);
            lse[t] = rowMax[i] + MathF.Log(rowSum[i]);
        }
    }

    /// <summary>
    /// Backward of one (b, kv head): for each key tile, every query head of the group and every query at or after the
    /// tile recompute p = exp(s − lse) and dS = p∘(dP − D), add dq straight into the gradient and gather dk, dv for the
    /// tile in stack accumulators that are added once the tile is done. One item owns all those gradients, so each is
    /// summed in one fixed order whatever the thread count.
    /// </summary>
    [SkipLocalsInit]
    internal static void BackwardItem(ref State s, int index)
    {
        int b = index / s.NKV;
        int g = index % s.NKV;
        int group = s.NH / s.NKV;
        int hs = s.HS;
        int keyTile = s.KeyTileBackward;
        long qkvStride = s.QkvStride;
        long outStride = s.OutStride;
        long batchOffset = (long)b * s.T * qkvStride;
        long kOffset = batchOffset + ((long)(s.NH + g) * hs);
        long vOffset = batchOffset + ((long)(s.NH + s.NKV + g) * hs);

        int padded = (keyTile + AttentionSimd.Width - 1) / AttentionSimd.Width * AttentionSimd.Width;
        float* dk = stackalloc float[keyTile * hs];
        float* dv = stackalloc float[keyTile * hs];
        float* p = stackalloc float[padded];
        float* ds = stackalloc float[padded];

        for (int s0 = 0; s0 < s.T; s0 += keyTile)
        {
            int nk = Math.Min(keyTile, s.T - s0);
            new Span<float>(dk, nk * hs).Clear();
            new Span<float>(dv, nk * hs).Clear();
            float* kTile = s.Qkv + kOffset + (s0 * qkvStride);
            float* vTile = s.Qkv + vOffset + (s0 * qkvStride);

            for (int hh = 0; hh < group; hh++)
            {
                int h = (g * group) + hh;
                long qOffset = batchOffset + ((long)h * hs);
                float* lse = s.Lse + ((((long)b * s.NH) + h) * s.T);
                float* outHead = s.Out + ((long)b * s.T * outStride) + ((long)h * hs);
                float* doutHead = s.OutGrad + ((long)b * s.T * outStride) + ((long)h * hs);
                for (int t = s0; t < s.T; t++)
                {
                    int n = Math.Min(nk, t + 1 - s0);
                    float* q = s.Qkv + qOffset + (t * qkvStride);
                    float* dq = s.QkvGrad + qOffset + (t * qkvStride);
                    float* dout = doutHead + (t * outStride);
                    float d = AttentionSimd.Dot(dout, outHead + (t * outStride), hs);

                    float* k = kTile;
                    for (int j = 0; j < n; j++, k += qkvStride)
                    {
                        p[j] = AttentionSimd.Dot(q, k, hs) * s.Scale;
                    }

                    AttentionSimd.ExpShifted(p, n, lse[t]);

                    float* v = vTile;
                    for (int j = 0; j < n; j++, v += qkvStride)
                    {
                        float dp = AttentionSimd.Dot(dout, v, hs);
                        ds[j] = p[j] * (dp - d) * s.Scale;
                    }

                    AttentionSimd.AccumulateRows(dq, ds, kTile, qkvStride, n, hs);
                    for (int j = 0; j < n; j++)
                    {
                        AttentionSimd.Axpy(dk + (j * hs), ds[j], q, hs);
                        AttentionSimd.Axpy(dv + (j * hs), p[j], dout, hs);
                    }
                }
            }

            for (int j = 0; j < nk; j++)
            {
                long row = (s0 + j) * qkvStride;
                AttentionSimd.Axpy(s.QkvGrad + kOffset + row, 1f, dk + (j * hs), hs);
                AttentionSimd.Axpy(s.QkvGrad + vOffset + row, 1f, dv + (j * hs), hs);
            }
        }
    }
}
