using System.Text.RegularExpressions;

namespace Engine.Training.Rl.Rewards;

/// <summary>
/// 1 when the whole completion matches a regular expression, else 0 (as TRL's format rewards: the pattern is anchored
/// at both ends and <c>.</c> matches newlines). A match that runs past the timeout scores 0.
/// </summary>
public sealed class FormatReward : IRewardFunction
{
    private static readonly TimeSpan MatchTimeout = TimeSpan.FromSeconds(1);
    private readonly Regex regex;

    /// <summary>A format reward for <paramref name="pattern"/> (.NET regular-expression syntax).</summary>
    /// <exception cref="ArgumentException">The pattern does not parse.</exception>
    public FormatReward(string pattern)
    {
        ArgumentException.ThrowIfNullOrEmpty(pattern);
        Pattern = pattern;
        // Parsed alone first, so that a syntax error's message shows the user's pattern and offsets, not the anchored one.
        _ = new Regex(pattern, RegexOptions.Singleline | RegexOptions.CultureInvariant, MatchTimeout);
        regex = new Regex($@"\A(?:{pattern})\z", RegexOptions.Singleline | RegexOptions.CultureInvariant, MatchTimeout);
    }

    /// <summary>The pattern as given.</summary>
    public string Pattern { get; }

    /// <summary>The name metrics use (<c>rewards/&lt;name&gt;/mean</c>): <c>format</c> unless set, as it must be when a
    /// <see cref="RewardSet"/> holds two of this kind.</summary>
    public string Name { get; init; } = "format";

    /// <inheritdoc/>
    public void Score(IReadOnlyList<RewardSample> samples, Span<float> scores)
    {
        ArgumentNullException.ThrowIfNull(samples);
        for (int i = 0; i < samples.Count; i++)
        {
            scores[i] = Matches(samples[i].Completion) ? 1f : 0f;
        }
    }

    private bool Matches(string completion)
    {
        try
        {
            return regex.IsMatch(completion);
        }
        catch (RegexMatchTimeoutException)
        {
            return false;
        }
    }
}
