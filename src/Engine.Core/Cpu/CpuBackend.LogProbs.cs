using System.Runtime.CompilerServices;
using Engine.Core.Backends;
using Engine.Core.Cpu.Gemm;
using Engine.Core.Cpu.Simd;
using Tensor = Engine.Core.Tensors.Tensor;

namespace Engine.Core.Cpu;

/// <summary>
/// Token log-probs, entropy and KL estimators through the LM head, and the masked sequence reductions.
/// <para>The head path never holds the [N,V] logits: rows are processed in chunks of R rows (R·V floats of workspace,
/// about <see cref="LogProbWorkspaceBytes"/>). Per chunk, one GEMM writes the raw logits h·Wᵀ into the workspace, one
/// work item per row group reduces each row to (logsumexp, entropy) and the outputs, and for backward overwrites the
/// row in place with dz; two more GEMMs then add dz·W into dh and dzᵀ·h into dW. The temperature is applied in the row
/// pass (z = x/τ, dz carries the 1/τ of the chain rule), so the GEMMs run with α = 1.</para>
/// <para>Everything is deterministic for any thread count: rows are independent items, and the GEMM splits depend only on
/// the shapes. The forward, backward and fused forward-backward share the same chunking and row arithmetic, so the fused
/// call gives the same bits as the forward followed by the backward.</para>
/// </summary>
public sealed unsafe partial class CpuBackend
{
    /// <summary>
    /// Target size of the logits workspace (R·V floats). With GPT-2's V = 50257 this is 240 rows: R is the K of the dW
    /// GEMM, and a full 256-deep K block keeps the passes over the [V,C] weight gradient as few as in one big GEMM.
    /// </summary>
    internal const long LogProbWorkspaceBytes = 48L << 20;

    /// <summary>Most rows per chunk: one GEMM K block (<see cref="Sgemm.KcMax"/>), rounded down to whole 12-row tiles.</summary>
    internal const int LogProbMaxChunkRows = 240;

    /// <summary>
    /// Vocabulary columns per backward GEMM call. Splitting dh += dz·W and dW += dzᵀ·h along V bounds the GEMM's packed
    /// copy of dz to R·<see cref="LogProbVocabBlock"/> floats instead of R·V.
    /// </summary>
    internal const int LogProbVocabBlock = 4096;

    /// <summary>Floor for z − max before e^: far below f32's underflow (−104), so e^ is exactly 0 there and −∞ logits give 0, not NaN.</summary>
    private const float ExpFloor = -1024f;

    /// <summary>Vectors summed in f32 before each partial sum is added into the double accumulator.</summary>
    private const int FlushVectors = 64;

    private const int ModeForward = 1;
    private const int ModeBackward = 2;

    private AlignedScratch? logProbWorkspace;

    /// <summary>Rows per chunk of the head path (0 = from <see cref="LogProbWorkspaceBytes"/>); tests set it to cross chunk edges.</summary>
    internal int LogProbChunkRowsOverride { get; set; }

    /// <summary>Vocabulary columns per backward GEMM call (0 = <see cref="LogProbVocabBlock"/>); tests set it to cross block edges.</summary>
    internal int LogProbVocabBlockOverride { get; set; }

    /// <summary>Rows per chunk the head path uses for vocabulary size <paramref name="v"/> and <paramref name="n"/> rows.</summary>
    internal int LogProbChunkRows(long v, long n)
    {
        long rows = LogProbChunkRowsOverride > 0
            ? LogProbChunkRowsOverride
            : Math.Clamp(LogProbWorkspaceBytes / (v * sizeof(float)) / 12 * 12, 12, LogProbMaxChunkRows);
        return (int)Math.Max(1, Math.Min(rows, n));
    }

    /// <inheritdoc/>
    public override long TokenLogProbWorkspaceBytes(long rows, long vocabulary) =>
        rows <= 0 || vocabulary <= 0 ? 0 : LogProbChunkRows(vocabulary, rows) * vocabulary * sizeof(float);

