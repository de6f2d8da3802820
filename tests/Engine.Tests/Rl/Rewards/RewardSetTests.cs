using Engine.Training.Rl.Rewards;
using Xunit;
using static Engine.Tests.Rl.Rewards.RewardSamples;

namespace Engine.Tests.Rl.Rewards;

public sealed class RewardSetTests
{
    [Fact]
    public void Total_is_the_weighted_sum_of_the_scores_that_apply()
    {
        var row = Row(columnsJson: """{"answer": "4"}""");
        var group = new[] { Of(@"<think>2+2</think> \boxed{4}", row), Of("<think>x</think> \\boxed{5}", row), Of("4", Row()) };
        var set = new RewardSet(
            [new AccuracyReward("answer"), new FormatReward(@"<think>.*</think>.*"), new DelegateReward("chars", s => s.Completion.Length)],
            [2f, 0.5f, 0.01f]);
        var rewards = set.Score(group);

        Assert.Equal([1f, 0f, float.NaN], rewards.PerFunction[0]);
        Assert.Equal([1f, 1f, 0f], rewards.PerFunction[1]);
        Assert.Equal([2f + 0.5f + (0.01f * group[0].Completion.Length), 0.5f + (0.01f * group[1].Completion.Length), 0.01f], rewards.Total);
    }

    [Fact]
    public void Default_weights_are_one_and_no_applicable_function_gives_zero()
    {
        var set = new RewardSet([new DelegateReward("a", _ => float.NaN), new DelegateReward("b", s => s.EndedWithEos ? float.NaN : 2f)]);
        Assert.Equal([1f, 1f], set.Weights);
        Assert.Equal([0f, 2f], set.Score([Of("x"), Of("y", endedWithEos: false)]).Total);
    }

    [Fact]
    public void A_throwing_function_is_named_with_the_prompts_file_and_line()
    {
        var set = new RewardSet([new FormatReward("x"), new DelegateReward("checker", _ => throw new InvalidOperationException("no verifier for this"))]);
        var e = Assert.Throws<RewardFunctionException>(() => set.Score([Of("x", Row(line: 12))]));
        Assert.Equal("prompts.jsonl:12: reward function 'checker': InvalidOperationException: no verifier for this", e.Message);
        Assert.Equal("checker", e.Function);

        var infinite = new RewardSet([new DelegateReward("inf", _ => float.PositiveInfinity)]);
        var notFinite = Assert.Throws<RewardFunctionException>(() => infinite.Score([Of("x")]));
        Assert.StartsWith("prompts.jsonl:3: reward function 'inf': returned ", notFinite.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Built_ins_of_one_kind_combine_once_named_apart()
    {
        var set = new RewardSet([new FormatReward("a.*"), new FormatReward(".*b") { Name = "ends_b" }, new AccuracyReward("answer") { Name = "right" }]);
        Assert.Equal(["format", "ends_b", "right"], set.Functions.Select(f => f.Name));
        Assert.Equal([2f, 1f], set.Score([Of("ab"), Of("a")]).Total);
    }

    [Fact]
    public void Bad_sets_are_refused()
    {
        Assert.Throws<ArgumentException>(() => new RewardSet([]));
        var duplicate = Assert.Throws<ArgumentException>(() => new RewardSet([new FormatReward("a"), new DelegateReward("format", _ => 0f)]));
        Assert.StartsWith("two reward functions are named 'format'; names must be unique", duplicate.Message, StringComparison.Ordinal);
        Assert.Throws<ArgumentException>(() => new RewardSet([new FormatReward("a") { Name = "" }]));
        Assert.Throws<ArgumentException>(() => new RewardSet([new FormatReward("a")], [1f, 2f]));
        Assert.Throws<ArgumentException>(() => new RewardSet([new FormatReward("a")], [float.NaN]));
        Assert.Throws<ArgumentException>(() => new DelegateReward("", _ => 0f));
    }
}
