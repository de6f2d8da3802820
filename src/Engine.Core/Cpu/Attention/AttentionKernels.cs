using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace Engine.Core.Cpu.Attention;

/// <summary>
/// Causal self-attention over fused qkv rows [B,T,(NH+2·NKV)·HS], FlashAttention style. Queries are taken a vector's
/// worth at a time (16 with AVX-512, 8 otherwise) with q transposed into a [HS, W] stack tile, so a key's scores for
/// all those queries come out of HS broadcast-FMAs with no horizontal sums, and the online softmax runs lane-wise
/// across the queries. Scores exist only for one key tile at a time; no [T,T] matrix is ever built and all scratch is
/// on the stack, so calls allocate nothing. Every score is computed by the same sequence of operations in forward and
/// backward, so the probabilities recomputed in backward match the ones forward normalised. With per-document position
/// ids (packed rows) a query sees only the keys of its own document: key tiles before the query tile's first document
/// are never visited, and keys before a query's own document start are masked like future ones.
/// </summary>
internal static unsafe class AttentionKernels
{
    /// <summary>Largest head size the stack tiles are sized for (a few hundred KiB of stack at most).</summary>
    internal const int MaxHeadSize = 1024;

    /// <summary>Keys per forward tile: 64 rows of k and of v at HS = 64 are 32 KiB, about an L1 data cache.</summary>
    private const int KeyTile = 64;

    /// <summary>Everything a work item reads, on the caller's stack.</summary>
    internal struct State
    {
        public float* Qkv;
        public float* Out;
        public float* Lse;
        public float* QkvGrad;
        public float* OutGrad;

        /// <summary>Position of each token within its document [B,T], or null when every row is one document.</summary>
        public int* Positions;
        public int B;
        public int T;
        public int NH;
        public int NKV;
        public int HS;
        public float Scale;
        public int QueryTiles;
        public int KeyTileBackward;

        /// <summary>Floats between consecutive time steps of qkv.</summary>
        public readonly long QkvStride => (long)(NH + (2 * NKV)) * HS;

        /// <summary>Floats between consecutive time steps of the output.</summary>
        public readonly long OutStride => (long)NH * HS;

        /// <summary>First key query t of row b may see: the start of its document (0 without position ids).</summary>
        public readonly int DocumentStart(int b, int t) =>
            Positions is null ? 0 : t - Math.Clamp(Positions[((long)b * T) + t], 0, t);
    }

    /// <summary>Fills the tiling fields of <paramref name="s"/> for query tiles of <typeparamref name="TLanes"/>.</summary>
    internal static void Plan<TLanes>(ref State s)
        where TLanes : struct, IQueryLanes<TLanes>
    {
        int w = TLanes.Count;
        s.Scale = 1f / MathF.Sqrt(s.HS);
        s.QueryTiles = (s.T + w - 1) / w;

        // Backward keeps dk and dv accumulators for its key tile beside the k and v rows it reads; a multiple of the
        // query tile so that query tiles starting at the key tile line up with the causal diagonal.
        s.KeyTileBackward = Math.Max(w, Math.Min(32, 2048 / s.HS) / w * w);
    }

    /// <summary>Forward work items: one per (batch, head, query tile).</summary>
    internal static int ForwardItems(in State s) => s.QueryTiles * s.B * s.NH;

    /// <summary>Backward work items: one per (batch, kv head), which owns dq of its query heads and dk, dv of its kv head.</summary>
    internal static int BackwardItems(in State s) => s.B * s.NKV;