    /// <inheritdoc/>
    protected override void TokenLogProbsForwardCore(in TokenLogProbOutputs outputs, Tensor hidden, Tensor weight, in TokenLogProbInputs inputs) =>
        HeadLogProbs(ModeForward, outputs, default, default, default, hidden, weight, default, inputs);

    /// <inheritdoc/>
    protected override void TokenLogProbsBackwardCore(
        Tensor hiddenGrad, Tensor weightGrad, in TokenLogProbGrads grads, Tensor hidden, Tensor weight, Tensor rowStats, in TokenLogProbInputs inputs) =>
        HeadLogProbs(ModeBackward, default, hiddenGrad, weightGrad, grads, hidden, weight, rowStats, inputs);

    /// <inheritdoc/>
    protected override void TokenLogProbsForwardBackwardCore(
        in TokenLogProbOutputs outputs, Tensor hiddenGrad, Tensor weightGrad, in TokenLogProbGrads grads, Tensor hidden, Tensor weight,
        in TokenLogProbInputs inputs) =>
        HeadLogProbs(ModeForward | ModeBackward, outputs, hiddenGrad, weightGrad, grads, hidden, weight, default, inputs);

    /// <inheritdoc/>
    protected override void TokenLogProbsFromLogitsForwardCore(in TokenLogProbOutputs outputs, Tensor logits, in TokenLogProbInputs inputs)
    {
        var s = RowState(ModeForward, outputs, default, logits.Shape.Rows, checked((int)logits.Shape.Last), default, inputs);
        s.Z = logits.Pointer<float>();
        RunRows(ref s, s.Rows);
    }

    /// <inheritdoc/>
    protected override void TokenLogProbsFromLogitsBackwardCore(
        Tensor logitsGrad, in TokenLogProbGrads grads, Tensor logits, Tensor rowStats, in TokenLogProbInputs inputs)
    {
        var s = RowState(ModeBackward, default, grads, logits.Shape.Rows, checked((int)logits.Shape.Last), rowStats, inputs);
        s.Z = logits.Pointer<float>();
        s.Dz = logitsGrad.Pointer<float>();
        s.AddGrad = true;
        RunRows(ref s, s.Rows);
    }

    private void HeadLogProbs(
        int mode, in TokenLogProbOutputs outputs, Tensor hiddenGrad, Tensor weightGrad, in TokenLogProbGrads grads, Tensor hidden, Tensor weight,
        Tensor rowStats, in TokenLogProbInputs inputs)
    {
        long n = hidden.Shape.Rows;
        int c = checked((int)hidden.Shape.Last), v = checked((int)weight.Shape[0]);
        var s = RowState(mode, outputs, grads, n, v, rowStats, inputs);
        bool backward = (mode & ModeBackward) != 0;
        bool wantDh = backward && !hiddenGrad.IsEmpty, wantDw = backward && !weightGrad.IsEmpty;
        if (mode == ModeBackward && !wantDh && !wantDw)
        {
            return;
        }

        float* h = hidden.Pointer<float>(), w = weight.Pointer<float>();
        float* dh = hiddenGrad.Pointer<float>(), dw = weightGrad.Pointer<float>();
        int chunkRows = LogProbChunkRows(v, n);
        int vocabBlock = LogProbVocabBlockOverride > 0 ? LogProbVocabBlockOverride : LogProbVocabBlock;
        var workspace = Interlocked.Exchange(ref logProbWorkspace, null) ?? new AlignedScratch();
        try
        {
            workspace.Ensure((long)chunkRows * v);
            float* z = workspace.Pointer;
            for (long r0 = 0; r0 < n; r0 += chunkRows)
            {
                int rows = (int)Math.Min(chunkRows, n - r0);
                s.Row0 = r0;
                s.Z = z;
                s.Dz = z;
                if (!AnyActive(in s, rows))
                {
                    // A fully masked chunk (padding, a dropped sequence) needs no logits: its outputs are zeros and
                    // it adds nothing to the gradients.
                    if ((mode & ModeForward) != 0)
                    {
                        for (int i = 0; i < rows; i++)
                        {
                            WriteInactive(ref s, r0 + i);
                        }
                    }

                    continue;
                }

                // z[rows,V] = h[r0 .. r0+rows]·Wᵀ (raw; the row pass applies 1/τ).
                var logitsGemm = new GemmOperands
                {
                    A = h + (r0 * c), Lda = c,
                    B = w, Ldb = c, TransposeB = true,
                    C = z, Ldc = v,
                    M = rows, N = v, K = c, Alpha = 1f, Beta = 0f,
                };
                Sgemm.Run(pool, in logitsGemm);
                RunRows(ref s, rows);
                if (!backward)
                {
                    continue;
                }

                // The workspace now holds dz/τ: dh[rows] += dz·W and dW += dzᵀ·h[rows], a vocabulary block at a time.
                for (int v0 = 0; v0 < v; v0 += vocabBlock)
                {
                    int vb = Math.Min(vocabBlock, v - v0);
                    if (wantDh)
                    {
                        var g = new GemmOperands
                        {
                            A = z + v0, Lda = v,
                            B = w + ((long)v0 * c), Ldb = c,
                            C = dh + (r0 * c), Ldc = c,
                            M = rows, N = c, K = vb, Alpha = 1f, Beta = 1f,
                        };
                        Sgemm.Run(pool, in g);
                    }

                    if (wantDw)
                    {
                        var g = new GemmOperands
                        {
                            A = z + v0, Lda = v, TransposeA = true,
                            B = h + (r0 * c), Ldb = c,
                            C = dw + ((long)v0 * c), Ldc = c,
                            M = vb, N = c, K = rows, Alpha = 1f, Beta = 1f,
                        };
                        Sgemm.Run(pool, in g);
                    }
                }
            }
        }
        finally
        {
            Volatile.Write(ref logProbWorkspace, workspace);
        }
    }

