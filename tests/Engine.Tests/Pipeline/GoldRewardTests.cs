using Engine.Training.Pipeline;
using Xunit;

namespace Engine.Tests.Pipeline;

public sealed class GoldRewardTests
{
    private static readonly SyntheticFact Aldora = new(0, FactKind.Capital, "Aldora", "the capital of Aldora is", "Veyn");
    private static readonly SyntheticFact Sum = new(1, FactKind.Sum, "3 plus 4", "3 plus 4 is", "7");
    private static readonly GoldReward Gold = new([Aldora, Sum]);

    [Theory]
    [InlineData(" Veyn.", 1.0, true, 0)]
    [InlineData("Veyn", 1.0, true, 0)]
    [InlineData(" veyn!\n", 1.0, true, 0)]
    [InlineData(" Veyn, the capital of Brisk is Tallo.", 0.4, true, 6)]
    [InlineData(" Veyn, the capital of Brisk is Tallo, the capital of Corm is Dask, the capital of Pel is Ru.", 0.0, true, 18)]
    [InlineData(" Tallo.", -1.0, false, 0)]
    [InlineData(" Tallo, the capital of Brisk is Veyn.", -1.6, false, 6)]
    [InlineData(" Veynor.", -1.0, false, 0)]
    [InlineData(" is Veyn.", -1.1, false, 1)]
    public void Scores_hand_written_responses(string response, double reward, bool correct, int extra)
    {
        var score = Gold.Score("The capital of Aldora is", response);
        Assert.Equal(reward, score.Reward, 10);
        Assert.Equal(correct, score.Correct);
        Assert.Equal(extra, score.ExtraWords);
        Assert.False(score.Empty);
    }

    [Theory]
    [InlineData("")]
    [InlineData("   ")]
    [InlineData(" ...\n")]
    public void Empty_response_is_minus_one(string response)
    {
        var score = Gold.Score(Aldora, response);
        Assert.Equal(new GoldScore(-1, false, true, 0), score);
    }

    [Fact]
    public void Numbers_and_prompt_lookup()
    {
        Assert.Equal(1.0, Gold.Score(" 3 plus 4 is ", " 7.").Reward);
        Assert.Equal(-1.0, Gold.Score("3 plus 4 is", " 8.").Reward);
        Assert.False(Gold.Score("3 plus 4 is", " 77").Correct);
        Assert.Same(Sum, Gold.FactFor("3 plus 4 is"));
        Assert.Null(Gold.FactFor("The capital of Nowhere is"));
        Assert.Throws<ArgumentException>(() => Gold.Score("The capital of Nowhere is", " X."));
    }

    [Fact]
    public void Rambling_penalty_is_capped_and_configurable()
    {
        var strict = new GoldReward([Aldora], extraWordPenalty: 0.5, maxRamblePenalty: 0.75);
        Assert.Equal(0.5, strict.Score(Aldora, " Veyn indeed.").Reward, 10);
        Assert.Equal(0.25, strict.Score(Aldora, " Veyn, the capital of Brisk is Tallo.").Reward, 10);
        string endless = " Veyn" + string.Concat(Enumerable.Repeat(", the capital of X is Y", 50));
        Assert.Equal(0.0, Gold.Score(Aldora, endless).Reward, 10);
    }

    [Fact]
    public void Evaluate_averages_reward_and_accuracy()
    {
        var (mean, accuracy, n) = Gold.Evaluate([("The capital of Aldora is", " Veyn."), ("3 plus 4 is", " 7, 1 plus 1 is 2."), ("3 plus 4 is", "")]);
        Assert.Equal(3, n);
        Assert.Equal((1.0 + 0.5 - 1.0) / 3, mean, 10);
        Assert.Equal(2.0 / 3, accuracy, 10);
        Assert.True(double.IsNaN(Gold.Evaluate([]).GoldRewardMean));
    }
}
