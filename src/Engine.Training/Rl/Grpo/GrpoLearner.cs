using Engine.Core.Backends;
using Engine.Core.Tensors;
using Engine.Models;
using Engine.Training.Objectives;
using Engine.Training.Rl.Ppo;
using Engine.Training.Rl.Sampling;

namespace Engine.Training.Rl.Grpo;

/// <summary>
/// The policy of the GRPO family and its passes: the sampling policy's log-probs of a step (forward only), and the
/// gradient of one micro-batch's loss (<see cref="Backend.GrpoLoss"/>), <b>added</b> to the policy's gradient buffer; the
/// optimizer step is the caller's. No critic.
/// </summary>
public sealed class GrpoLearner : IDisposable
{
    private readonly DeviceScratch scratch;
    private readonly RolloutPasses passes;
    private readonly GrpoOptions options;

    /// <summary>GRPO of <paramref name="policy"/> (LM head, created trainable) with <paramref name="options"/>.</summary>
    public GrpoLearner(Transformer policy, GrpoOptions options)
    {
        RolloutPasses.RequireLanguageModel(policy, "the policy");
        ArgumentNullException.ThrowIfNull(options);
        if (!policy.IsTrainable)
        {
            throw new ArgumentException("the policy is trained: create it with trainable: true (or add LoRA adapters)", nameof(policy));
        }

        options.Validate();
        Policy = policy;
        this.options = options;
        scratch = new DeviceScratch(policy.Backend);
        passes = new RolloutPasses(policy.Backend);
    }

    /// <summary>The policy being trained.</summary>
    public Transformer Policy { get; }

    /// <summary>The policy's log π/τ at every completion position of <paramref name="batch"/> [rows·T].</summary>
    public float[] LogProbs(RolloutBatch batch)
    {
        ArgumentNullException.ThrowIfNull(batch);
        return passes.Compute(Policy, batch, options.Temperature, options.LocalRolloutForwardBatchSize).LogProbs;
    }

    /// <summary>
    /// One micro-batch: rows <paramref name="rows"/> of <paramref name="experience"/> through the policy (a training
    /// pass), the GRPO loss of <see cref="GrpoOptions"/> over their loss mask with π_old the sampling policy (π itself,
    /// detached, when the experience has no old log-probs), and the backward pass adding
    /// <paramref name="gradScale"/>·∂L/∂θ into the gradients. <paramref name="tokenNormalizer"/> is DAPO's divisor (the
    /// optimizer batch's tokens). Returns the kernel's statistics of the micro-batch.
    /// </summary>
    public GrpoStatistics AccumulateGradients(GrpoExperience experience, IReadOnlyList<int> rows, float gradScale, float tokenNormalizer)
    {
        ArgumentNullException.ThrowIfNull(experience);
        ArgumentNullException.ThrowIfNull(rows);
        var b = Policy.Backend;
        var batch = experience.Batch.Select(rows);
        int m = batch.Batch, time = batch.Time, n = m * time;

        var mask = Gather("mask", experience.LossMask);
        var inputs = new TokenLogProbInputs(scratch.Upload("targets", batch.Targets, n), mask, default, options.Temperature);
        var hidden = Policy.ForwardTraining(batch.Tokens, m, time);
        var logp = scratch.Get("logp", DType.F32, m, time);
        var rowStats = scratch.Get("rowstats", DType.F32, n, 2);
        var entropy = scratch.Get("entropy", DType.F32, m, time);
        b.TokenLogProbsForward(new TokenLogProbOutputs(logp, rowStats, entropy), hidden, Policy.HeadWeight, inputs);

        var logpGrad = scratch.Zeros("dlogp", m, time);
        var lossOptions = new GrpoLossOptions(
            options.Epsilon, options.ClipHigh, options.AdvantageEstimator == AdvantageEstimator.ReinforcePp ? 0f : options.Beta,
            options.ImportanceSamplingLevel, options.LossType, options.MaxCompletionLength, tokenNormalizer, gradScale);
        var stats = b.GrpoLoss(
            logp,
            experience.OldLogProbs is { } old ? Gather("old", old) : logp,
            experience.ReferenceLogProbs is { } reference ? Gather("reference", reference) : default,
            Gather("advantages", experience.Advantages),
            mask,
            entropy,
            logpGrad,
            lossOptions);

        b.TokenLogProbsBackward(Policy.HiddenGradient, Policy.HeadGradient, new TokenLogProbGrads(logpGrad), hidden, Policy.HeadWeight, rowStats, inputs);
        Policy.BackwardFromHidden();
        return stats;

        Tensor Gather(string name, float[] perPosition) => scratch.Upload(name, experience.Batch.GatherRows(perPosition, rows), m, time);
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        scratch.Dispose();
        passes.Dispose();
    }
}
