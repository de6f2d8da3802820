using System.Diagnostics;
using Engine.Core.Numerics;
using Engine.Models.Generation;
using Engine.Training.Data;
using Engine.Training.Objectives;
using Engine.Training.Rl.Sampling;

namespace Engine.Training.Rl.OnlineDpo;

/// <summary>
/// The micro-batches of online DPO, made from the current policy when the trainer asks for them. An epoch is one pass
/// over the prompts in a seeded order, <see cref="OnlineDpoOptions.PromptsPerRound"/> prompts per round (the last round
/// wraps around to the start of the order, so every round is full); a round is
/// sampled when its first micro-batch is asked for, K samples per prompt from the per-sequence streams of a seed drawn
/// from (epoch seed, round), scored by the reward model, turned into pairs (<see cref="PreferencePairs.Select"/>), and
/// served as <see cref="OnlineDpoOptions.UpdatesPerRound"/> × <c>gradient_accumulation_steps</c> micro-batches. A round
/// whose prompts all tie samples the next prompts of the order instead (with the next seed), up to
/// <see cref="MaxAttempts"/> times; when it still has no pair, its micro-batches weigh 0 and the trainer skips its
/// updates (counted in <c>skipped_steps</c>). Since
/// the samples are a function of the policy at the round's start and the trainer's saved (seed, position), a run
/// resumed from a checkpoint between rounds samples the very same pairs.
/// </summary>
public sealed class OnlinePreferenceSource : IBatchSource<OnlineDpoBatch>
{
    /// <summary>
    /// Sampling attempts of a round whose prompts all tie, each on the next prompts of the epoch's order; after the
    /// last, its micro-batches hold no pairs and the trainer skips its updates.
    /// </summary>
    public const int MaxAttempts = 4;

    private readonly ResponseSampler sampler;
    private readonly RewardScorer scorer;
    private readonly SequenceCollator collator;
    private readonly IReadOnlyList<int[]> prompts;
    private readonly OnlineDpoOptions options;
    private readonly IReadOnlyList<int> stopTokens;
    private (ulong? Seed, int[] Order)? order;
    private (ulong? Seed, int Round, OnlineDpoBatch[] Batches)? current;

    /// <summary>A source sampling <paramref name="prompts"/> (token ids) with <paramref name="sampler"/> and scoring with <paramref name="scorer"/>.</summary>
    public OnlinePreferenceSource(
        ResponseSampler sampler, RewardScorer scorer, SequenceCollator collator, IReadOnlyList<int[]> prompts, OnlineDpoOptions options, IReadOnlyList<int> stopTokens)
    {
        ArgumentNullException.ThrowIfNull(sampler);
        ArgumentNullException.ThrowIfNull(scorer);
        ArgumentNullException.ThrowIfNull(collator);
        ArgumentNullException.ThrowIfNull(prompts);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(stopTokens);
        options.Validate();
        if (prompts.Count == 0)
        {
            throw new ArgumentException("online DPO needs at least one prompt", nameof(prompts));
        }

        this.sampler = sampler;
        this.scorer = scorer;
        this.collator = collator;
        this.prompts = prompts;
        this.options = options;
        this.stopTokens = stopTokens;
    }

    /// <summary>Rounds per epoch: the prompts divided into rounds of <see cref="OnlineDpoOptions.PromptsPerRound"/> (the last may hold fewer).</summary>
    public int RoundsPerEpoch => (prompts.Count + options.PromptsPerRound - 1) / options.PromptsPerRound;

    /// <summary>Wall time spent sampling and scoring so far.</summary>
    public TimeSpan GenerationTime { get; private set; }

    /// <summary>Micro-batches served per round.</summary>
    private int MicroBatchesPerRound => options.UpdatesPerRound * options.GradientAccumulationSteps;

    /// <inheritdoc/>
    public IReadOnlyList<OnlineDpoBatch> Batches(ulong? shuffleSeed) =>
        new LazyList<OnlineDpoBatch>(RoundsPerEpoch * MicroBatchesPerRound, i => Get(shuffleSeed, i));

    /// <summary>The seed of the sampling streams of a round's attempt: well mixed, so no two rounds share a stream.</summary>
    public static ulong RoundSeed(ulong epochSeed, int round, int attempt) =>
        new RandomStream(epochSeed + (((ulong)round * MaxAttempts) + (ulong)attempt + 1) * 0xD1B54A32D192ED03UL).NextUInt64();

    private OnlineDpoBatch Get(ulong? seed, int index)
    {
        int round = index / MicroBatchesPerRound;
        if (current is not { } c || c.Seed != seed || c.Round != round)
        {
            current = c = (seed, round, Sample(seed, round));
        }

        return c.Batches[index % MicroBatchesPerRound % options.GradientAccumulationSteps];
    }

