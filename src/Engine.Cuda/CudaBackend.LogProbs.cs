using Engine.Core.Backends;
using Engine.Core.Tensors;
using Engine.Cuda.Runtime;

namespace Engine.Cuda;

/// <summary>
/// Token log-probs, entropy and KL estimators through the LM head (kernels/logprob.cu), and the masked sequence sums
/// (kernels/sequence.cu).
/// <para>The head path never holds the [N,V] logits: rows go a chunk of R at a time and, when R rows of the whole
/// vocabulary would not fit <see cref="CudaBackendOptions.LogProbWorkspaceBytes"/>, the vocabulary goes in chunks of Vc
/// columns too. Per chunk, a cuBLAS GEMM writes the raw logits h·Wᵀ into the workspace and one block per row folds them
/// into a running (max, Σe^d, Σe^d·d, target logit) state; after the last chunk a kernel turns the state into the
/// outputs. Backward recomputes each chunk of logits, overwrites it in place with dz/τ and adds dh += dz·W and
/// dW += dzᵀ·h with two more GEMMs. The fused forward-backward keeps the logits of a row chunk when the whole vocabulary
/// fits in one chunk, so it runs three GEMMs per chunk instead of four.</para>
/// <para>The chunking depends only on the shapes and the options, and every kernel reduces in a fixed order, so results
/// are the same on every run.</para>
/// </summary>
public sealed unsafe partial class CudaBackend
{
    /// <summary>
    /// Fewest rows a chunk should have before the vocabulary is split: the row count is the K of the dW GEMM, and below a
    /// few hundred that GEMM streams the [V,C] gradient too often.
    /// </summary>
    internal const int LogProbMinRows = 256;

    /// <summary>Most rows per chunk (one block per row in the row kernels; more only adds workspace).</summary>
    internal const int LogProbMaxRows = 4096;

    /// <summary>Vocabulary chunks are whole multiples of this many columns (a warp's worth of floats).</summary>
    private const int LogProbVocabQuantum = 32;

    /// <summary>Threads of the row-per-block kernels for wide and narrow chunks (the count depends only on the chunk width).</summary>
    private const int LogProbWideThreads = 512;

    private const int LogProbNarrowThreads = 128;

    /// <summary>
    /// Rows per chunk and vocabulary columns per chunk for <paramref name="n"/> rows and a vocabulary of
    /// <paramref name="v"/>: the whole vocabulary when <see cref="LogProbMinRows"/> rows of it fit the budget, else
    /// vocabulary chunks sized so they do; then as many rows as fit, at most <see cref="LogProbMaxRows"/> and n.
    /// </summary>
    internal static (int Rows, int VocabChunk) LogProbChunks(long n, long v, long workspaceBytes, int rowOverride = 0, int vocabOverride = 0)
    {
        long floats = Math.Max(1, workspaceBytes / sizeof(float));
        long vocab = vocabOverride > 0
            ? vocabOverride
            : v * LogProbMinRows <= floats ? v : Math.Max(LogProbVocabQuantum, floats / LogProbMinRows / LogProbVocabQuantum * LogProbVocabQuantum);
        vocab = Math.Clamp(vocab, 1, Math.Max(1, v));
        long rows = rowOverride > 0 ? rowOverride : Math.Clamp(floats / vocab, 1, LogProbMaxRows);
        rows = Math.Clamp(rows, 1, Math.Max(1, n));
        return (checked((int)rows), checked((int)vocab));
    }

    /// <inheritdoc/>
    protected override void TokenLogProbsForwardCore(in TokenLogProbOutputs outputs, Tensor hidden, Tensor weight, in TokenLogProbInputs inputs) =>
        HeadLogProbs(forward: true, backward: false, outputs, default, default, default, hidden, weight, default, inputs);

    /// <inheritdoc/>
    protected override void TokenLogProbsBackwardCore(
        Tensor hiddenGrad, Tensor weightGrad, in TokenLogProbGrads grads, Tensor hidden, Tensor weight, Tensor rowStats, in TokenLogProbInputs inputs) =>
        HeadLogProbs(forward: false, backward: true, default, hiddenGrad, weightGrad, grads, hidden, weight, rowStats, inputs);

    /// <inheritdoc/>
    protected override void TokenLogProbsForwardBackwardCore(
        in TokenLogProbOutputs outputs, Tensor hiddenGrad, Tensor weightGrad, in TokenLogProbGrads grads, Tensor hidden, Tensor weight,
        in TokenLogProbInputs inputs) =>
        HeadLogProbs(forward: true, backward: true, outputs, hiddenGrad, weightGrad, grads, hidden, weight, default, inputs);

