using Engine.Core.Backends;
using Engine.Core.Tensors;
using Engine.Models;
using Engine.Training.Objectives;
using Engine.Training.Rl.Sampling;

namespace Engine.Training.Rl.Ppo;

/// <summary>
/// Forward-only passes of a model over a packed rollout, a chunk of rows at a time: per-token log-probs and entropies
/// of the response tokens through the fused kernel (the [N,V] logits never held), or a scalar head's value at every
/// position. Results are host arrays [B·T] aligned with <see cref="RolloutBatch.Mask"/>, 0 where it is 0.
/// </summary>
internal sealed class RolloutPasses(Backend backend) : IDisposable
{
    private readonly DeviceScratch scratch = new(backend);

    public static void RequireLanguageModel(Transformer model, string role)
    {
        ArgumentNullException.ThrowIfNull(model);
        if (model.HasScalarHead)
        {
            throw new ArgumentException($"{role} needs a language-model head, not a scalar head", nameof(model));
        }
    }

    /// <summary>log π/τ and the entropy of π/τ at every response position.</summary>
    public (float[] LogProbs, float[] Entropy) Compute(Transformer model, RolloutBatch batch, float temperature, int rowsPerPass)
    {
        int time = batch.Time;
        var logProbs = new float[batch.Batch * time];
        var entropy = new float[batch.Batch * time];
        foreach (var (start, rows) in BatchRanges.Of(batch.Batch, rowsPerPass))
        {
            int n = rows * time, offset = start * time;
            var hidden = model.Forward(batch.Tokens.AsSpan(offset, n), rows, time);
            var targets = scratch.Upload("targets", batch.Targets.AsSpan(offset, n), n);
            var mask = scratch.Upload("mask", batch.Mask.AsSpan(offset, n), n);
            var logp = scratch.Get("logp", DType.F32, n);
            var h = scratch.Get("entropy", DType.F32, n);
            var stats = scratch.Get("rowstats", DType.F32, n, 2);
            backend.TokenLogProbsForward(new TokenLogProbOutputs(logp, stats, h), hidden, model.HeadWeight, new TokenLogProbInputs(targets, mask, default, temperature));
            backend.CopyToHost(logp, logProbs.AsSpan(offset, n));
            backend.CopyToHost(h, entropy.AsSpan(offset, n));
        }

        return (logProbs, entropy);
    }

    /// <summary>The scalar head's value at every position of the rollout, then zeroed outside the response mask.</summary>
    public float[] Values(Transformer critic, RolloutBatch batch, int rowsPerPass)
    {
        int time = batch.Time;
        var values = new float[batch.Batch * time];
        foreach (var (start, rows) in BatchRanges.Of(batch.Batch, rowsPerPass))
        {
            int n = rows * time, offset = start * time;
            var hidden = critic.Forward(batch.Tokens.AsSpan(offset, n), rows, time);
            var v = scratch.Get("values", DType.F32, n);
            critic.ScoreForward(v, hidden);
            backend.CopyToHost(v, values.AsSpan(offset, n));
        }

        for (int i = 0; i < values.Length; i++)
        {
            values[i] = batch.Mask[i] != 0f ? values[i] : 0f;
        }

        return values;
    }

    public void Dispose() => scratch.Dispose();
}