    /// <summary>The row-pass state shared by every path; targets are checked here, before any output is written.</summary>
    private static LogProbRowState RowState(
        int mode, in TokenLogProbOutputs outputs, in TokenLogProbGrads grads, long rows, int v, Tensor rowStats, in TokenLogProbInputs inputs)
    {
        var s = new LogProbRowState
        {
            Mode = mode,
            Rows = rows,
            V = v,
            RowsPerItem = RowChunks.PerItem(v),
            InvTemperature = 1f / inputs.Temperature,
            Targets = inputs.Targets.Pointer<int>(),
            Mask = inputs.Mask.Pointer<float>(),
            Reference = inputs.ReferenceLogProbs.Pointer<float>(),
            LogProbs = outputs.LogProbs.Pointer<float>(),
            RowStats = (mode & ModeForward) != 0 ? outputs.RowStats.Pointer<float>() : rowStats.Pointer<float>(),
            Entropy = outputs.Entropy.Pointer<float>(),
            Kl = outputs.Kl.Pointer<float>(),
            LogProbsGrad = grads.LogProbs.Pointer<float>(),
            EntropyGrad = grads.Entropy.Pointer<float>(),
            KlGrad = grads.Kl.Pointer<float>(),
        };
        for (long n = 0; n < rows; n++)
        {
            if (s.Targets[n] >= v)
            {
                throw new ArgumentOutOfRangeException(
                    nameof(inputs), s.Targets[n], $"target {s.Targets[n]} of row {n} is outside the vocabulary [0, {v})");
            }
        }

        return s;
    }

    private static bool AnyActive(in LogProbRowState s, int rows)
    {
        for (int i = 0; i < rows; i++)
        {
            if (IsActive(in s, s.Row0 + i))
            {
                return true;
            }
        }

        return false;
    }

