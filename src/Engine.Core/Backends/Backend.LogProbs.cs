using Engine.Core.Tensors;

namespace Engine.Core.Backends;

/// <summary>The alignment kernels: fused token log-probs, entropy and KL estimators, and masked sequence reductions.</summary>
public abstract partial class Backend
{
    // ------------------------------------------------------------------ token log-probs

    /// <summary>
    /// Bytes of workspace the head path of the token log-prob ops holds for <paramref name="rows"/> rows over a
    /// vocabulary of <paramref name="vocabulary"/> (a chunk of logits and its row state; kept by the backend between calls).
    /// </summary>
    public abstract long TokenLogProbWorkspaceBytes(long rows, long vocabulary);

    /// <summary>
    /// Token log-probs through the LM head without ever holding the [N,V] logits: z = h·Wᵀ/τ is computed a chunk of
    /// rows at a time and reduced to logp_n = z[n,y_n] − logsumexp_v z[n,v] (plus the entropy and KL estimators when
    /// asked) and the per-row statistics the backward pass needs. hidden is [N,C], weight [V,C] (a tied or untied head).
    /// </summary>
    public void TokenLogProbsForward(in TokenLogProbOutputs outputs, Tensor hidden, Tensor weight, in TokenLogProbInputs inputs)
    {
        var (n, _) = CheckHead(hidden, weight);
        CheckLogProbOutputs(outputs, inputs, n, rowStatsRequired: true);
        CheckLogProbInputs(inputs, n);
        TokenLogProbsForwardCore(outputs, hidden, weight, inputs);
    }

    /// <summary>
    /// Backward of <see cref="TokenLogProbsForward"/>: recomputes each chunk of logits, forms
    /// dz = m·(g·(onehot(y) − p) − g_H·p∘(z − Σp·z)) with g the log-prob gradient (KL gradients folded in), and adds
    /// dh += dz·W/τ and dW += dzᵀ·h/τ. rowStats is the forward's; either gradient may be empty (a frozen head).
    /// </summary>
    public void TokenLogProbsBackward(
        Tensor hiddenGrad, Tensor weightGrad, in TokenLogProbGrads grads, Tensor hidden, Tensor weight, Tensor rowStats, in TokenLogProbInputs inputs)
    {
        var (n, _) = CheckHead(hidden, weight);
        OptionalShape(hidden, hiddenGrad, nameof(hiddenGrad));
        OptionalShape(weight, weightGrad, nameof(weightGrad));
        CheckRowStats(rowStats, n);
        CheckLogProbGrads(grads, inputs, n);
        CheckLogProbInputs(inputs, n);
        TokenLogProbsBackwardCore(hiddenGrad, weightGrad, grads, hidden, weight, rowStats, inputs);
    }

    /// <summary>
    /// <see cref="TokenLogProbsForward"/> and <see cref="TokenLogProbsBackward"/> in one pass over the logits, for losses
    /// whose gradients with respect to the outputs are known before the forward (Σ m·(a·logp + b·H + c·k)): each chunk
    /// of logits is computed once, so the work is three GEMMs instead of four. The KL gradients are folded with the
    /// log-probs of this same pass. RowStats is optional here.
    /// </summary>
    public void TokenLogProbsForwardBackward(
        in TokenLogProbOutputs outputs, Tensor hiddenGrad, Tensor weightGrad, in TokenLogProbGrads grads, Tensor hidden, Tensor weight,
        in TokenLogProbInputs inputs)
    {
        var (n, _) = CheckHead(hidden, weight);
        OptionalShape(hidden, hiddenGrad, nameof(hiddenGrad));
        OptionalShape(weight, weightGrad, nameof(weightGrad));
        CheckLogProbOutputs(outputs, inputs, n, rowStatsRequired: false);
        CheckLogProbGrads(grads, inputs, n);
        CheckLogProbInputs(inputs, n);
        TokenLogProbsForwardBackwardCore(outputs, hiddenGrad, weightGrad, grads, hidden, weight, inputs);
    }

