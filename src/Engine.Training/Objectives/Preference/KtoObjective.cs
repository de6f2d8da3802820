using Engine.Core.Backends;
using Engine.Core.Tensors;
using Engine.Models;

namespace Engine.Training.Objectives.Preference;

/// <summary>
/// KTO (Ethayarajh et al. 2024) over unpaired examples (<see cref="KtoBatch"/>): with r = β·(log π(y|x) − log π_ref(y|x))
/// and the KL baseline z₀ = max(0, mean over the batch's mismatched pairs of log π − log π_ref) (held constant, as TRL),
/// a desirable example costs w_D·(1 − σ(r − β·z₀)) and an undesirable one w_U·(1 − σ(β·z₀ − r)); the loss is the mean
/// over the examples. Log-probs come from the fused kernel (no [N,V] logits). Metrics follow TRL: <c>rewards/chosen</c>,
/// <c>rewards/rejected</c> (means over the desirable and undesirable examples), <c>rewards/margins</c>,
/// <c>logps/chosen</c>, <c>logps/rejected</c>, <c>kl</c>.
/// </summary>
public sealed class KtoObjective : ITrainingObjective<KtoBatch>, IDisposable
{
    private readonly PreferenceLossPass pass;
    private readonly ReferenceModel? ownedReference;

    /// <summary>KTO of <paramref name="policy"/> against reference log-probs from <paramref name="reference"/> (a model or a cache).</summary>
    public KtoObjective(Transformer policy, IReferenceLogProbs reference, PreferenceOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(policy);
        ArgumentNullException.ThrowIfNull(reference);
        Options = options ?? new PreferenceOptions { Losses = [new(PreferenceLossType.Kto)] };
        Options.Validate(unpaired: true);
        PreferenceLossPass.CheckModels(policy, reference, "KTO");
        Policy = policy;
        Reference = reference;
        pass = new PreferenceLossPass(policy.Backend);
    }

    /// <summary>KTO against a frozen reference model kept in memory (the caller owns both models).</summary>
    public KtoObjective(Transformer policy, Transformer reference, PreferenceOptions? options = null)
        : this(policy, new ReferenceModel(reference ?? throw new ArgumentNullException(nameof(reference))), options)
    {
        ownedReference = (ReferenceModel)Reference;
    }

    /// <summary>The model being trained.</summary>
    public Transformer Policy { get; }

    /// <summary>Where the reference log-probs come from.</summary>
    public IReferenceLogProbs Reference { get; }

    /// <summary>The settings (one loss, <c>kto</c>).</summary>
    public PreferenceOptions Options { get; }

    /// <inheritdoc/>
    public ObjectiveResult Step(KtoBatch batch, float lossScale)
    {
        ArgumentNullException.ThrowIfNull(batch);
        var rows = batch.Rows;
        var hidden = Policy.ForwardTraining(rows.Sequences.Tokens, rows.Rows, rows.Time);
        var result = Loss(batch, hidden, lossScale, withGradient: true);
        pass.Backward(Policy, hidden);
        return result;
    }

    /// <inheritdoc/>
    public ObjectiveResult Evaluate(KtoBatch batch)
    {
        ArgumentNullException.ThrowIfNull(batch);
        var rows = batch.Rows;
        var hidden = Policy.Forward(rows.Sequences.Tokens, rows.Rows, rows.Time);
        return Loss(batch, hidden, 0f, withGradient: false);
    }

    /// <summary>The micro-batch's number of examples, the denominator of its loss.</summary>
    public double Weight(KtoBatch batch)
    {
        ArgumentNullException.ThrowIfNull(batch);
        return batch.Examples;
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        pass.Dispose();
        ownedReference?.Dispose();
    }

    private ObjectiveResult Loss(KtoBatch batch, Tensor hidden, float lossScale, bool withGradient)
    {
        int e = batch.Examples;
        var chosen = new int[e];
        var rejected = new int[e];
        for (int i = 0; i < e; i++)
        {
            chosen[i] = batch.Desirable[i] ? i : -1;
            rejected[i] = batch.Desirable[i] ? -1 : i;
        }

        var (policy, reference) = pass.Forward(Policy, hidden, batch.Rows, Reference, chosen, rejected, null);
        double kl = 0;
        for (int i = e; i < 2 * e; i++)
        {
            kl += (double)policy[i] - reference![i];
        }

        kl = Math.Max(0, kl / e);
        var stats = pass.Loss(Options.Kernel(Options.Losses[0], (float)kl, lossScale), withGradient);
        double chosenReward = 0, rejectedReward = 0, chosenLogp = 0, rejectedLogp = 0;
        int desirable = 0;
        for (int i = 0; i < e; i++)
        {
            double reward = Options.Beta * ((double)policy[i] - reference![i]);
            if (batch.Desirable[i])
            {
                desirable++;
                chosenReward += reward;
                chosenLogp += policy[i];
            }
            else
            {
                rejectedReward += reward;
                rejectedLogp += policy[i];
            }
        }

        int undesirable = e - desirable;
        double Mean(double sum, int count) => count > 0 ? sum / count : 0;
        var metrics = new Dictionary<string, double>(StringComparer.Ordinal)
        {
            ["loss"] = stats.Loss,
            ["kl"] = kl,
            ["rewards/chosen"] = Mean(chosenReward, desirable),
            ["rewards/rejected"] = Mean(rejectedReward, undesirable),
            ["rewards/margins"] = Mean(chosenReward, desirable) - Mean(rejectedReward, undesirable),
            ["logps/chosen"] = Mean(chosenLogp, desirable),
            ["logps/rejected"] = Mean(rejectedLogp, undesirable),
        };
        return new ObjectiveResult(stats.Loss, metrics, batch.Rows.Tokens, e);
    }
}
