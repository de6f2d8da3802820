using System.ComponentModel;
using Engine.Core.Backends;
using Engine.Core.Tensors;
using Engine.Models;

namespace Engine.Training.Objectives;

/// <summary>Settings of <see cref="DpoObjective"/>, with TRL's defaults.</summary>
public sealed record DpoOptions
{
    /// <summary>
    /// The per-pair loss of h = log-ratio(chosen) − log-ratio(rejected): sigmoid (DPO), robust (label noise ε), hinge
    /// (SLiC) or IPO (length-normalised log-ratios, target 1/(2β)).
    /// </summary>
    [Description("the pairwise loss: sigmoid, robust, hinge or ipo")]
    public PairwiseLossType Loss { get; init; } = PairwiseLossType.Sigmoid;

    /// <summary>β: how far the policy may move from the reference (the implicit reward is β·log(π/π_ref)).</summary>
    [Description("β: how far the policy may move from the reference")]
    public float Beta { get; init; } = 0.1f;

    /// <summary>ε of the sigmoid (conservative DPO) and robust losses: the assumed probability that a label is flipped.</summary>
    [Description("ε, assumed probability that a preference label is flipped (sigmoid, robust)")]
    public float LabelSmoothing { get; init; }

    /// <summary>Throws <see cref="ArgumentException"/> naming the first setting out of range by its key and flag.</summary>
    public void Validate()
    {
        if (!(Beta > 0f && float.IsFinite(Beta)))
        {
            throw new ArgumentException($"beta (--beta) must be positive and finite, got {Beta}");
        }

        if (!Enum.IsDefined(Loss))
        {
            throw new ArgumentException($"loss (--loss) must be sigmoid, ipo, hinge or robust, got {(int)Loss}");
        }

        bool smoothingOk = Loss switch
        {
            PairwiseLossType.Sigmoid => LabelSmoothing is >= 0f and <= 0.5f,
            PairwiseLossType.Robust => LabelSmoothing is >= 0f and < 0.5f,
            _ => LabelSmoothing == 0f,
        };
        if (!smoothingOk)
        {
            throw new ArgumentException(
                $"label_smoothing (--label-smoothing) {LabelSmoothing} is out of range for the {Loss.ToString().ToLowerInvariant()} loss ([0, ½] for sigmoid, [0, ½) for robust, 0 otherwise)");
        }
    }
}

/// <summary>
/// Direct Preference Optimization (Rafailov et al. 2023) and its variants over <see cref="PreferenceBatch"/>es: each
/// response's score is s = β·(log π(y|x) − log π_ref(y|x)) with sequence log-probs summed over the response tokens
/// (IPO: the mean per token, not times β), and <see cref="Backend.PairwiseLoss"/> turns the pairs' scores into the
/// loss. Chosen and rejected responses run through the policy in one forward pass; the log-probs come from the fused
/// kernel over the LM head, so the [N,V] logits are never held. The reference is a frozen model or a cache of its
/// log-probs (<see cref="IReferenceLogProbs"/>). Metrics follow TRL: <c>rewards/chosen</c> and <c>rewards/rejected</c>
/// (the implicit rewards β·log(π/π_ref)), <c>rewards/accuracies</c>, <c>rewards/margins</c>, <c>logps/chosen</c>,
/// <c>logps/rejected</c>, each a pair-weighted mean; for IPO the log-probs are the per-token means, as TRL reports them.
/// </summary>
public sealed class DpoObjective : ITrainingObjective<PreferenceBatch>, IDisposable
{
    private readonly SequenceLogProbs pass;
    private readonly DeviceScratch scratch;
    private readonly ReferenceModel? ownedReference;

