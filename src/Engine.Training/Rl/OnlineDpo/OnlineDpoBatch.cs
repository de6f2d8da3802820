using Engine.Training.Objectives;

namespace Engine.Training.Rl.OnlineDpo;

/// <summary>What one sampling round of online DPO produced (the same on every micro-batch of the round).</summary>
/// <param name="Round">The round's index in its epoch.</param>
/// <param name="Prompts">Prompts sampled, over every attempt.</param>
/// <param name="Samples">Responses of the attempt used (its prompts × samples per prompt); the statistics below are of them.</param>
/// <param name="Pairs">Prompts that gave a (chosen, rejected) pair.</param>
/// <param name="Attempts">Sampling attempts: a round where every prompt tied samples the next prompts of the order, with the next seed.</param>
/// <param name="MeanScore">Mean reward-model score of the samples (after the missing-EOS penalty).</param>
/// <param name="MeanScoreMargin">Mean score of chosen minus rejected over the pairs.</param>
/// <param name="EosFraction">Share of the samples that ended with EOS.</param>
/// <param name="MeanResponseTokens">Mean sampled response length in tokens (EOS included).</param>
/// <param name="GenerationSeconds">Wall time of sampling and scoring the round, all attempts.</param>
public sealed record RoundStatistics(
    int Round, int Prompts, int Samples, int Pairs, int Attempts, double MeanScore, double MeanScoreMargin, double EosFraction, double MeanResponseTokens,
    double GenerationSeconds)
{
    /// <summary>Share of the round's prompts (every attempt's) skipped because their samples tied.</summary>
    public double TiedFraction => Prompts == 0 ? 0 : 1.0 - ((double)Pairs / Prompts);

    /// <summary>Mean number of different responses among a prompt's K samples (1: the policy answered it the same way every time).</summary>
    public double DistinctResponses { get; init; }
}

/// <summary>
/// One micro-batch of online DPO: a slice of its round's (chosen, rejected) pairs, or none when the round gave fewer
/// pairs than micro-batches (such a micro-batch weighs 0 and moves nothing), and the round's statistics.
/// </summary>
/// <param name="Pairs">The pairs as a <see cref="PreferenceBatch"/> of plain pairs, or null.</param>
/// <param name="Statistics">The round the pairs come from.</param>
/// <param name="Share">This micro-batch's share of the round's generation time: 1 / (updates per round × micro-batches per update).</param>
public sealed record OnlineDpoBatch(PreferenceBatch? Pairs, RoundStatistics Statistics, double Share);
