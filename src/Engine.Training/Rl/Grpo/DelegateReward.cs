using Engine.Training.Rl.Rewards;

namespace Engine.Training.Rl.Grpo;

/// <summary>
/// A reward from a C# function of one completion (return <see cref="float.NaN"/> where it does not apply):
/// <c>new DelegateReward("has_answer", s =&gt; s.Completion.Contains("42") ? 1f : 0f)</c>.
/// </summary>
/// <param name="name">The name metrics use (<c>rewards/&lt;name&gt;/mean</c>).</param>
/// <param name="score">The score of one completion.</param>
public sealed class DelegateReward(string name, Func<RewardSample, float> score) : IRewardFunction
{
    private readonly Func<RewardSample, float> score = score ?? throw new ArgumentNullException(nameof(score));

    /// <inheritdoc/>
    public string Name { get; } = string.IsNullOrEmpty(name) ? throw new ArgumentException("a reward needs a name", nameof(name)) : name;

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