    /// <summary>
    /// <see cref="TokenLogProbsForward"/> from logits the caller already has: z = logits/τ with logits [N,V].
    /// </summary>
    public void TokenLogProbsFromLogitsForward(in TokenLogProbOutputs outputs, Tensor logits, in TokenLogProbInputs inputs)
    {
        var (n, _) = RowsAndChannels(logits, nameof(logits));
        CheckLogProbOutputs(outputs, inputs, n, rowStatsRequired: true);
        CheckLogProbInputs(inputs, n);
        TokenLogProbsFromLogitsForwardCore(outputs, logits, inputs);
    }

    /// <summary>
    /// Backward of <see cref="TokenLogProbsFromLogitsForward"/>: dlogits[N,V] += dz/τ (dz as in
    /// <see cref="TokenLogProbsBackward"/>), from the forward's rowStats.
    /// </summary>
    public void TokenLogProbsFromLogitsBackward(Tensor logitsGrad, in TokenLogProbGrads grads, Tensor logits, Tensor rowStats, in TokenLogProbInputs inputs)
    {
        var (n, _) = RowsAndChannels(logits, nameof(logits));
        SameShape(logits, logitsGrad, nameof(logitsGrad));
        CheckRowStats(rowStats, n);
        CheckLogProbGrads(grads, inputs, n);
        CheckLogProbInputs(inputs, n);
        TokenLogProbsFromLogitsBackwardCore(logitsGrad, grads, logits, rowStats, inputs);
    }

    // ------------------------------------------------------------------ sequence reductions

    /// <summary>
    /// Masked sum over time: out[b] = Σ_t m[b,t]·v[b,t], or with <paramref name="mean"/> that sum ÷ Σ_t m[b,t]
    /// (0 for a fully masked sequence, never NaN). values and mask are [B,T], output [B]; an empty mask means all ones.
    /// </summary>
    public void SequenceSum(Tensor output, Tensor values, Tensor mask, bool mean)
    {
        var (b, t) = RowsAndChannels(values, nameof(values));
        OptionalShape(values, mask, nameof(mask));
        RequireF32(output, nameof(output));
        RequireCount(output, nameof(output), b);
        _ = t;
        SequenceSumCore(output, values, mask, mean);
    }

    /// <summary>
    /// Backward of <see cref="SequenceSum"/>: dv[b,t] += g[b]·m[b,t] (÷ Σ_t m[b,t] for the mean; nothing for a fully
    /// masked sequence).
    /// </summary>
    public void SequenceSumBackward(Tensor valuesGrad, Tensor outputGrad, Tensor mask, bool mean)
    {
        var (b, _) = RowsAndChannels(valuesGrad, nameof(valuesGrad));
        OptionalShape(valuesGrad, mask, nameof(mask));
        RequireF32(outputGrad, nameof(outputGrad));
        RequireCount(outputGrad, nameof(outputGrad), b);
        SequenceSumBackwardCore(valuesGrad, outputGrad, mask, mean);
    }

#pragma warning disable CS1591 // The Core methods are documented by their public counterparts above.
    protected abstract void TokenLogProbsForwardCore(in TokenLogProbOutputs outputs, Tensor hidden, Tensor weight, in TokenLogProbInputs inputs);
    protected abstract void TokenLogProbsBackwardCore(
        Tensor hiddenGrad, Tensor weightGrad, in TokenLogProbGrads grads, Tensor hidden, Tensor weight, Tensor rowStats, in TokenLogProbInputs inputs);
    protected abstract void TokenLogProbsForwardBackwardCore(
        in TokenLogProbOutputs outputs, Tensor hiddenGrad, Tensor weightGrad, in TokenLogProbGrads grads, Tensor hidden, Tensor weight,
        in TokenLogProbInputs inputs);
    protected abstract void TokenLogProbsFromLogitsForwardCore(in TokenLogProbOutputs outputs, Tensor logits, in TokenLogProbInputs inputs);
    protected abstract void TokenLogProbsFromLogitsBackwardCore(
        Tensor logitsGrad, in TokenLogProbGrads grads, Tensor logits, Tensor rowStats, in TokenLogProbInputs inputs);
    protected abstract void SequenceSumCore(Tensor output, Tensor values, Tensor mask, bool mean);
    protected abstract void SequenceSumBackwardCore(Tensor valuesGrad, Tensor outputGrad, Tensor mask, bool mean);
#pragma warning restore CS1591

