using Engine.Training.Rl.Rewards;
using Xunit;
using static Engine.Tests.Rl.Rewards.RewardSamples;

namespace Engine.Tests.Rl.Rewards;

public sealed class LengthRewardTests
{
    [Theory]
    [InlineData(0, 0f)]
    [InlineData(12, 0f)]
    [InlineData(16, 0f)]
    [InlineData(17, -0.25f)]
    [InlineData(18, -0.5f)]
    [InlineData(19, -0.75f)]
    [InlineData(20, -1f)]
    [InlineData(21, -1f)]
    [InlineData(500, -1f)]
    public void Soft_overlong_punishment_is_zero_then_linear_over_the_buffer_then_minus_one(int length, float expected)
    {
        // L_max = 20, L_cache = 4: free up to 16 tokens, −1/4 per token after, −1 at and past 20.
        var reward = new OverlongReward(20, 4);
        Assert.Equal(expected, reward.Penalty(length), 6);
        Assert.Equal(expected, Scores(reward, Of("x", completionIds: new int[length]))[0], 6);
    }

    [Fact]
    public void No_buffer_punishes_only_past_the_maximum_and_bad_sizes_are_refused()
    {
        var hard = new OverlongReward(8, 0);
        Assert.Equal([0f, 0f, -1f], [hard.Penalty(0), hard.Penalty(8), hard.Penalty(9)]);
        var whole = new OverlongReward(4, 4);
        Assert.Equal([0f, -0.25f, -1f, -1f], [whole.Penalty(0), whole.Penalty(1), whole.Penalty(4), whole.Penalty(5)]);
        Assert.Equal(4096, OverlongReward.DefaultCache(20480));
        Assert.Throws<ArgumentException>(() => new OverlongReward(0, 0));
        Assert.Throws<ArgumentException>(() => new OverlongReward(8, 9));
        Assert.Throws<ArgumentException>(() => new OverlongReward(8, -1));
    }

    [Theory]
    [InlineData("", 0f)]
    [InlineData(" Veyn.", 0f)]
    [InlineData(" Veyn, the capital of Brisk is Tallo.", -0.6f)]
    [InlineData("a b c d e f g h i j k l m n", -1f)]
    [InlineData("  ... ,, !", 0f)]
    [InlineData("3 plus 4-is_7", -0.4f)]
    public void Words_cost_their_price_after_the_first_up_to_the_cap(string completion, float expected) =>
        Assert.Equal(expected, Scores(new WordsReward(0.1, 1.0), Of(completion))[0], 6);

    [Fact]
    public void Words_without_a_cap_keep_costing_and_bad_prices_are_refused()
    {
        Assert.Equal(-3f, Scores(new WordsReward(0.5), Of("a b c d e f g"))[0], 6);
        Assert.Throws<ArgumentException>(() => new WordsReward(-0.1));
        Assert.Throws<ArgumentException>(() => new WordsReward(double.NaN));
        Assert.Throws<ArgumentException>(() => new WordsReward(0.1, -1));
    }
}