    /// <summary>
    /// One query tile of one (b, h): online softmax over key tiles, then out = acc / l and lse = m + log l. Items run
    /// head by head, so the threads share one head's k and v rows in cache; within a head the last query tiles, which
    /// see the most keys, come first so the pool ends on small items.
    /// </summary>
    [SkipLocalsInit]
    internal static void ForwardItem<TLanes>(ref State s, int index)
        where TLanes : struct, IQueryLanes<TLanes>
    {
        int w = TLanes.Count;
        int tile = s.QueryTiles - 1 - (index % s.QueryTiles);
        int b = index / s.QueryTiles / s.NH;
        int h = index / s.QueryTiles % s.NH;
        int g = h / (s.NH / s.NKV);
        int hs = s.HS;
        long stride = s.QkvStride;
        int t0 = tile * w;
        int nq = Math.Min(w, s.T - t0);
        int t1 = t0 + nq;

        float* batch = s.Qkv + ((long)b * s.T * stride);
        float* kBase = batch + ((long)(s.NH + g) * hs);
        float* vBase = batch + ((long)(s.NH + s.NKV + g) * hs);

        float* qT = stackalloc float[hs * w];
        float* acc = stackalloc float[nq * hs];
        float* scores = stackalloc float[KeyTile * w];
        float* lanes = stackalloc float[w];
        Transpose(qT, batch + ((long)h * hs) + (t0 * stride), stride, nq, hs, w, s.Scale);
        new Span<float>(acc, nq * hs).Clear();

        var rowMax = TLanes.Create(float.NegativeInfinity);
        var rowSum = TLanes.Create(0f);
        for (int s0 = s.DocumentStart(b, t0); s0 < t1; s0 += KeyTile)
        {
            int nk = Math.Min(KeyTile, t1 - s0);
            float* vTile = vBase + (s0 * stride);
            Scores<TLanes>(scores, qT, kBase + (s0 * stride), stride, nk, hs);
            MaskFuture<TLanes>(scores, s0, nk, t0);
            MaskDocuments(ref s, scores, w, b, s0, nk, t0, nq);

            var tileMax = TLanes.Load(scores);
            for (int j = 1; j < nk; j++)
            {
                tileMax = TLanes.Max(tileMax, TLanes.Load(scores + (j * w)));
            }

            // Key s0 precedes every query of the tile and belongs to the first one's document, so without position ids
            // the new maximum is finite and exp(−∞ − m) = 0 on the first tile. With them, a later document's query may
            // have seen no key yet: its exponentials are taken against 0 instead of −∞, so they are 0, not NaN.
            var newMax = TLanes.Max(rowMax, tileMax);
            var expMax = s.Positions is null ? newMax : FiniteOrZero<TLanes>(newMax, lanes);
            var correction = TLanes.Exp(TLanes.Subtract(rowMax, expMax));
            var sum = TLanes.Create(0f);
            for (int j = 0; j < nk; j++)
            {
                var p = TLanes.Exp(TLanes.Subtract(TLanes.Load(scores + (j * w)), expMax));
                TLanes.Store(p, scores + (j * w));
                sum = TLanes.Add(sum, p);
            }

            rowSum = TLanes.MulAdd(rowSum, correction, sum);
            rowMax = newMax;
            TLanes.Store(correction, lanes);
            for (int i = 0; i < nq; i++)
            {
                float* a = acc + (i * hs);
                if (lanes[i] != 1f)
                {
                    AttentionSimd.ScaleTo(a, lanes[i], a, hs);
                }

                AttentionSimd.AccumulateRows(a, scores + i, w, vTile, stride, nk, hs);
            }
        }

        float* maxes = stackalloc float[w];
        TLanes.Store(rowMax, maxes);
        TLanes.Store(rowSum, lanes);
        float* outRows = s.Out + ((long)b * s.T * s.OutStride) + ((long)h * hs);
        float* lse = s.Lse + ((((long)b * s.NH) + h) * s.T);
        for (int i = 0; i < nq; i++)
        {
            AttentionSimd.ScaleTo(outRows + ((t0 + i) * s.OutStride), 1f / lanes[i], acc + (i * hs), hs);
            lse[t0 + i] = maxes[i] + MathF.Log(lanes[i]);
        }
    }

