using System.Globalization;

namespace Engine.Training.Rl.Rewards;

/// <summary>
/// DAPO's soft overlong punishment (Yu et al. 2025, arXiv 2503.14476, "Overlong Reward Shaping"): with |y| the completion's length in
/// tokens (its stop token included), L_max the longest completion sampled and L_cache the soft buffer,
/// <code>
///   R(y) = 0                                  if |y| ≤ L_max − L_cache
///        = ((L_max − L_cache) − |y|) / L_cache  if L_max − L_cache &lt; |y| ≤ L_max
///        = −1                                 if L_max &lt; |y|
/// </code>
/// so the penalty grows linearly from 0 to −1 over the last L_cache tokens.
/// </summary>
public sealed class OverlongReward : IRewardFunction
{
    /// <summary>A soft overlong punishment for completions of at most <paramref name="maxLength"/> tokens with a buffer of <paramref name="cache"/>.</summary>
    /// <exception cref="ArgumentException"><paramref name="maxLength"/> &lt; 1, or <paramref name="cache"/> outside [0, <paramref name="maxLength"/>].</exception>
    public OverlongReward(int maxLength, int cache)
    {
        if (maxLength < 1)
        {
            throw new ArgumentException($"the longest completion must be at least 1 token, got {maxLength}", nameof(maxLength));
        }

        if (cache < 0 || cache > maxLength)
        {
            throw new ArgumentException(string.Create(CultureInfo.InvariantCulture,
                $"the overlong buffer must be between 0 and the longest completion ({maxLength} tokens), got {cache}"), nameof(cache));
        }

        MaxLength = maxLength;
        Cache = cache;
    }

    /// <summary>L_max, in tokens.</summary>
    public int MaxLength { get; }

    /// <summary>L_cache, in tokens (0 = no soft zone: −1 only past L_max).</summary>
    public int Cache { get; }

    /// <summary>L_cache when none is given: a fifth of L_max, DAPO's 4,096 of 20,480.</summary>
    public static int DefaultCache(int maxLength) => maxLength / 5;

    /// <summary>The name metrics use (<c>rewards/&lt;name&gt;/mean</c>): <c>length</c> unless set, as it must be when a
    /// <see cref="RewardSet"/> holds two of this kind.</summary>
    public string Name { get; init; } = "length";

    /// <inheritdoc/>
    public void Score(IReadOnlyList<RewardSample> samples, Span<float> scores)
    {
        ArgumentNullException.ThrowIfNull(samples);
        for (int i = 0; i < samples.Count; i++)
        {
            scores[i] = Penalty(samples[i].CompletionIds.Length);
        }
    }

    /// <summary>R for a completion of <paramref name="length"/> tokens.</summary>
    public float Penalty(int length)
    {
        int soft = MaxLength - Cache;
        return length <= soft ? 0f
            : length <= MaxLength ? (float)((double)(soft - length) / Cache)
            : -1f;
    }
}
