using System.Globalization;
using System.Text.Json;
using Engine.Training.Data;
using Engine.Training.Rl.Rewards;

namespace Engine.Training.Pipeline;

/// <summary>
/// The synthetic task's gold reward as verifiable rewards, for critic-free RL on prompts that carry their answer in the
/// <see cref="AnswerColumn"/> column. With λ and P the gold reward's prices, the reward set is
/// <code>
///   accuracy (first word vs the answer, case ignored; right +1, wrong or empty −1)   weight 1
///   words    (−min(P, λ·max(0, n − 1)) over the n words of the completion)          weight 1
/// </code>
/// whose total is the gold reward of every completion: the first word decides ±1 (an empty completion has none and
/// scores −1), the words after it cost what the gold reward charges for them.
/// </summary>
public static class VerifiableRewards
{
    /// <summary>The prompt column holding a fact's answer.</summary>
    public const string AnswerColumn = "answer";

    /// <summary>The prompt of <paramref name="fact"/> with its answer in <see cref="AnswerColumn"/>.</summary>
    public static PromptExample AnsweredPrompt(SyntheticFact fact)
    {
        ArgumentNullException.ThrowIfNull(fact);
        return new PromptExample(TextOrChat.FromText(fact.Prompt))
        {
            Columns = new Dictionary<string, JsonElement>(StringComparer.Ordinal) { [AnswerColumn] = JsonSerializer.SerializeToElement(fact.Answer) },
        };
    }

    /// <summary>The reward functions and weights whose total equals <paramref name="gold"/> on every completion.</summary>
    public static (IReadOnlyList<IRewardFunction> Functions, IReadOnlyList<float> Weights) For(GoldReward gold)
    {
        ArgumentNullException.ThrowIfNull(gold);
        return ([new AccuracyReward(AnswerColumn, AnswerExtraction.FirstWord, incorrectScore: -1f), new WordsReward(gold.ExtraWordPenalty, gold.MaxRamblePenalty)], [1f, 1f]);
    }

    /// <summary>The same rewards as <c>--reward</c> specs for <c>engine grpo</c> (weights 1 each).</summary>
    public static IReadOnlyList<string> Specs(GoldReward gold)
    {
        ArgumentNullException.ThrowIfNull(gold);
        return
        [
            $"accuracy:{AnswerColumn},first-word,incorrect=-1",
            string.Create(CultureInfo.InvariantCulture, $"words:{gold.ExtraWordPenalty:R},{gold.MaxRamblePenalty:R}"),
        ];
    }
}
