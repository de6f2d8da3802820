namespace Engine.Training.Rl.Rewards;

/// <summary>
/// A reward: one score per completion. Called on the training thread, once per prompt with the group of completions
/// sampled for it, in dataset order. Write <see cref="float.NaN"/> where the function does not apply to a completion;
/// <see cref="RewardSet"/> leaves it out of the weighted sum.
/// </summary>
public interface IRewardFunction
{
    /// <summary>The name metrics use (<c>rewards/&lt;name&gt;/mean</c>); unique within a <see cref="RewardSet"/>.</summary>
    string Name { get; }

    /// <summary>Writes the score of <c>samples[i]</c> to <c>scores[i]</c> for every i.</summary>
    void Score(IReadOnlyList<RewardSample> samples, Span<float> scores);
}