    /// <summary>DPO of <paramref name="policy"/> against reference log-probs from <paramref name="reference"/> (a model or a cache).</summary>
    public DpoObjective(Transformer policy, IReferenceLogProbs reference, DpoOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(policy);
        ArgumentNullException.ThrowIfNull(reference);
        if (policy.HasScalarHead)
        {
            throw new ArgumentException("DPO trains a language model: the policy has a scalar head", nameof(policy));
        }

        if (reference is ReferenceModel same && ReferenceEquals(same.Model, policy) && policy.Lora is null)
        {
            throw new ArgumentException(
                "the reference must be a separate frozen model (or cached log-probs), or the policy itself only when it trains LoRA adapters (its base is the reference)", nameof(reference));
        }

        if (reference is ReferenceModel r && r.Model.Config.VocabSize != policy.Config.VocabSize)
        {
            throw new ArgumentException(
                $"the reference model's vocabulary ({r.Model.Config.VocabSize}) differs from the policy's ({policy.Config.VocabSize})", nameof(reference));
        }

        Options = options ?? new DpoOptions();
        Options.Validate();
        Policy = policy;
        Reference = reference;
        pass = new SequenceLogProbs(policy.Backend);
        scratch = new DeviceScratch(policy.Backend);
    }

    /// <summary>DPO of <paramref name="policy"/> against a frozen reference model kept in memory (the caller owns both models).</summary>
    public DpoObjective(Transformer policy, Transformer reference, DpoOptions? options = null)
        : this(policy, new ReferenceModel(reference ?? throw new ArgumentNullException(nameof(reference))), options)
    {
        ownedReference = (ReferenceModel)Reference;
    }

    /// <summary>The model being trained.</summary>
    public Transformer Policy { get; }

    /// <summary>Where the reference log-probs come from.</summary>
    public IReferenceLogProbs Reference { get; }

    /// <summary>The settings.</summary>
    public DpoOptions Options { get; }

    private bool LengthNormalised => Options.Loss == PairwiseLossType.Ipo;

    /// <inheritdoc/>
    public ObjectiveResult Step(PreferenceBatch batch, float lossScale)
    {
        ArgumentNullException.ThrowIfNull(batch);
        var hidden = Policy.ForwardTraining(batch.Sequences.Tokens, batch.Rows, batch.Time);
        var (result, scoreGrad) = Loss(batch, hidden, lossScale, withGradient: true);

        // s = β·(logπ − logπ_ref) for the sum-based losses, s = (logπ − logπ_ref)/|y| for IPO: ∂s/∂logπ is β or 1/|y|.
        for (int r = 0; r < scoreGrad.Length; r++)
        {
            scoreGrad[r] = LengthNormalised ? scoreGrad[r] / batch.ResponseTokens[r] : scoreGrad[r] * Options.Beta;
        }

        pass.Backward(Policy, hidden, scoreGrad);
        Policy.BackwardFromHidden();
        return result;
    }

    /// <inheritdoc/>
    public ObjectiveResult Evaluate(PreferenceBatch batch)
    {
        ArgumentNullException.ThrowIfNull(batch);
        var hidden = Policy.Forward(batch.Sequences.Tokens, batch.Rows, batch.Time);
        return Loss(batch, hidden, 0f, withGradient: false).Result;
    }

    /// <summary>
    /// The micro-batch's pair weight Σ_p w_p (its number of prompts: 1 per plain pair, 1 per K-wise ranking), the
    /// denominator of its loss, so accumulated micro-batches give the gradient of one batch holding them all.
    /// </summary>
    public double Weight(PreferenceBatch batch)
    {
        ArgumentNullException.ThrowIfNull(batch);
        return batch.Weights.Sum(w => (double)w);
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        pass.Dispose();
        scratch.Dispose();
        ownedReference?.Dispose();
    }