    /// <summary>
    /// Backward of one (b, kv head). For each key tile, every query head of the group and every query tile at or after
    /// it: recompute p = exp(s − lse), dP = dout·vᵀ and dS = p∘(dP − D)/√HS; add dS·K into dq, and gather dSᵀ·Q and
    /// Pᵀ·dout in stack accumulators that are added into dk, dv once the key tile is done. One item owns all those
    /// gradients, so each is summed in one fixed order whatever the thread count.
    /// </summary>
    [SkipLocalsInit]
    internal static void BackwardItem<TLanes>(ref State s, int index)
        where TLanes : struct, IQueryLanes<TLanes>
    {
        int w = TLanes.Count;
        int b = index / s.NKV;
        int g = index % s.NKV;
        int group = s.NH / s.NKV;
        int hs = s.HS;
        int keyTile = s.KeyTileBackward;
        long stride = s.QkvStride;
        long outStride = s.OutStride;
        long batch = (long)b * s.T * stride;
        long kOffset = batch + ((long)(s.NH + g) * hs);
        long vOffset = batch + ((long)(s.NH + s.NKV + g) * hs);

        float* qT = stackalloc float[hs * w];
        float* doutT = stackalloc float[hs * w];
        float* p = stackalloc float[keyTile * w];
        float* ds = stackalloc float[keyTile * w];
        float* dk = stackalloc float[keyTile * hs];
        float* dv = stackalloc float[keyTile * hs];
        float* lanes = stackalloc float[w];

        for (int s0 = 0; s0 < s.T; s0 += keyTile)
        {
            int nk = Math.Min(keyTile, s.T - s0);
            new Span<float>(dk, nk * hs).Clear();
            new Span<float>(dv, nk * hs).Clear();
            float* kTile = s.Qkv + kOffset + (s0 * stride);
            float* vTile = s.Qkv + vOffset + (s0 * stride);

            for (int hh = 0; hh < group; hh++)
            {
                int h = (g * group) + hh;
                float* qRows = s.Qkv + batch + ((long)h * hs);
                float* dqRows = s.QkvGrad + batch + ((long)h * hs);
                float* outRows = s.Out + ((long)b * s.T * outStride) + ((long)h * hs);
                float* doutRows = s.OutGrad + ((long)b * s.T * outStride) + ((long)h * hs);
                float* lse = s.Lse + ((((long)b * s.NH) + h) * s.T);
                // Query tiles whose first query's document starts after this key tile see none of it, nor do later ones.
                for (int t0 = s0; t0 < s.T && s.DocumentStart(b, t0) < s0 + nk; t0 += w)
                {
                    int nq = Math.Min(w, s.T - t0);
                    Transpose(qT, qRows + (t0 * stride), stride, nq, hs, w, s.Scale);
                    Transpose(doutT, doutRows + (t0 * outStride), outStride, nq, hs, w, 1f);

                    // Padding lanes (past T) get lse = 0 and D = 0 with zero q and dout: finite, and never stored.
                    for (int i = 0; i < w; i++)
                    {
                        lanes[i] = i < nq ? lse[t0 + i] : 0f;
                    }

                    var rowLse = TLanes.Load(lanes);
                    for (int i = 0; i < w; i++)
                    {
                        long row = (t0 + i) * outStride;
                        lanes[i] = i < nq ? AttentionSimd.Dot(doutRows + row, outRows + row, hs) : 0f;
                    }

                    var rowD = TLanes.Load(lanes);
                    Scores<TLanes>(p, qT, kTile, stride, nk, hs);
                    MaskFuture<TLanes>(p, s0, nk, t0);
                    MaskDocuments(ref s, p, w, b, s0, nk, t0, nq);
                    Scores<TLanes>(ds, doutT, vTile, stride, nk, hs);
                    var scale = TLanes.Create(s.Scale);
                    for (int j = 0; j < nk; j++)
                    {
                        var pj = TLanes.Exp(TLanes.Subtract(TLanes.Load(p + (j * w)), rowLse));
                        TLanes.Store(pj, p + (j * w));
                        TLanes.Store(TLanes.Multiply(TLanes.Multiply(pj, TLanes.Subtract(TLanes.Load(ds + (j * w)), rowD)), scale), ds + (j * w));
                    }

                    for (int i = 0; i < nq; i++)
                    {
                        AttentionSimd.AccumulateRows(dqRows + ((t0 + i) * stride), ds + i, w, kTile, stride, nk, hs);
                    }

                    for (int j = 0; j < nk; j++)
                    {
                        AttentionSimd.AccumulateRows(dk + (j * hs), ds + (j * w), 1, qRows + (t0 * stride), stride, nq, hs);
                        AttentionSimd.AccumulateRows(dv + (j * hs), p + (j * w), 1, doutRows + (t0 * outStride), outStride, nq, hs);
                    }
                }
            }

            for (int j = 0; j < nk; j++)
            {
                long row = (s0 + j) * stride;
                AttentionSimd.Add(s.QkvGrad + kOffset + row, dk + (j * hs), hs);
                AttentionSimd.Add(s.QkvGrad + vOffset + row, dv + (j * hs), hs);
            }
        }
    }

    /// <summary>dst[c·w + i] = factor·rows[i·stride + c] for i &lt; n, and zero for the padding lanes i ≥ n.</summary>
    private static void Transpose(float* dst, float* rows, long stride, int n, int hs, int w, float factor)
    {
        for (int i = 0; i < n; i++)
        {
            float* r = rows + (i * stride);
            for (int c = 0; c < hs; c++)
            {
                dst[(c * w) + i] = r[c] * factor;
            }
        }

        for (int i = n; i < w; i++)
        {
            for (int c = 0; c < hs; c++)
            {
                dst[(c * w) + i] = 0f;
            }
        }
    }

