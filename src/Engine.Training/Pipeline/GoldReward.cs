using System.Text.RegularExpressions;

namespace Engine.Training.Pipeline;

/// <summary>The gold reward's verdict on one response.</summary>
/// <param name="Reward">The score; see <see cref="GoldReward"/> for the formula.</param>
/// <param name="Correct">Whether the response starts with the correct answer (the <c>accuracy</c> of an evaluation).</param>
/// <param name="Empty">Whether the response had no word at all.</param>
/// <param name="ExtraWords">Words after the first: how far the response rambled on.</param>
public readonly record struct GoldScore(double Reward, bool Correct, bool Empty, int ExtraWords);

/// <summary>
/// The known "human preference" of the synthetic task. A response's words are its maximal runs of letters and digits
/// (punctuation and white space only separate them). With <c>w</c> the words, <c>a</c> the fact's answer,
/// λ = <see cref="ExtraWordPenalty"/> and P = <see cref="MaxRamblePenalty"/>:
/// <code>
///   empty (no word):  R = −1
///   otherwise:        R = (w[0] == a ? +1 : −1) − min(P, λ·(|w| − 1))
/// </code>
/// (the comparison ignores case). So a concise correct answer ("Veyn.") scores 1, one that runs on into the next fact
/// (" Veyn, the capital of Brisk is Tallo") 1 − 0.6 = 0.4, a concise wrong one −1, and a rambling wrong one down to −2.
/// Correct = the first word is the answer, which is what an evaluation's <c>accuracy</c> averages.
/// </summary>
public sealed partial class GoldReward
{
    private readonly Dictionary<string, SyntheticFact> byPrompt;

    /// <summary>A gold reward over <paramref name="facts"/>, found by their prompts.</summary>
    public GoldReward(IEnumerable<SyntheticFact> facts, double extraWordPenalty = 0.1, double maxRamblePenalty = 1.0)
    {
        ArgumentNullException.ThrowIfNull(facts);
        ArgumentOutOfRangeException.ThrowIfNegative(extraWordPenalty);
        ArgumentOutOfRangeException.ThrowIfNegative(maxRamblePenalty);
        byPrompt = facts.ToDictionary(f => f.Prompt, StringComparer.Ordinal);
        ExtraWordPenalty = extraWordPenalty;
        MaxRamblePenalty = maxRamblePenalty;
    }

    /// <summary>λ: what each word after the answer costs.</summary>
    public double ExtraWordPenalty { get; }

    /// <summary>P: the most rambling can cost.</summary>
    public double MaxRamblePenalty { get; }

    /// <summary>The fact asked by <paramref name="prompt"/> (surrounding white space ignored), or null.</summary>
    public SyntheticFact? FactFor(string prompt) => byPrompt.GetValueOrDefault(prompt.Trim());

    /// <summary>Scores <paramref name="response"/>, the text generated after <paramref name="prompt"/>.</summary>
    /// <exception cref="ArgumentException">The prompt is not one of the task's facts.</exception>
    public GoldScore Score(string prompt, string response) =>
        Score(FactFor(prompt) ?? throw new ArgumentException($"not a prompt of this task: \"{prompt}\"", nameof(prompt)), response);

    /// <summary>Scores <paramref name="response"/> as an answer to <paramref name="fact"/>.</summary>
    public GoldScore Score(SyntheticFact fact, string response)
    {
        ArgumentNullException.ThrowIfNull(fact);
        ArgumentNullException.ThrowIfNull(response);
        var words = Word().Matches(response);
        if (words.Count == 0)
        {
            return new GoldScore(-1, Correct: false, Empty: true, ExtraWords: 0);
        }

        bool correct = string.Equals(words[0].Value, fact.Answer, StringComparison.OrdinalIgnoreCase);
        int extra = words.Count - 1;
        double reward = (correct ? 1.0 : -1.0) - Math.Min(MaxRamblePenalty, ExtraWordPenalty * extra);
        return new GoldScore(reward, correct, Empty: false, extra);
    }

    /// <summary>
    /// Scores every (prompt, response) pair and averages: the <c>gold_reward_mean</c> and <c>accuracy</c> of an
    /// evaluation. Both are NaN when there is nothing to score.
    /// </summary>
    public (double GoldRewardMean, double Accuracy, int Count) Evaluate(IEnumerable<(string Prompt, string Response)> answers)
    {
        ArgumentNullException.ThrowIfNull(answers);
        double reward = 0, correct = 0;
        int n = 0;
        foreach (var (prompt, response) in answers)
        {
            var score = Score(prompt, response);
            reward += score.Reward;
            correct += score.Correct ? 1 : 0;
            n++;
        }

        return n == 0 ? (double.NaN, double.NaN, 0) : (reward / n, correct / n, n);
    }

    [GeneratedRegex(@"[\p{L}\p{N}]+", RegexOptions.CultureInvariant)]
    private static partial Regex Word();
}
