using Engine.Training.Rl.Rewards;
using Xunit;
using static Engine.Tests.Rl.Rewards.RewardSamples;

namespace Engine.Tests.Rl.Rewards;

public sealed class AccuracyRewardTests
{
    [Theory]
    [InlineData(@"so the total is \boxed{42}", "42")]
    [InlineData(@"\boxed{1} then \boxed{\frac{3}{4}} done", @"\frac{3}{4}")]
    [InlineData(@"nested \boxed{x^{2}+1}", "x^{2}+1")]
    [InlineData("reasoning\n#### 17\nextra line", " 17")]
    [InlineData("Answer: first\nthen the Answer: second", " second")]
    [InlineData("ANSWER:  Paris  ", "  Paris  ")]
    [InlineData("#### 1 then answer: 2", " 2")]
    [InlineData(@"unbalanced \boxed{7 answer: 8", " 8")]
    [InlineData("just the text", "just the text")]
    public void Final_extraction_takes_the_last_boxed_else_the_line_after_the_last_marker_else_everything(string completion, string expected) =>
        Assert.Equal(expected, AnswerMatching.Extract(completion, AnswerExtraction.Final));

    [Theory]
    [InlineData(" Veyn, the capital of Brisk is Tallo.", "Veyn")]
    [InlineData("...  7!", "7")]
    [InlineData(" ., !", "")]
    [InlineData("", "")]
    public void First_word_extraction_is_the_first_run_of_letters_and_digits(string completion, string expected) =>
        Assert.Equal(expected, AnswerMatching.Extract(completion, AnswerExtraction.FirstWord));

    [Theory]
    [InlineData("1,000", "1000", true)]
    [InlineData("1000.0", "1,000", true)]
    [InlineData("-12.50", "-12.5", true)]
    [InlineData("+3", "3", true)]
    [InlineData("0.5", "1/2", true)]
    [InlineData(@"\frac{1}{2}", "2/4", true)]
    [InlineData(@"-\dfrac{3}{4}", "-0.75", true)]
    [InlineData("1,00", "100", false)]
    [InlineData("1/0", "1/0", true)]
    [InlineData("1/0", "2/0", false)]
    [InlineData("  New   York. ", "new york", true)]
    [InlineData("Paris.", "paris", true)]
    [InlineData("Paris..", "paris", false)]
    [InlineData("Paris", "Pari", false)]
    [InlineData("42", "42 apples", false)]
    public void Normalised_answers_compare_as_numbers_or_as_text_ignoring_case(string answer, string reference, bool equal) =>
        Assert.Equal(equal, AnswerMatching.Equivalent(answer, reference));

    [Fact]
    public void Numbers_parse_exactly_and_malformed_groupings_do_not()
    {
        Assert.True(AnswerMatching.TryNumber("12,345.678", out var v));
        Assert.Equal((new System.Numerics.BigInteger(12345678), new System.Numerics.BigInteger(1000)), v);
        Assert.False(AnswerMatching.TryNumber("12,34", out _));
        Assert.False(AnswerMatching.TryNumber(".5", out _));
        Assert.False(AnswerMatching.TryNumber("1e3", out _));
        Assert.False(AnswerMatching.TryNumber("3/0", out _));
    }

    [Fact]
    public void Scores_one_for_a_right_answer_the_incorrect_score_otherwise_and_NaN_without_a_reference()
    {
        var withAnswer = Row(columnsJson: """{"answer": "1,000"}""");
        var numeric = Row(columnsJson: """{"answer": 1000}""");
        var nullAnswer = Row(columnsJson: """{"answer": null}""");
        var emptyAnswer = Row(columnsJson: """{"answer": " . "}""");
        var other = Row(columnsJson: """{"solution": "1000"}""");
        var reward = new AccuracyReward("answer");
        Assert.Equal(
            [1f, 1f, 0f, 0f, float.NaN, float.NaN, float.NaN],
            Scores(reward, Of(@"\boxed{1000}", withAnswer), Of("#### 1000.00", numeric), Of("#### 999", withAnswer), Of("", withAnswer),
                Of("1000", nullAnswer), Of("1000", emptyAnswer), Of("1000", other)));

        var dapo = new AccuracyReward("answer", incorrectScore: -1f);
        Assert.Equal([1f, -1f], Scores(dapo, Of("answer: 1000", withAnswer), Of("answer: 10", withAnswer)));
        Assert.Equal("accuracy", dapo.Name);
    }

    [Fact]
    public void First_word_answers_compare_as_text_only_like_the_gold_reward()
    {
        var seven = Row(columnsJson: """{"answer": "7"}""");
        var reward = new AccuracyReward("answer", AnswerExtraction.FirstWord, -1f);
        Assert.Equal([1f, 1f, -1f, -1f, -1f],
            Scores(reward, Of(" 7, 3 plus 5 is 8.", seven), Of("7", seven), Of(" 07.", seven), Of(" seven 7", seven), Of(" ", seven)));
    }

    [Fact]
    public void A_reference_that_is_neither_text_nor_a_number_is_an_error_naming_the_column()
    {
        var row = Row(columnsJson: """{"answer": [1, 2]}""");
        var e = Assert.Throws<ArgumentException>(() => Scores(new AccuracyReward("answer"), Of("1", row)));
        Assert.Equal("column 'answer' is a JSON array; the reference answer must be a string or a number", e.Message);
        Assert.Throws<ArgumentException>(() => new AccuracyReward("answer", incorrectScore: float.NaN));
    }
}
