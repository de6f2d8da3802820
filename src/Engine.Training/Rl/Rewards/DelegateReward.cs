namespace Engine.Training.Rl.Rewards;

/// <summary>
/// A reward written as a C# function of one completion: the way to give a trainer a verifier of your own.
/// <code>
///   var shortAndRight = new DelegateReward("short", s => s.CompletionIds.Length &lt;= 20 ? 1f : 0f);
/// </code>
/// Return <see cref="float.NaN"/> where the reward does not apply; an exception names the reward and the prompt's line.
/// </summary>
public sealed class DelegateReward : IRewardFunction
{
    private readonly Func<RewardSample, float> score;

    /// <summary>A reward named <paramref name="name"/> that scores each completion with <paramref name="score"/>.</summary>
    public DelegateReward(string name, Func<RewardSample, float> score)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        ArgumentNullException.ThrowIfNull(score);
        Name = name;
        this.score = score;
    }

    /// <inheritdoc/>
    public string Name { get; }

    /// <inheritdoc/>
    public void Score(IReadOnlyList<RewardSample> samples, Span<float> scores)
    {
        ArgumentNullException.ThrowIfNull(samples);
        for (int i = 0; i < samples.Count; i++)
        {
            scores[i] = score(samples[i]);
        }
    }
}
