using Engine.Core.Backends;
using Engine.Core.Tensors;
using Engine.Models;

namespace Engine.Training.Objectives;

/// <summary>
/// Sequence log-probs of a batch's rows, log π(y|x) = Σ_t m_t·log π(y_t | y_&lt;t, x) over the response tokens only,
/// through the fused token log-prob kernel (the [N,V] logits are never held), and the way back into the model.
/// One instance per model: it owns the device scratch the forward leaves for the backward.
/// </summary>
internal sealed class SequenceLogProbs(Backend backend) : IDisposable
{
    private readonly DeviceScratch scratch = new(backend);
    private Tensor targets, mask, tokenLogProbs, rowStats;
    private int rows, time;

    /// <summary>
    /// Runs the LM head of <paramref name="model"/> over <paramref name="hidden"/> [R·T, C] (from its last forward of
    /// the batch's tokens) and writes one value per row into <paramref name="result"/>: the sum over response tokens.
    /// When <paramref name="tokenResult"/> is not empty it also receives every position's log π(y_t | y_&lt;t, x) [R·T].
    /// </summary>
    public void Forward(Transformer model, Tensor hidden, PreferenceBatch batch, Span<float> result, Span<float> tokenResult = default)
    {
        rows = batch.Rows;
        time = batch.Time;
        long n = (long)rows * time;
        var b = scratch.Backend;
        targets = scratch.Upload("targets", batch.Sequences.Targets, n);
        mask = scratch.Upload("mask", batch.Sequences.LossMask, rows, time);
        tokenLogProbs = scratch.Get("logp", DType.F32, n);
        rowStats = scratch.Get("rowstats", DType.F32, n, 2);
        b.TokenLogProbsForward(new TokenLogProbOutputs(tokenLogProbs, rowStats), hidden, model.HeadWeight, new TokenLogProbInputs(targets));
        var sequences = scratch.Get("seq", DType.F32, rows);
        b.SequenceSum(sequences, tokenLogProbs.Reshape(rows, time), mask, mean: false);
        b.CopyToHost(sequences, result[..rows]);
        if (!tokenResult.IsEmpty)
        {
            b.CopyToHost(tokenLogProbs, tokenResult[..(int)n]);
        }
    }

    /// <summary>
    /// Backward of the last <see cref="Forward"/> (same model, hidden states and batch) for ∂L/∂(sequence value)
    /// <paramref name="sequenceGrad"/> [R]: adds into the model's <see cref="Transformer.HiddenGradient"/> and LM-head
    /// gradient. The caller runs <see cref="Transformer.BackwardFromHidden"/> next.
    /// </summary>
    public void Backward(Transformer model, Tensor hidden, ReadOnlySpan<float> sequenceGrad)
    {
        if (targets.IsEmpty)
        {
            throw new InvalidOperationException("Backward needs the Forward of the same batch first");
        }

        var b = scratch.Backend;
        long n = (long)rows * time;
        var sequences = scratch.Upload("dseq", sequenceGrad[..rows], rows);
        var tokens = scratch.Zeros("dlogp", rows, time);
        b.SequenceSumBackward(tokens, sequences, mask, mean: false);
        b.TokenLogProbsBackward(
            model.HiddenGradient, model.HeadGradient, new TokenLogProbGrads(tokens.Reshape(n)), hidden, model.HeadWeight, rowStats,
            new TokenLogProbInputs(targets));
    }

    public void Dispose() => scratch.Dispose();
}