    /// <inheritdoc/>
    protected override void TokenLogProbsFromLogitsForwardCore(in TokenLogProbOutputs outputs, Tensor logits, in TokenLogProbInputs inputs)
    {
        long n = logits.Shape.Rows;
        int v = checked((int)logits.Shape.Last);
        if (n == 0)
        {
            return;
        }

        // The caller's logits are one chunk of all rows and the whole vocabulary: one stats pass, then the outputs.
        int rows = checked((int)n);
        nint state = Scratch(n * 4 * sizeof(double));
        float invT = 1f / inputs.Temperature;
        Launch(Kernels.LogProbChunkStats, new Dim3((uint)rows), new Dim3(LogProbThreads(v)), 0,
            KernelArg.Pointer(state), logits, v, 0L, 0, v, v, inputs.Targets, inputs.Mask, invT, ErrorWord());
        Launch(Kernels.LogProbFinish, new Dim3(Dim3.Blocks(n, ElementThreads)), new Dim3(ElementThreads), 0,
            outputs.LogProbs, outputs.RowStats, outputs.Entropy, outputs.Kl, KernelArg.Pointer(0), KernelArg.Pointer(state), 0L, rows, v,
            inputs.Targets, inputs.Mask, inputs.ReferenceLogProbs, KernelArg.Pointer(0), KernelArg.Pointer(0), KernelArg.Pointer(0), invT);
    }

    /// <inheritdoc/>
    protected override void TokenLogProbsFromLogitsBackwardCore(
        Tensor logitsGrad, in TokenLogProbGrads grads, Tensor logits, Tensor rowStats, in TokenLogProbInputs inputs)
    {
        long n = logits.Shape.Rows;
        int v = checked((int)logits.Shape.Last);
        if (n == 0)
        {
            return;
        }

        int rows = checked((int)n);
        nint coef = Scratch(n * 4 * sizeof(float));
        float invT = 1f / inputs.Temperature;
        Launch(Kernels.LogProbBackwardRows, new Dim3(Dim3.Blocks(n, RowsPerBlock)), new Dim3(ElementThreads), 0,
            KernelArg.Pointer(coef), rowStats, KernelArg.Pointer(0), KernelArg.Pointer(0), logits, 0L, rows, 0, v,
            inputs.Targets, inputs.Mask, inputs.ReferenceLogProbs, grads.LogProbs, grads.Entropy, grads.Kl, invT, ErrorWord());
        Launch(Kernels.LogProbChunkGrad, new Dim3((uint)rows), new Dim3(LogProbThreads(v)), 0,
            logitsGrad, logits, v, KernelArg.Pointer(coef), 0L, 0, v, v, inputs.Targets, inputs.Mask, invT, 1);
    }

    /// <inheritdoc/>
    protected override void SequenceSumCore(Tensor output, Tensor values, Tensor mask, bool mean)
    {
        var (b, t) = RowShape(values);
        if (b == 0)
        {
            return;
        }

        Launch(Kernels.SequenceSum, new Dim3(Dim3.Blocks(b, RowsPerBlock)), new Dim3(ElementThreads), 0, output, values, mask, b, t, mean ? 1 : 0);
    }

    /// <inheritdoc/>
    protected override void SequenceSumBackwardCore(Tensor valuesGrad, Tensor outputGrad, Tensor mask, bool mean)
    {
        var (b, t) = RowShape(valuesGrad);
        if (b == 0 || t == 0)
        {
            return;
        }

        Launch(Kernels.SequenceSumBackward, new Dim3(Dim3.Blocks(b, RowsPerBlock)), new Dim3(ElementThreads), 0,
            valuesGrad, outputGrad, mask, b, t, mean ? 1 : 0);
    }

    private static uint LogProbThreads(int columns) => columns >= 4096 ? (uint)LogProbWideThreads : LogProbNarrowThreads;

    private static long Aligned(long bytes) => (bytes + 255) & ~255L;

    /// <inheritdoc/>
    public override long TokenLogProbWorkspaceBytes(long rows, long vocabulary) =>
        rows <= 0 || vocabulary <= 0 ? 0 : HeadWorkspace(rows, vocabulary).TotalBytes;

    // One scratch block: the logits chunk [R, Vc], the row states [R, 4] (double), the gradient coefficients [R, 4].
    private (int Rows, int VocabChunk, long LogitsBytes, long StateBytes, long TotalBytes) HeadWorkspace(long n, long v)
    {
        var (rows, vocabChunk) = LogProbChunks(n, v, options.LogProbWorkspaceBytes, options.LogProbRowChunk, options.LogProbVocabChunk);
        long logitsBytes = Aligned((long)rows * vocabChunk * sizeof(float));
        long stateBytes = Aligned((long)rows * 4 * sizeof(double));
        return (rows, vocabChunk, logitsBytes, stateBytes, logitsBytes + stateBytes + ((long)rows * 4 * sizeof(float)));
    }