    // ------------------------------------------------------------------ validation

    private (long N, long C) CheckHead(Tensor hidden, Tensor weight)
    {
        var (n, c) = RowsAndChannels(hidden, nameof(hidden));
        RequireF32(weight, nameof(weight), rank: 2);
        if (weight.Shape[1] != c)
        {
            throw new ArgumentException($"head weight {weight.Shape} must be [V, {c}] for hidden {hidden.Shape}", nameof(weight));
        }

        return (n, c);
    }

    private void CheckLogProbInputs(in TokenLogProbInputs inputs, long n)
    {
        RequireTokens(inputs.Targets, "targets");
        RequireCount(inputs.Targets, "targets", n);
        OptionalRowVector(inputs.Mask, "mask", n);
        OptionalRowVector(inputs.ReferenceLogProbs, "referenceLogProbs", n);
        if (!(inputs.Temperature > 0f && float.IsFinite(inputs.Temperature)))
        {
            throw new ArgumentOutOfRangeException(nameof(inputs), $"temperature must be positive and finite, got {inputs.Temperature}");
        }
    }

    private void CheckLogProbOutputs(in TokenLogProbOutputs outputs, in TokenLogProbInputs inputs, long n, bool rowStatsRequired)
    {
        RequireF32(outputs.LogProbs, "logProbs");
        RequireCount(outputs.LogProbs, "logProbs", n);
        if (rowStatsRequired || !outputs.RowStats.IsEmpty)
        {
            CheckRowStats(outputs.RowStats, n);
        }

        OptionalRowVector(outputs.Entropy, "entropy", n);
        OptionalKl(outputs.Kl, "kl", inputs, n);
    }

    private void CheckLogProbGrads(in TokenLogProbGrads grads, in TokenLogProbInputs inputs, long n)
    {
        if (grads.LogProbs.IsEmpty && grads.Entropy.IsEmpty && grads.Kl.IsEmpty)
        {
            throw new ArgumentException("at least one of the log-prob, entropy and KL gradients is needed", nameof(grads));
        }

        OptionalRowVector(grads.LogProbs, "logProbsGrad", n);
        OptionalRowVector(grads.Entropy, "entropyGrad", n);
        OptionalKl(grads.Kl, "klGrad", inputs, n);
    }

    private void CheckRowStats(Tensor rowStats, long n)
    {
        RequireF32(rowStats, nameof(rowStats));
        if (rowStats.ElementCount != n * 2 || rowStats.Shape.Last != 2)
        {
            throw new ArgumentException($"rowStats must be [{n}, 2], got {rowStats.Shape}", nameof(rowStats));
        }
    }

    private void OptionalKl(Tensor kl, string name, in TokenLogProbInputs inputs, long n)
    {
        if (kl.IsEmpty)
        {
            return;
        }

        RequireF32(kl, name);
        if (kl.ElementCount != n * 3 || kl.Shape.Last != 3)
        {
            throw new ArgumentException($"{name} must be [{n}, 3] (k1, k2, k3), got {kl.Shape}", name);
        }

        if (inputs.ReferenceLogProbs.IsEmpty)
        {
            throw new ArgumentException($"{name} needs reference log-probs", name);
        }
    }

    private void OptionalRowVector(Tensor t, string name, long n)
    {
        if (!t.IsEmpty)
        {
            RequireF32(t, name);
            RequireCount(t, name, n);
        }
    }

    /// <summary>A per-row tensor: any shape with exactly n elements ([N] or [B,T]).</summary>
    private void RequireCount(Tensor t, string name, long n)
    {
        Require(t, name);
        if (t.ElementCount != n)
        {
            throw new ArgumentException($"{name} must have {n} elements (one per row), got {t.Shape}", name);
        }
    }
}
