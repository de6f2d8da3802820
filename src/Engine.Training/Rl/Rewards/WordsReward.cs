using System.Globalization;

namespace Engine.Training.Rl.Rewards;

/// <summary>
/// A price on every word after the first, for tasks whose answer is one word: with n the completion's words (maximal
/// runs of letters and digits; punctuation and white space only separate them), λ the price and C the cap,
/// <code>
///   R(y) = −min(C, λ·max(0, n − 1))
/// </code>
/// This is the length term of the synthetic task's gold reward.
/// </summary>
public sealed class WordsReward : IRewardFunction
{
    /// <summary>A price of <paramref name="perWord"/> per extra word, at most <paramref name="cap"/> in all.</summary>
    /// <exception cref="ArgumentException">A price or cap that is negative or not finite (the cap may be +∞).</exception>
    public WordsReward(double perWord, double cap = double.PositiveInfinity)
    {
        if (!(perWord >= 0) || double.IsInfinity(perWord))
        {
            throw new ArgumentException(string.Create(CultureInfo.InvariantCulture, $"the price of a word must be finite and ≥ 0, got {perWord}"), nameof(perWord));
        }

        if (!(cap >= 0))
        {
            throw new ArgumentException(string.Create(CultureInfo.InvariantCulture, $"the cap must be ≥ 0, got {cap}"), nameof(cap));
        }

        PerWord = perWord;
        Cap = cap;
    }

    /// <summary>λ: what each word after the first costs.</summary>
    public double PerWord { get; }

    /// <summary>C: the most the words can cost.</summary>
    public double Cap { get; }

    /// <summary>The name metrics use (<c>rewards/&lt;name&gt;/mean</c>): <c>words</c> unless set, as it must be when a
    /// <see cref="RewardSet"/> holds two of this kind.</summary>
    public string Name { get; init; } = "words";

    /// <inheritdoc/>
    public void Score(IReadOnlyList<RewardSample> samples, Span<float> scores)
    {
        ArgumentNullException.ThrowIfNull(samples);
        for (int i = 0; i < samples.Count; i++)
        {
            int extra = Math.Max(0, AnswerMatching.Word().Count(samples[i].Completion) - 1);
            scores[i] = (float)-Math.Min(Cap, PerWord * extra);
        }
    }
}
