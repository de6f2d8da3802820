using Engine.Core;
using Engine.Core.Cpu;
using Engine.Tests.Support;
using Engine.Training.Rl.Rewards;
using Xunit;
using static Engine.Tests.Rl.Rewards.RewardSamples;

namespace Engine.Tests.Rl.Rewards;

public sealed class RewardSpecsTests : IDisposable
{
    private readonly CpuBackend backend = new(1);

    public void Dispose() => backend.Dispose();

    private RewardSpecContext Context => new(backend, MaxCompletionLength: 20);

    [Fact]
    public void Every_built_in_parses_with_its_argument()
    {
        var accuracy = Assert.IsType<AccuracyReward>(RewardSpecs.Parse("accuracy:solution", Context));
        Assert.Equal(("solution", AnswerExtraction.Final, 0f), (accuracy.Column, accuracy.Extraction, accuracy.IncorrectScore));
        var firstWord = Assert.IsType<AccuracyReward>(RewardSpecs.Parse("accuracy:answer,incorrect=-1,first-word", Context));
        Assert.Equal(("answer", AnswerExtraction.FirstWord, -1f), (firstWord.Column, firstWord.Extraction, firstWord.IncorrectScore));

        Assert.Equal("a:b", Assert.IsType<FormatReward>(RewardSpecs.Parse("format:a:b", Context)).Pattern);
        var length = Assert.IsType<OverlongReward>(RewardSpecs.Parse("length", Context));
        Assert.Equal((20, 4), (length.MaxLength, length.Cache));
        Assert.Equal(7, Assert.IsType<OverlongReward>(RewardSpecs.Parse("length:7", Context)).Cache);
        var words = Assert.IsType<WordsReward>(RewardSpecs.Parse("words:0.1,1", Context));
        Assert.Equal((0.1, 1.0), (words.PerWord, words.Cap));
        Assert.Equal(double.PositiveInfinity, Assert.IsType<WordsReward>(RewardSpecs.Parse("words:0.5", Context)).Cap);
        Assert.Equal(["accuracy", "format", "length", "words", "model"], RewardSpecs.BuiltIn.Select(b => b.Name));
    }

    [Theory]
    [InlineData("bleu:x", "--reward: 'bleu:x': unknown reward 'bleu' (built in: accuracy, format, length, words, model)")]
    [InlineData("", "--reward: '': unknown reward '' (built in: accuracy, format, length, words, model)")]
    [InlineData("accuracy", "--reward: 'accuracy': 'accuracy' needs an argument: COLUMN[,first-word][,incorrect=SCORE]: the dataset column holding the answer")]
    [InlineData("accuracy:answer,fuzzy", "--reward: 'accuracy:answer,fuzzy': unknown accuracy option 'fuzzy' (options: first-word, incorrect=SCORE)")]
    [InlineData("accuracy:answer,incorrect=low", "--reward: 'accuracy:answer,incorrect=low': the score of a wrong answer must be a number, got 'low'")]
    [InlineData("accuracy:,first-word", "--reward: 'accuracy:,first-word': The value cannot be an empty string.")]
    [InlineData("format", "--reward: 'format': 'format' needs an argument: a regular expression the whole completion must match")]
    [InlineData("length:-3", "--reward: 'length:-3': the overlong buffer must be a whole number of tokens, got '-3'")]
    [InlineData("length:21", "--reward: 'length:21': the overlong buffer must be between 0 and the longest completion (20 tokens), got 21")]
    [InlineData("words:0.1,1,2", "--reward: 'words:0.1,1,2': 'words' takes PRICE[,CAP], got 3 values")]
    [InlineData("words:-1", "--reward: 'words:-1': the price of a word must be finite and ≥ 0, got -1")]
    [InlineData("model", "--reward: 'model': 'model' needs an argument: DIR: a reward-model checkpoint (scalar head) sharing the policy's tokenizer")]
    public void Bad_specs_are_one_line_errors_naming_the_flag(string spec, string message)
    {
        var e = Assert.ThrowsAny<InputException>(() => RewardSpecs.Parse(spec, Context));
        Assert.Equal(message, e.Message);
        Assert.DoesNotContain('\n', e.Message);
    }

    [Fact]
    public void A_bad_regular_expression_names_the_pattern_as_given()
    {
        var e = Assert.Throws<InputException>(() => RewardSpecs.Parse("format:<answer>(", Context));
        Assert.StartsWith("--reward: 'format:<answer>(': Invalid pattern '<answer>(' at offset 9.", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Parsed_rewards_score_like_their_classes()
    {
        var row = Row(columnsJson: """{"answer": "Veyn"}""");
        var samples = new[] { Of(" Veyn, the capital of Brisk is Tallo.", row, new int[18]), Of(" Tallo.", row, new int[3]) };
        Assert.Equal([1f, -1f], Scores(RewardSpecs.Parse("accuracy:answer,first-word,incorrect=-1", Context), samples));
        Assert.Equal([-0.5f, 0f], Scores(RewardSpecs.Parse("length", Context), samples));
        Approx.Equal([-0.6f, 0f], Scores(RewardSpecs.Parse("words:0.1,1", Context), samples), atol: 1e-6f, rtol: 0f);
    }
}
