using Engine.Core.Backends;
using Engine.Core.Tensors;
using Engine.Models;

namespace Engine.Training.Objectives.Preference;

/// <summary>
/// The paired preference-optimisation family over <see cref="PreferenceBatch"/>es (docs/objectives.md): DPO and its
/// variants, the reference-free SimPO, CPO and ORPO, APO, BCO, NCA, EXO, SPPO, AOT, length-normalised DPO and the NLL
/// term, alone or as a weighted list (TRL's MPO), L = Σ_k weight_k·L_k. Chosen and rejected responses run through the
/// policy in one forward pass and the log-probs come from the fused kernel over the LM head, so the [N,V] logits are
/// never held; <see cref="Backend.PreferenceLoss"/> computes every loss and its gradient. K-wise rankings count as
/// their C(K,2) pairs weighted 1/C(K,2). The reference is a frozen model or a cache of its log-probs, and none at all
/// when every loss is reference-free. Metrics follow TRL (<c>rewards/*</c>, <c>logps/*</c>, <c>nll_loss</c>,
/// <c>log_odds_ratio</c>, <c>log_odds_chosen</c>).
/// </summary>
public sealed class PreferenceObjective : ITrainingObjective<PreferenceBatch>, IStatefulObjective, IDisposable
{
    private readonly PreferenceLossPass pass;
    private readonly ReferenceModel? ownedReference;
    private double baselineSum;
    private long baselineCount;

    /// <summary>The family over <paramref name="policy"/>, with reference log-probs from <paramref name="reference"/> (null when every loss is reference-free).</summary>
    public PreferenceObjective(Transformer policy, IReferenceLogProbs? reference, PreferenceOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(policy);
        Options = options ?? new PreferenceOptions();
        Options.Validate();
        PreferenceLossPass.CheckModels(policy, reference, "preference optimisation");
        if (reference is null && !Options.ReferenceFree)
        {
            throw new ArgumentException(
                $"the {string.Join(",", Options.Losses.Where(t => !PreferenceOptions.IsReferenceFree(t.Type)).Select(t => PreferenceOptions.Name(t.Type)))} loss needs a reference (a model or cached log-probs)",
                nameof(reference));
        }

        Policy = policy;
        Reference = reference;
        pass = new PreferenceLossPass(policy.Backend);
    }

    /// <summary>The family against a frozen reference model kept in memory (the caller owns both models).</summary>
    public PreferenceObjective(Transformer policy, Transformer reference, PreferenceOptions? options = null)
        : this(policy, new ReferenceModel(reference ?? throw new ArgumentNullException(nameof(reference))), options)
    {
        ownedReference = (ReferenceModel)Reference!;
    }

    /// <summary>The model being trained.</summary>
    public Transformer Policy { get; }

    /// <summary>Where the reference log-probs come from (unread when every loss is reference-free); null when none was given.</summary>
    public IReferenceLogProbs? Reference { get; }

    /// <summary>The settings.</summary>
    public PreferenceOptions Options { get; }

    /// <summary>BCO's running reward baseline δ: the mean of the training micro-batches' mean rewards so far (0 before any).</summary>
    public double BcoBaseline => baselineCount > 0 ? baselineSum / baselineCount : 0;

    /// <inheritdoc/>
    public ObjectiveResult Step(PreferenceBatch batch, float lossScale)
    {
        ArgumentNullException.ThrowIfNull(batch);
        var hidden = Policy.ForwardTraining(batch.Sequences.Tokens, batch.Rows, batch.Time);
        var result = Loss(batch, hidden, lossScale, training: true);
        pass.Backward(Policy, hidden);
        return result;
    }

    /// <inheritdoc/>
    public ObjectiveResult Evaluate(PreferenceBatch batch)
    {
        ArgumentNullException.ThrowIfNull(batch);
        var hidden = Policy.Forward(batch.Sequences.Tokens, batch.Rows, batch.Time);
        return Loss(batch, hidden, 0f, training: false);
    }

    /// <summary>The micro-batch's pair weight Σ_p w_p (its number of prompts), the denominator of its loss.</summary>
    public double Weight(PreferenceBatch batch)
    {
        ArgumentNullException.ThrowIfNull(batch);
        return batch.Weights.Sum(w => (double)w);
    }