    private void HeadLogProbs(
        bool forward, bool backward, in TokenLogProbOutputs outputs, Tensor hiddenGrad, Tensor weightGrad, in TokenLogProbGrads grads, Tensor hidden,
        Tensor weight, Tensor rowStats, in TokenLogProbInputs inputs)
    {
        long n = hidden.Shape.Rows;
        int c = checked((int)hidden.Shape.Last), v = checked((int)weight.Shape[0]);
        bool wantDh = backward && !hiddenGrad.IsEmpty, wantDw = backward && !weightGrad.IsEmpty;
        if (n == 0 || (!forward && !wantDh && !wantDw))
        {
            return;
        }

        var (chunkRows, vocabChunk, logitsBytes, stateBytes, totalBytes) = HeadWorkspace(n, v);
        bool singleVocabChunk = vocabChunk >= v;
        nint z = Scratch(totalBytes);
        nint state = z + (nint)logitsBytes;
        nint coef = state + (nint)stateBytes;
        nint h = hidden.Address, w = weight.Address;
        float invT = 1f / inputs.Temperature;
        var none = KernelArg.Pointer(0);
        for (long r0 = 0; r0 < n; r0 += chunkRows)
        {
            int rows = (int)Math.Min(chunkRows, n - r0);
            if (forward)
            {
                for (int v0 = 0; v0 < v; v0 += vocabChunk)
                {
                    int vc = Math.Min(vocabChunk, v - v0);

                    // z[rows, vc] = h[r0 .. r0+rows]·W[v0 .. v0+vc]ᵀ, raw: the row kernels apply 1/τ.
                    Gemm(z, h + (nint)(r0 * c * sizeof(float)), w + (nint)((long)v0 * c * sizeof(float)), rows, vc, c, false, true, c, c, vc, 1f, 0f);
                    Launch(Kernels.LogProbChunkStats, new Dim3((uint)rows), new Dim3(LogProbThreads(vc)), 0,
                        KernelArg.Pointer(state), KernelArg.Pointer(z), vc, r0, v0, vc, v, inputs.Targets, inputs.Mask, invT, ErrorWord());
                }

                bool coefficients = backward && (wantDh || wantDw);
                Launch(Kernels.LogProbFinish, new Dim3(Dim3.Blocks(rows, ElementThreads)), new Dim3(ElementThreads), 0,
                    outputs.LogProbs, outputs.RowStats, outputs.Entropy, outputs.Kl, coefficients ? KernelArg.Pointer(coef) : none,
                    KernelArg.Pointer(state), r0, rows, v, inputs.Targets, inputs.Mask, inputs.ReferenceLogProbs,
                    coefficients ? grads.LogProbs : none, coefficients ? grads.Entropy : none, coefficients ? grads.Kl : none, invT);
            }
            else
            {
                Launch(Kernels.LogProbBackwardRows, new Dim3(Dim3.Blocks(rows, RowsPerBlock)), new Dim3(ElementThreads), 0,
                    KernelArg.Pointer(coef), rowStats, hidden, weight, none, r0, rows, c, v,
                    inputs.Targets, inputs.Mask, inputs.ReferenceLogProbs, grads.LogProbs, grads.Entropy, grads.Kl, invT, ErrorWord());
            }

            if (!wantDh && !wantDw)
            {
                continue;
            }

            for (int v0 = 0; v0 < v; v0 += vocabChunk)
            {
                int vc = Math.Min(vocabChunk, v - v0);
                nint wChunk = w + (nint)((long)v0 * c * sizeof(float));
                nint hChunk = h + (nint)(r0 * c * sizeof(float));

                // The fused pass still holds this chunk's logits when the vocabulary was a single chunk.
                if (!(forward && singleVocabChunk))
                {
                    Gemm(z, hChunk, wChunk, rows, vc, c, false, true, c, c, vc, 1f, 0f);
                }

                Launch(Kernels.LogProbChunkGrad, new Dim3((uint)rows), new Dim3(LogProbThreads(vc)), 0,
                    KernelArg.Pointer(z), KernelArg.Pointer(z), vc, KernelArg.Pointer(coef), r0, v0, vc, v, inputs.Targets, inputs.Mask, invT, 0);
                if (wantDh)
                {
                    // dh[rows, C] += dz[rows, vc]·W[v0 .. v0+vc]
                    Gemm(hiddenGrad.Address + (nint)(r0 * c * sizeof(float)), z, wChunk, rows, c, vc, false, false, vc, c, c, 1f, 1f);
                }

                if (wantDw)
                {
                    // dW[v0 .. v0+vc, C] += dzᵀ·h[rows]
                    Gemm(weightGrad.Address + (nint)((long)v0 * c * sizeof(float)), z, hChunk, vc, c, rows, true, false, vc, c, c, 1f, 1f);
                }
            }
        }
    }
}