    /// <summary>
    /// scores[j·W + i] = Σ_c keys[j·stride + c]·qT[c·W + i] for the <paramref name="nk"/> keys of a tile. Eight keys
    /// at a time keep eight independent FMA chains in flight; each score is one chain over c in order, however the
    /// keys are grouped, which is what makes backward's recomputed scores equal forward's.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Scores<TLanes>(float* scores, float* qT, float* keys, long stride, int nk, int hs)
        where TLanes : struct, IQueryLanes<TLanes>
    {
        int w = TLanes.Count;
        int j = 0;
        for (; j + 8 <= nk; j += 8)
        {
            float* k0 = keys + (j * stride);
            float* k1 = k0 + stride;
            float* k2 = k1 + stride;
            float* k3 = k2 + stride;
            float* k4 = k3 + stride;
            float* k5 = k4 + stride;
            float* k6 = k5 + stride;
            float* k7 = k6 + stride;
            var a0 = TLanes.Create(0f);
            var a1 = a0;
            var a2 = a0;
            var a3 = a0;
            var a4 = a0;
            var a5 = a0;
            var a6 = a0;
            var a7 = a0;
            float* q = qT;
            for (int c = 0; c < hs; c++, q += w)
            {
                var qc = TLanes.Load(q);
                a0 = TLanes.MulAdd(TLanes.Create(k0[c]), qc, a0);
                a1 = TLanes.MulAdd(TLanes.Create(k1[c]), qc, a1);
                a2 = TLanes.MulAdd(TLanes.Create(k2[c]), qc, a2);
                a3 = TLanes.MulAdd(TLanes.Create(k3[c]), qc, a3);
                a4 = TLanes.MulAdd(TLanes.Create(k4[c]), qc, a4);
                a5 = TLanes.MulAdd(TLanes.Create(k5[c]), qc, a5);
                a6 = TLanes.MulAdd(TLanes.Create(k6[c]), qc, a6);
                a7 = TLanes.MulAdd(TLanes.Create(k7[c]), qc, a7);
            }

            float* o = scores + (j * w);
            TLanes.Store(a0, o);
            TLanes.Store(a1, o + w);
            TLanes.Store(a2, o + (2 * w));
            TLanes.Store(a3, o + (3 * w));
            TLanes.Store(a4, o + (4 * w));
            TLanes.Store(a5, o + (5 * w));
            TLanes.Store(a6, o + (6 * w));
            TLanes.Store(a7, o + (7 * w));
        }

        for (; j < nk; j++)
        {
            float* k = keys + (j * stride);
            var a = TLanes.Create(0f);
            float* q = qT;
            for (int c = 0; c < hs; c++, q += w)
            {
                a = TLanes.MulAdd(TLanes.Create(k[c]), TLanes.Load(q), a);
            }

            TLanes.Store(a, scores + (j * w));
        }
    }

    /// <summary>Sets the scores of keys before a query's document start to −∞ (nothing without position ids).</summary>
    private static void MaskDocuments(ref State s, float* scores, int w, int b, int s0, int nk, int t0, int nq)
    {
        if (s.Positions is null)
        {
            return;
        }

        for (int i = 0; i < nq; i++)
        {
            int hidden = Math.Min(nk, s.DocumentStart(b, t0 + i) - s0);
            for (int j = 0; j < hidden; j++)
            {
                scores[(j * w) + i] = float.NegativeInfinity;
            }
        }
    }

    /// <summary><paramref name="v"/> with its −∞ lanes set to 0 (<paramref name="scratch"/> holds a vector's worth).</summary>
    private static TLanes FiniteOrZero<TLanes>(TLanes v, float* scratch)
        where TLanes : struct, IQueryLanes<TLanes>
    {
        TLanes.Store(v, scratch);
        for (int i = 0; i < TLanes.Count; i++)
        {
            scratch[i] = float.IsNegativeInfinity(scratch[i]) ? 0f : scratch[i];
        }

        return TLanes.Load(scratch);
    }

    /// <summary>Sets the scores of keys after a query to −∞ (only keys past the tile's first query t0 can be).</summary>
    private static void MaskFuture<TLanes>(float* scores, int s0, int nk, int t0)
        where TLanes : struct, IQueryLanes<TLanes>
    {
        int w = TLanes.Count;
        for (int j = Math.Max(0, t0 + 1 - s0); j < nk; j++)
        {
            float* row = scores + (j * w);
            TLanes.Store(TLanes.MaskBefore(TLanes.Load(row), s0 + j - t0), row);
        }
    }
}