    /// <inheritdoc/>
    public IReadOnlyDictionary<string, double> SaveState() =>
        new Dictionary<string, double>(StringComparer.Ordinal) { ["bco_reward_sum"] = baselineSum, ["bco_reward_count"] = baselineCount };

    /// <inheritdoc/>
    public void LoadState(IReadOnlyDictionary<string, double> state)
    {
        ArgumentNullException.ThrowIfNull(state);
        baselineSum = state.GetValueOrDefault("bco_reward_sum");
        baselineCount = (long)state.GetValueOrDefault("bco_reward_count");
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        pass.Dispose();
        ownedReference?.Dispose();
    }

    private ObjectiveResult Loss(PreferenceBatch batch, Tensor hidden, float lossScale, bool training)
    {
        var (policy, reference) = pass.Forward(Policy, hidden, batch, Options.ReferenceFree ? null : Reference, batch.Chosen, batch.Rejected, batch.Weights);
        float baseline = Baseline(batch, policy, reference, training);
        var metrics = new Dictionary<string, double>(StringComparer.Ordinal);
        double total = 0, weightSum = 0;
        foreach (var term in Options.Losses)
        {
            var stats = pass.Loss(Options.Kernel(term, baseline, lossScale), withGradient: training);
            total += term.Weight * (double)stats.Loss;
            weightSum = stats.WeightSum;
            if (Options.Losses.Count > 1)
            {
                metrics[$"loss/{PreferenceOptions.Name(term.Type)}"] = stats.Loss;
            }

            if (Options.NllWeightOf(term.Type) > 0f)
            {
                metrics["nll_loss"] = stats.Nll;
            }

            if (term.Type == PreferenceLossType.Orpo)
            {
                metrics["log_odds_ratio"] = stats.LogOddsRatio;
                metrics["log_odds_chosen"] = stats.LogOdds;
            }

            if (term.Type == PreferenceLossType.BcoPair)
            {
                metrics["bco_baseline"] = baseline;
            }
        }

        foreach (var (k, v) in RewardMetrics(batch, policy, reference))
        {
            metrics[k] = v;
        }

        metrics["loss"] = total;
        return new ObjectiveResult(total, metrics, batch.Tokens, weightSum);
    }

    // BCO's δ: the running mean over training micro-batches of each one's mean implicit reward, itself included (TRL's
    // RunningMoments over batch means); evaluation reads it without moving it.
    private float Baseline(PreferenceBatch batch, float[] policy, float[]? reference, bool training)
    {
        if (!Options.Losses.Any(t => t.Type == PreferenceLossType.BcoPair))
        {
            return 0f;
        }

        double sum = 0, weights = 0;
        for (int p = 0; p < batch.Pairs; p++)
        {
            int c = batch.Chosen[p], l = batch.Rejected[p];
            double u = (double)policy[c] - reference![c], v = (double)policy[l] - reference[l];
            sum += batch.Weights[p] * Options.Beta * (u + v) / 2;
            weights += batch.Weights[p];
        }

        double mean = weights > 0 ? sum / weights : 0;
        if (training)
        {
            baselineSum += mean;
            baselineCount++;
            return (float)BcoBaseline;
        }

        return (float)(baselineCount > 0 ? BcoBaseline : mean);
    }

    // The implicit rewards as TRL reports them: β·(log π − log π_ref) with a reference, β·log π without; per-token means
    // when the first loss is IPO, SimPO or ORPO (whose trainers average the log-probs), sums otherwise.
    private Dictionary<string, double> RewardMetrics(PreferenceBatch batch, float[] policy, float[]? reference)
    {
        bool mean = Options.Losses[0].Type is PreferenceLossType.Ipo or PreferenceLossType.Simpo or PreferenceLossType.Orpo;
        var logps = new double[batch.Rows];
        var rewards = new double[batch.Rows];
        for (int r = 0; r < batch.Rows; r++)
        {
            double n = mean ? batch.ResponseTokens[r] : 1.0;
            logps[r] = policy[r] / n;
            rewards[r] = Options.Beta * (logps[r] - (reference is null ? 0.0 : reference[r] / n));
        }

        var metrics = PairMetrics.Compute(batch, rewards);
        metrics["logps/chosen"] = PairMetrics.WeightedMean(batch, logps, chosen: true);
        metrics["logps/rejected"] = PairMetrics.WeightedMean(batch, logps, chosen: false);
        return metrics;
    }
}
