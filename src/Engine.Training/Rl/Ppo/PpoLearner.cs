using Engine.Core.Backends;
using Engine.Core.Tensors;
using Engine.Models;
using Engine.Training.Data;
using Engine.Training.Objectives;
using Engine.Training.Rl.Sampling;

namespace Engine.Training.Rl.Ppo;

/// <summary>
/// The actor and critic of PPO and the passes over them: the rollout's behaviour log-probs, entropies and values
/// (forward only), and the gradients of one micro-batch's clipped policy and value losses
/// (<see cref="Backend.PpoLosses"/>), plus PPO-ptx's next-token loss on pretraining text. Gradients are <b>added</b>
/// to each model's own gradient buffer; the optimizer steps are the caller's (each model keeps its own AdamW moments).
/// </summary>
public sealed class PpoLearner : IDisposable
{
    private readonly DeviceScratch scratch;
    private readonly RolloutPasses passes;
    private readonly PpoOptions options;

    /// <summary>PPO of <paramref name="actor"/> (LM head, from SFT) with <paramref name="critic"/> (scalar head, from the RM).</summary>
    public PpoLearner(Transformer actor, Transformer critic, PpoOptions options)
    {
        RolloutPasses.RequireLanguageModel(actor, "the actor");
        ArgumentNullException.ThrowIfNull(critic);
        ArgumentNullException.ThrowIfNull(options);
        if (!critic.HasScalarHead)
        {
            throw new ArgumentException("the critic needs a scalar (value) head; load it from the reward model", nameof(critic));
        }

        if (ReferenceEquals(actor, critic) || actor.Backend != critic.Backend)
        {
            throw new ArgumentException("the actor and critic must be separate models on the same backend", nameof(critic));
        }

        if (!actor.IsTrainable || !critic.IsTrainable)
        {
            throw new ArgumentException("the actor and critic are trained: create them with trainable: true", nameof(actor));
        }

        options.Validate();
        Actor = actor;
        Critic = critic;
        this.options = options;
        scratch = new DeviceScratch(actor.Backend);
        passes = new RolloutPasses(actor.Backend);
    }

    /// <summary>The policy being trained.</summary>
    public Transformer Actor { get; }

    /// <summary>The value model being trained.</summary>
    public Transformer Critic { get; }

    /// <summary>The actor's log π/τ and entropy of π/τ at every response position of <paramref name="batch"/> [B·T].</summary>
    public (float[] LogProbs, float[] Entropy) PolicyLogProbs(RolloutBatch batch)
    {
        ArgumentNullException.ThrowIfNull(batch);
        return passes.Compute(Actor, batch, options.Temperature, options.LocalRolloutForwardBatchSize);
    }

    /// <summary>The critic's values at every response position of <paramref name="batch"/> [B·T] (0 elsewhere).</summary>
    public float[] Values(RolloutBatch batch)
    {
        ArgumentNullException.ThrowIfNull(batch);
        return passes.Values(Critic, batch, options.LocalRolloutForwardBatchSize);
    }

    /// <summary>
    /// One micro-batch of a PPO update: rows <paramref name="rows"/> of <paramref name="experience"/> through both
    /// models (training passes), L = masked_mean(max(−A·ρ, −A·clip(ρ, 1 ± ε))) and
    /// L_V = ½·masked_mean(max((V − R)², (clip(V, V_old ± ε_v) − R)²)) over their response tokens, and the backward
    /// passes: adds <paramref name="scale"/>·∂L/∂θ_actor and <paramref name="scale"/>·vf_coef·∂L_V/∂θ_critic into the
    /// models' gradients. <paramref name="scale"/> is the micro-batch's share of its minibatch's tokens, so accumulated
    /// micro-batches give the minibatch's masked means. Returns the kernel's statistics of the micro-batch.
    /// </summary>
    public PpoStatistics AccumulateGradients(PpoExperience experience, IReadOnlyList<int> rows, float scale)
    {
        ArgumentNullException.ThrowIfNull(experience);
        ArgumentNullException.ThrowIfNull(rows);
        var b = Actor.Backend;
        var batch = experience.Batch.Select(rows);
        int m = batch.Batch, time = batch.Time, n = m * time;

        var inputs = new TokenLogProbInputs(scratch.Upload("targets", batch.Targets, n), scratch.Upload("mask", batch.Mask, n), default, options.Temperature);
        var hidden = Actor.ForwardTraining(batch.Tokens, m, time);
        var logp = scratch.Get("logp", DType.F32, n);
        var rowStats = scratch.Get("rowstats", DType.F32, n, 2);
        var entropy = scratch.Get("entropy", DType.F32, n);
        b.TokenLogProbsForward(new TokenLogProbOutputs(logp, rowStats, entropy), hidden, Actor.HeadWeight, inputs);

        var criticHidden = Critic.ForwardTraining(batch.Tokens, m, time);
        var values = scratch.Get("values", DType.F32, n);
        Critic.ScoreForward(values, criticHidden);

        var logpGrad = scratch.Zeros("dlogp", n);
        var valuesGrad = scratch.Zeros("dvalues", n);
        var stats = b.PpoLosses(
            logp,
            Gather("old", experience.OldLogProbs),
            Gather("advantages", experience.Advantages),
            inputs.Mask,
            values,
            Gather("oldvalues", experience.Values),
            Gather("returns", experience.Returns),
            entropy,
            logpGrad,
            valuesGrad,
            new PpoLossOptions(options.Cliprange, options.CliprangeValue, scale, options.VfCoef * scale));

        b.TokenLogProbsBackward(Actor.HiddenGradient, Actor.HeadGradient, new TokenLogProbGrads(logpGrad), hidden, Actor.HeadWeight, rowStats, inputs);
        Actor.BackwardFromHidden();
        Critic.ScoreBackward(Critic.HiddenGradient, valuesGrad, criticHidden);
        Critic.BackwardFromHidden();
        return stats;

        Tensor Gather(string name, float[] perPosition) => scratch.Upload(name, experience.Batch.GatherRows(perPosition, rows), n);
    }

    /// <summary>PPO-ptx: adds <paramref name="coefficient"/>·∂NLL/∂θ of a pretraining batch into the actor's gradients; returns the mean NLL.</summary>
    public double AccumulatePtxGradients(SequenceBatch batch, float coefficient)
    {
        ArgumentNullException.ThrowIfNull(batch);
        return Actor.ForwardBackward(batch.Tokens, batch.Targets, batch.Batch, batch.Time, coefficient);
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        scratch.Dispose();
        passes.Dispose();
    }
}