    private OnlineDpoBatch[] Sample(ulong? seed, int round)
    {
        var clock = Stopwatch.StartNew();
        if (order is not { } o || o.Seed != seed)
        {
            order = o = (seed, SftBatches.Order(prompts.Count, seed));
        }

        int k = options.SamplesPerPrompt, perRound = Math.Min(options.PromptsPerRound, prompts.Count);
        IReadOnlyList<Rollout> rollouts = [];
        float[] scores = [];
        List<(int Prompt, int Chosen, int Rejected)> pairs = [];
        int attempt = 0, sampledPrompts = 0;
        while (attempt < MaxAttempts)
        {
            // A retry takes the prompts that follow in the epoch's order (wrapping) instead of sampling the tied ones again:
            // a prompt ties when the policy gives the same answer to it every time, so a new draw would most likely tie too.
            int start = (round + attempt) * options.PromptsPerRound;
            var picked = Enumerable.Range(start, perRound).Select(i => (IReadOnlyList<int>)prompts[o.Order[i % prompts.Count]]).ToList();
            var generation = new GenerationOptions
            {
                MaxNewTokens = options.MaxNewTokens, Temperature = options.Temperature, TopK = options.TopK, TopP = options.TopP,
                Seed = RoundSeed(seed ?? 0, round, attempt), StopTokens = stopTokens,
            };
            attempt++;
            sampledPrompts += picked.Count;
            rollouts = sampler.Sample(picked, generation, k);
            scores = scorer.Score(rollouts, collator.Options.PadTokenId).Raw;
            for (int i = 0; i < scores.Length; i++)
            {
                scores[i] -= rollouts[i].EndedWithEos ? 0f : options.MissingEosPenalty;
            }

            pairs = [.. PreferencePairs.Select(scores, k, options.MinScoreGap)];
            if (pairs.Count > 0)
            {
                break;
            }
        }

        GenerationTime += clock.Elapsed;
        var statistics = new RoundStatistics(
            round, sampledPrompts, rollouts.Count, pairs.Count, attempt, scores.Average(x => (double)x),
            pairs.Count == 0 ? 0 : pairs.Average(p => (double)scores[p.Chosen] - scores[p.Rejected]), rollouts.Average(r => r.EndedWithEos ? 1.0 : 0.0),
            rollouts.Average(r => (double)r.Response.Length), clock.Elapsed.TotalSeconds)
        {
            DistinctResponses = Enumerable.Range(0, rollouts.Count / k)
                .Average(p => (double)rollouts.Skip(p * k).Take(k).Select(r => string.Join(',', r.Response)).Distinct(StringComparer.Ordinal).Count()),
        };

        // Pairs go round-robin to the micro-batches of an update, so each holds about the same number.
        int micro = options.GradientAccumulationSteps;
        var batches = new OnlineDpoBatch[micro];
        for (int m = 0; m < micro; m++)
        {
            var groups = pairs.Where((_, i) => i % micro == m)
                .Select(p => new PreferenceGroup([Sequence(rollouts[p.Chosen]), Sequence(rollouts[p.Rejected])], [0, 1], null, $"round {round} prompt {p.Prompt}"))
                .ToList();
            batches[m] = new OnlineDpoBatch(groups.Count == 0 ? null : PreferenceBatch.Collate(groups, collator), statistics, 1.0 / MicroBatchesPerRound);
        }

        return batches;
    }

    // The prompt is context, the response is what DPO scores.
    private static TokenizedSequence Sequence(Rollout r) =>
        new(r.Tokens(), [.. Enumerable.Range(0, r.Length).Select(i => i >= r.Prompt.Length)], r.Prompt.Length);
}

/// <summary>How online DPO turns K scored samples per prompt into preference pairs.</summary>
public static class PreferencePairs
{
    /// <summary>
    /// For each prompt p (samples p·K … p·K+K−1 of <paramref name="scores"/>): chosen = the best-scored sample, rejected =
    /// the worst (the lowest index among equals); the prompt is skipped when best − worst ≤ <paramref name="minGap"/>.
    /// Yields (prompt, chosen sample, rejected sample) with sample indices into <paramref name="scores"/>.
    /// </summary>
    public static IEnumerable<(int Prompt, int Chosen, int Rejected)> Select(IReadOnlyList<float> scores, int samplesPerPrompt, float minGap = 0f)
    {
        ArgumentNullException.ThrowIfNull(scores);
        if (samplesPerPrompt < 2 || scores.Count % samplesPerPrompt != 0)
        {
            throw new ArgumentException($"{scores.Count} scores are not whole groups of K = {samplesPerPrompt} ≥ 2 samples", nameof(scores));
        }

        for (int p = 0; p < scores.Count / samplesPerPrompt; p++)
        {
            int first = p * samplesPerPrompt, best = first, worst = first;
            for (int i = first; i < first + samplesPerPrompt; i++)
            {
                if (!float.IsFinite(scores[i]))
                {
                    throw new ArgumentException($"sample {i} has the non-finite score {scores[i]}", nameof(scores));
                }

                best = scores[i] > scores[best] ? i : best;
                worst = scores[i] < scores[worst] ? i : worst;
            }

            if (scores[best] - scores[worst] > minGap)
            {
                yield return (p, best, worst);
            }
        }
    }
}
