using System.Text;
using Engine.Core.Cpu;
using Engine.Tests.Training;
using Engine.Training.Data;
using Engine.Training.Pipeline;
using Engine.Training.Rl.Rewards;
using Xunit;

namespace Engine.Tests.Pipeline;

/// <summary>The synthetic task's gold reward expressed as verifiable rewards: accuracy on the first word plus the words term.</summary>
public sealed class VerifiableRewardsTests
{
    private static readonly SyntheticTask Task = SyntheticTask.Generate(1234);

    [Fact]
    public void The_rl_prompts_are_the_training_facts_with_their_answers_and_survive_the_jsonl_round_trip()
    {
        Assert.Equal(Task.TrainFacts.Select(f => f.Prompt), Task.RlPrompts.Select(p => p.Prompt.Text));
        Assert.Equal(Task.TrainFacts.Select(f => f.Answer), Task.RlPrompts.Select(p => p.Columns[VerifiableRewards.AnswerColumn].GetString()));

        using var dir = new TempDirectory();
        string path = Task.WriteAll(dir.Path)[SyntheticSplit.RlPrompts];
        Assert.Equal("rl_prompts.jsonl", Path.GetFileName(path));
        var first = Task.TrainFacts[0];
        Assert.StartsWith($$"""{"prompt":"{{first.Prompt}}","answer":"{{first.Answer}}"}""" + "\n", File.ReadAllText(path), StringComparison.Ordinal);

        var read = JsonlReader.ReadAll(path).Cast<PromptExample>().ToList();
        Assert.Equal(Task.RlPrompts.Select(p => p.Prompt.Text), read.Select(p => p.Prompt.Text));
        Assert.Equal(Task.TrainFacts.Select(f => f.Answer), read.Select(p => p.Columns[VerifiableRewards.AnswerColumn].GetString()));
        Assert.Equal(2, read[1].Line);
    }

    [Theory]
    [InlineData(0.1, 1.0)]
    [InlineData(0.3, 0.75)]
    [InlineData(0.07, 100.0)]
    public void The_weighted_total_equals_the_gold_reward_on_thousands_of_completions(double price, double cap)
    {
        var gold = new GoldReward(Task.Facts, price, cap);
        var (functions, weights) = VerifiableRewards.For(gold);
        using var backend = new CpuBackend(1);
        var parsed = VerifiableRewards.Specs(gold).Select(s => RewardSpecs.Parse(s, new RewardSpecContext(backend, 32))).ToList();
        var sets = new[] { new RewardSet(functions, weights), new RewardSet(parsed) };
        var random = new Random(17);
        int checkedCount = 0, correct = 0, rambling = 0, empty = 0;
        foreach (var fact in Task.Facts)
        {
            var row = VerifiableRewards.AnsweredPrompt(fact);
            var completions = Enumerable.Range(0, 40).Select(_ => Completion(fact, random)).ToList();
            var group = completions.Select(c => new RewardSample(row, fact.Prompt, [1], c, [2], true)).ToList();
            foreach (var set in sets)
            {
                var total = set.Score(group).Total;
                for (int i = 0; i < completions.Count; i++)
                {
                    var score = gold.Score(fact, completions[i]);
                    Assert.True(Math.Abs(score.Reward - total[i]) <= 1e-6, $"\"{completions[i]}\" for \"{fact.Prompt}\": gold {score.Reward}, rewards {total[i]}");
                    checkedCount++;
                    correct += score.Correct ? 1 : 0;
                    rambling += score.ExtraWords > 0 ? 1 : 0;
                    empty += score.Empty ? 1 : 0;
                }
            }
        }

        // The completions reach every branch of the gold reward, often.
        Assert.True(checkedCount >= 5000 && correct > checkedCount / 5 && correct < checkedCount * 4 / 5 && rambling > checkedCount / 3 && empty > 20,
            $"{checkedCount} checked, {correct} correct, {rambling} rambling, {empty} empty");
    }

    /// <summary>A completion as a policy might write one: the answer or a near miss, then perhaps more words, in any case and punctuation.</summary>
    private static string Completion(SyntheticFact fact, Random random)
    {
        var other = Task.Facts[random.Next(Task.Facts.Count)];
        string[] firsts =
        [
            fact.Answer, fact.Answer, fact.Answer.ToUpperInvariant(), fact.Answer.ToLowerInvariant(), other.Answer, fact.Answer + "s",
            "0" + fact.Answer, fact.Answer + "_x", "the", "", "Ⅻ", "é" + fact.Answer, fact.Answer + "7",
        ];
        string[] separators = [" ", "  ", "\n", ", ", ". ", "!", "-", "'", "_", "…", "\t", "", "(false) "];
        var sb = new StringBuilder();
        if (random.Next(3) > 0)
        {
            sb.Append(separators[random.Next(separators.Length)]);
        }

        sb.Append(firsts[random.Next(firsts.Length)]);
        int more = random.Next(4) == 0 ? random.Next(25) : random.Next(3);
        for (int i = 0; i < more; i++)
        {
            sb.Append(separators[random.Next(separators.Length)]);
            sb.Append(random.Next(3) == 0 ? Task.Facts[random.Next(Task.Facts.Count)].Statement(false) : firsts[random.Next(firsts.Length)]);
        }

        if (random.Next(2) == 0)
        {
            sb.Append(random.Next(2) == 0 ? "." : " ");
        }

        return sb.ToString();
    }
}
