using System.Diagnostics;
using Engine.Models;
using Engine.Training.Objectives;

namespace Engine.Training.Rl.OnlineDpo;

/// <summary>
/// The DPO update of online DPO: <see cref="DpoObjective"/> against the frozen reference on each micro-batch's sampled
/// pairs, with the round's sampling metrics under TRL's online-DPO names: <c>objective/scores</c> (mean reward-model
/// score of the samples), <c>objective/scores_margin</c> (chosen minus rejected), <c>objective/kl</c> (mean
/// log π/π_ref of the pair responses, from the implicit rewards: (r_chosen + r_rejected)/(2β); per token under IPO),
/// <c>objective/non_score_reward</c> (−β·kl), <c>objective/rlhf_reward</c> (scores − β·kl), <c>objective/tied_prompts</c>
/// (share of prompts skipped), <c>val/sampling_attempts</c> (attempts of the round; a retry samples other prompts),
/// <c>val/distinct_responses</c> (mean different responses among a prompt's K samples), <c>val/contain_eos_token</c>, <c>val/response_length</c>, and <c>time/generating</c> and
/// <c>time/training</c> (seconds per micro-batch: its share of the round's sampling and scoring, and its own forward and
/// backward), besides DPO's <c>rewards/*</c> and <c>logps/*</c>.
/// </summary>
public sealed class OnlineDpoObjective : ITrainingObjective<OnlineDpoBatch>, IDisposable
{
    private readonly DpoObjective dpo;

    /// <summary>DPO of <paramref name="policy"/> against the frozen <paramref name="reference"/> (the caller owns both models).</summary>
    public OnlineDpoObjective(Transformer policy, Transformer reference, DpoOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        dpo = new DpoObjective(policy, reference, options);
    }

    /// <summary>Wall time spent in forward and backward passes so far.</summary>
    public TimeSpan TrainingTime { get; private set; }

    /// <inheritdoc/>
    public ObjectiveResult Step(OnlineDpoBatch batch, float lossScale)
    {
        ArgumentNullException.ThrowIfNull(batch);
        var clock = Stopwatch.StartNew();
        var result = batch.Pairs is null ? null : dpo.Step(batch.Pairs, lossScale);
        TrainingTime += clock.Elapsed;
        return With(batch, result, clock.Elapsed.TotalSeconds);
    }

    /// <inheritdoc/>
    public ObjectiveResult Evaluate(OnlineDpoBatch batch)
    {
        ArgumentNullException.ThrowIfNull(batch);
        return With(batch, batch.Pairs is null ? null : dpo.Evaluate(batch.Pairs), 0);
    }

    /// <summary>The micro-batch's pair count (0 when it has no pairs, so it moves nothing).</summary>
    public double Weight(OnlineDpoBatch batch)
    {
        ArgumentNullException.ThrowIfNull(batch);
        return batch.Pairs is null ? 0 : dpo.Weight(batch.Pairs);
    }

    /// <inheritdoc/>
    public void Dispose() => dpo.Dispose();

    private ObjectiveResult With(OnlineDpoBatch batch, ObjectiveResult? dpoResult, double trainingSeconds)
    {
        var s = batch.Statistics;
        var metrics = new Dictionary<string, double>(dpoResult?.Metrics ?? new Dictionary<string, double>(), StringComparer.Ordinal)
        {
            ["objective/scores"] = s.MeanScore,
            ["objective/scores_margin"] = s.MeanScoreMargin,
            ["objective/tied_prompts"] = s.TiedFraction,
            ["val/sampling_attempts"] = s.Attempts,
            ["val/distinct_responses"] = s.DistinctResponses,
            ["val/contain_eos_token"] = s.EosFraction,
            ["val/response_length"] = s.MeanResponseTokens,
            ["time/generating"] = s.GenerationSeconds * batch.Share,
            ["time/training"] = trainingSeconds,
        };
        if (dpoResult is not null)
        {
            double beta = dpo.Options.Beta;
            double kl = (metrics["rewards/chosen"] + metrics["rewards/rejected"]) / (2 * beta);
            metrics["objective/kl"] = kl;
            metrics["objective/non_score_reward"] = -beta * kl;
            metrics["objective/rlhf_reward"] = s.MeanScore - (beta * kl);
        }

        return new ObjectiveResult(dpoResult?.Loss ?? 0, metrics, dpoResult?.Tokens ?? 0, dpoResult?.Weight ?? 0);
    }
}