    private void RunRows(ref LogProbRowState s, long rows)
    {
        s.ChunkRows = rows;
        int items = checked((int)((rows + s.RowsPerItem - 1) / s.RowsPerItem));
        pool.For(
            items,
            ref s,
            Vec.Pick(s.V) switch
            {
                VecWidth.W512 => &LogProbRowsItem<V512>,
                VecWidth.W256 => &LogProbRowsItem<V256>,
                VecWidth.W128 => &LogProbRowsItem<V128>,
                _ => &LogProbRowsItem<V1>,
            });
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static bool IsActive(in LogProbRowState s, long n) => s.Targets[n] >= 0 && (s.Mask == null || s.Mask[n] != 0f);

    /// <summary>Exact zeros for every output of an inactive row.</summary>
    private static void WriteInactive(ref LogProbRowState s, long n)
    {
        if ((s.Mode & ModeForward) == 0)
        {
            return;
        }

        s.LogProbs[n] = 0f;
        if (s.RowStats != null)
        {
            s.RowStats[2 * n] = 0f;
            s.RowStats[(2 * n) + 1] = 0f;
        }

        if (s.Entropy != null)
        {
            s.Entropy[n] = 0f;
        }

        if (s.Kl != null)
        {
            s.Kl[3 * n] = 0f;
            s.Kl[(3 * n) + 1] = 0f;
            s.Kl[(3 * n) + 2] = 0f;
        }
    }

    /// <summary>One work item: a group of rows of the current chunk (row i of the chunk is global row Row0 + i).</summary>
    private static void LogProbRowsItem<V>(ref LogProbRowState s, int item)
        where V : unmanaged, IVec<V>
    {
        long first = (long)item * s.RowsPerItem, end = Math.Min(s.ChunkRows, first + s.RowsPerItem);
        for (long i = first; i < end; i++)
        {
            LogProbRow<V>(ref s, i);
        }
    }

    private static void LogProbRow<V>(ref LogProbRowState s, long i)
        where V : unmanaged, IVec<V>
    {
        long n = s.Row0 + i;
        int v = s.V;
        float* x = s.Z + (i * v);
        bool backward = (s.Mode & ModeBackward) != 0;
        if (!IsActive(in s, n))
        {
            WriteInactive(ref s, n);
            if (backward && !s.AddGrad)
            {
                // The in-place workspace row still holds logits; the dh and dW GEMMs must read zeros for it.
                new Span<float>(x, v).Clear();
            }

            return;
        }

        float k = s.InvTemperature;
        float m = s.Mask == null ? 1f : s.Mask[n];
        int target = s.Targets[n];
        float lse, entropy;
        if ((s.Mode & ModeForward) != 0)
        {
            var (lseD, entropyD) = RowLogSumExpEntropy<V>(x, v, k);
            lse = KlEstimators.Saturate(lseD);
            entropy = KlEstimators.Saturate(entropyD);
            if (s.RowStats != null)
            {
                s.RowStats[2 * n] = lse;
                s.RowStats[(2 * n) + 1] = entropy;
            }
        }
        else
        {
            lse = s.RowStats[2 * n];
            entropy = s.RowStats[(2 * n) + 1];
        }

        // logp from the stored (f32) logsumexp in every path, so the backward's KL fold sees the forward's exact logp.
        double logp = ((double)x[target] * k) - lse;
        double reference = s.Reference == null ? 0 : s.Reference[n];
        if ((s.Mode & ModeForward) != 0)
        {
            s.LogProbs[n] = KlEstimators.Saturate(m * logp);
            if (s.Entropy != null)
            {
                s.Entropy[n] = m * entropy;
            }

            if (s.Kl != null)
            {
                var (k1, k2, k3) = KlEstimators.Values(logp, reference);
                s.Kl[3 * n] = KlEstimators.Saturate(m * k1);
                s.Kl[(3 * n) + 1] = KlEstimators.Saturate(m * k2);
                s.Kl[(3 * n) + 2] = KlEstimators.Saturate(m * k3);
            }
        }

        if (!backward)
        {
            return;
        }

        double g = s.LogProbsGrad == null ? 0 : s.LogProbsGrad[n];
        if (s.KlGrad != null)
        {
            var (d1, d2, d3) = KlEstimators.Derivatives(logp, reference);
            g += (s.KlGrad[3 * n] * d1) + (s.KlGrad[(3 * n) + 1] * d2) + (s.KlGrad[(3 * n) + 2] * d3);
        }

        double gH = s.EntropyGrad == null ? 0 : s.EntropyGrad[n];

        // dz/dx = (1/τ)·dz/dz', and each output was scaled by m: fold both into the two row coefficients.
        float a = KlEstimators.Saturate(g * m * k), b = KlEstimators.Saturate(gH * m * k);
        RowGradient<V>(x, s.Dz + (i * v), v, k, lse, KlEstimators.Saturate(a + ((double)b * entropy)), b, s.AddGrad);
        s.Dz[(i * v) + target] += a;
    }

    /// <summary>
    /// (logsumexp_j z_j, H) of z = k·x: with d_j = (x_j − max x)·k, s = Σ e^d, t = Σ e^d·d, logsumexp = k·max + ln s and
    /// H = ln s − t/s. Sums run in f32 vectors flushed into double every <see cref="FlushVectors"/> vectors.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static (double LogSumExp, double Entropy) RowLogSumExpEntropy<V>(float* x, int n, float k)
        where V : unmanaged, IVec<V>
    {
        float max = VecOps.Max<V>(x, n);
        var zero = V.Create(0f);
        var shift = V.Create(max);
        var scale = V.Create(k);
        var floor = V.Create(ExpFloor);
        V s = zero, t = zero;
        double sum = 0, weighted = 0;
        int i = 0, pending = 0;
        for (; i <= n - V.Count; i += V.Count)
        {
            var d = V.Max((V.Load(x + i) - shift) * scale, floor);
            var e = V.Exp(d);
            s += e;
            t = V.MulAdd(e, d, t);
            if (++pending == FlushVectors)
            {
                sum += V.Sum(s);
                weighted += V.Sum(t);
                s = zero;
                t = zero;
                pending = 0;
            }
        }

        if (i < n)
        {
            var mask = V.TailMask(n - i);
            var d = V.Max((V.Load(x + n - V.Count) - shift) * scale, floor);
            var e = V.Select(mask, V.Exp(d), zero);
            s += e;
            t = V.MulAdd(e, d, t);
        }

        sum += V.Sum(s);
        weighted += V.Sum(t);
        double logSum = Math.Log(sum);
        return (((double)max * k) + logSum, logSum - (weighted / sum));
    }

    /// <summary>
    /// dz_j = −p_j·(a + b·(u_j + H)) with u_j = k·x_j − lse, p_j = e^u_j (c0 = a + b·H); written into dz, or added with
    /// <paramref name="add"/>. dz may be x itself. The caller adds a at the target.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void RowGradient<V>(float* x, float* dz, int n, float k, float lse, float c0, float b, bool add)
        where V : unmanaged, IVec<V>
    {
        var zero = V.Create(0f);
        var scale = V.Create(k);
        var negLse = V.Create(-lse);
        var floor = V.Create(ExpFloor);
        var vc0 = V.Create(c0);
        var vb = V.Create(b);
        int i = 0;
        for (; i <= n - V.Count; i += V.Count)
        {
            var u = V.Max(V.MulAdd(V.Load(x + i), scale, negLse), floor);
            var r = zero - (V.Exp(u) * V.MulAdd(vb, u, vc0));
            V.Store(dz + i, add ? V.Load(dz + i) + r : r);
        }

        if (i < n)
        {
            // Lanes below the mask were written already (and, in place, x there is dz now): keep them as they are.
            int at = n - V.Count;
            var mask = V.TailMask(n - i);
            var u = V.Max(V.MulAdd(V.Load(x + at), scale, negLse), floor);
            var r = zero - (V.Exp(u) * V.MulAdd(vb, u, vc0));
            var old = V.Load(dz + at);
            V.Store(dz + at, V.Select(mask, add ? old + r : r, old));
        }
    }

    // ------------------------------------------------------------------ sequence reductions

    /// <inheritdoc/>
    protected override void SequenceSumCore(Tensor output, Tensor values, Tensor mask, bool mean)
    {
        var s = SequenceState(values, mask, output, mean);
        pool.For(checked((int)((s.Sequences + s.RowsPerItem - 1) / s.RowsPerItem)), ref s, &SequenceSumItem);
    }

    /// <inheritdoc/>
    protected override void SequenceSumBackwardCore(Tensor valuesGrad, Tensor outputGrad, Tensor mask, bool mean)
    {
        var s = SequenceState(valuesGrad, mask, outputGrad, mean);
        pool.For(checked((int)((s.Sequences + s.RowsPerItem - 1) / s.RowsPerItem)), ref s, &SequenceSumBackwardItem);
    }

    private static SequenceSumState SequenceState(Tensor values, Tensor mask, Tensor perSequence, bool mean) => new()
    {
        Values = values.Pointer<float>(),
        Mask = mask.Pointer<float>(),
        PerSequence = perSequence.Pointer<float>(),
        Sequences = values.Shape.Rows,
        T = checked((int)values.Shape.Last),
        Mean = mean,
        RowsPerItem = RowChunks.PerItem(values.Shape.Last),
    };

    /// <summary>Σ_t m[b,t] (T when there is no mask), in double and in order.</summary>
    private static double MaskCount(in SequenceSumState s, long b)
    {
        if (s.Mask == null)
        {
            return s.T;
        }

        double count = 0;
        float* m = s.Mask + (b * s.T);
        for (int t = 0; t < s.T; t++)
        {
            count += m[t];
        }

        return count;
    }

    private static void SequenceSumItem(ref SequenceSumState s, int item)
    {
        long first = (long)item * s.RowsPerItem, end = Math.Min(s.Sequences, first + s.RowsPerItem);
        for (long b = first; b < end; b++)
        {
            float* v = s.Values + (b * s.T);
            float* m = s.Mask == null ? null : s.Mask + (b * s.T);
            double sum = 0;
            for (int t = 0; t < s.T; t++)
            {
                // A masked position contributes nothing even if its value is not finite (padding may hold anything).
                if (m == null)
                {
                    sum += v[t];
                }
                else if (m[t] != 0f)
                {
                    sum += (double)m[t] * v[t];
                }
            }

            if (s.Mean)
            {
                double count = MaskCount(in s, b);
                sum = count == 0 ? 0 : sum / count;
            }

            s.PerSequence[b] = (float)sum;
        }
    }

    private static void SequenceSumBackwardItem(ref SequenceSumState s, int item)
    {
        long first = (long)item * s.RowsPerItem, end = Math.Min(s.Sequences, first + s.RowsPerItem);
        for (long b = first; b < end; b++)
        {
            double g = s.PerSequence[b];
            if (s.Mean)
            {
                double count = MaskCount(in s, b);
                g = count == 0 ? 0 : g / count;
            }

            float* dv = s.Values + (b * s.T);
            float* m = s.Mask == null ? null : s.Mask + (b * s.T);
            for (int t = 0; t < s.T; t++)
            {
                dv[t] += (float)(m == null ? g : g * m[t]);
            }
        }
    }

    private struct LogProbRowState
    {
        public int Mode;
        public long Rows;
        public int V;
        public int RowsPerItem;
        public float InvTemperature;
        public int* Targets;
        public float* Mask;
        public float* Reference;
        public float* LogProbs;
        public float* RowStats;
        public float* Entropy;
        public float* Kl;
        public float* LogProbsGrad;
        public float* EntropyGrad;
        public float* KlGrad;

        /// <summary>Logits of the current chunk's first row (row-major, stride V).</summary>
        public float* Z;

        /// <summary>Where the chunk's dz/τ goes: Z itself (head path) or the caller's dlogits.</summary>
        public float* Dz;

        /// <summary>Add into Dz instead of overwriting it.</summary>
        public bool AddGrad;

        /// <summary>Global index of the chunk's first row.</summary>
        public long Row0;

        /// <summary>Rows in the current chunk.</summary>
        public long ChunkRows;
    }

    private struct SequenceSumState
    {
        public float* Values;
        public float* Mask;
        public float* PerSequence;
        public long Sequences;
        public int T;
        public bool Mean;
        public int RowsPerItem;
    }
}