    private (ObjectiveResult Result, float[] ScoreGrad) Loss(PreferenceBatch batch, Tensor hidden, float lossScale, bool withGradient)
    {
        int rows = batch.Rows;
        var policy = new float[rows];
        pass.Forward(Policy, hidden, batch, policy);
        var reference = new float[rows];
        Reference.SequenceLogProbs(batch, reference);

        // IPO's per-token means are taken here, from both sums alike, so a policy equal to its reference has a
        // log-ratio of exactly 0 rather than the rounding difference of two ways of averaging.
        if (LengthNormalised)
        {
            for (int r = 0; r < rows; r++)
            {
                policy[r] /= batch.ResponseTokens[r];
                reference[r] /= batch.ResponseTokens[r];
            }
        }

        var scores = new float[rows];
        for (int r = 0; r < rows; r++)
        {
            scores[r] = LengthNormalised ? policy[r] - reference[r] : Options.Beta * (policy[r] - reference[r]);
        }

        var b = Policy.Backend;
        var scoresTensor = scratch.Upload("scores", scores, rows);
        var grad = withGradient ? scratch.Zeros("dscores", rows) : default;
        var stats = b.PairwiseLoss(
            scoresTensor, scratch.Upload("chosen", batch.Chosen, batch.Pairs), scratch.Upload("rejected", batch.Rejected, batch.Pairs),
            scratch.Upload("weights", batch.Weights, batch.Pairs), default, grad,
            new PairwiseLossOptions(Options.Loss, Options.LabelSmoothing, Options.Beta, 0f, lossScale));
        var scoreGrad = new float[rows];
        if (withGradient)
        {
            b.CopyToHost<float>(grad, scoreGrad);
        }

        // Implicit rewards β·(logπ − logπ_ref) (IPO: of the per-token means) and the policy log-probs, pair-weighted.
        var rewards = new double[rows];
        var logps = new double[rows];
        for (int r = 0; r < rows; r++)
        {
            logps[r] = policy[r];
            rewards[r] = Options.Beta * ((double)policy[r] - reference[r]);
        }

        var metrics = PairMetrics.Compute(batch, rewards);
        metrics["loss"] = stats.Loss;
        metrics["logps/chosen"] = PairMetrics.WeightedMean(batch, logps, chosen: true);
        metrics["logps/rejected"] = PairMetrics.WeightedMean(batch, logps, chosen: false);
        return (new ObjectiveResult(stats.Loss, metrics, batch.Tokens, stats.WeightSum), scoreGrad);
    }
}

/// <summary>The pair-weighted metrics the reward model and DPO both log, under TRL's names.</summary>
internal static class PairMetrics
{
    /// <summary><c>rewards/chosen</c>, <c>rewards/rejected</c>, <c>rewards/accuracies</c> (chosen strictly higher), <c>rewards/margins</c>.</summary>
    public static Dictionary<string, double> Compute(PreferenceBatch batch, ReadOnlySpan<double> rewards)
    {
        double weightSum = 0, chosen = 0, rejected = 0, correct = 0;
        for (int p = 0; p < batch.Pairs; p++)
        {
            double w = batch.Weights[p], c = rewards[batch.Chosen[p]], l = rewards[batch.Rejected[p]];
            weightSum += w;
            chosen += w * c;
            rejected += w * l;
            correct += c > l ? w : 0;
        }

        double scale = weightSum > 0 ? 1.0 / weightSum : 0;
        return new Dictionary<string, double>(StringComparer.Ordinal)
        {
            ["rewards/chosen"] = chosen * scale,
            ["rewards/rejected"] = rejected * scale,
            ["rewards/accuracies"] = correct * scale,
            ["rewards/margins"] = (chosen - rejected) * scale,
        };
    }

    /// <summary>Pair-weighted mean of a per-row value over the chosen (or rejected) side.</summary>
    public static double WeightedMean(PreferenceBatch batch, ReadOnlySpan<double> values, bool chosen)
    {
        double weightSum = 0, sum = 0;
        for (int p = 0; p < batch.Pairs; p++)
        {
            weightSum += batch.Weights[p];
            sum += batch.Weights[p] * values[chosen ? batch.Chosen[p] : batch.Rejected[p]];
        }

        return weightSum > 0 ? sum / weightSum : 0;
    }
}
