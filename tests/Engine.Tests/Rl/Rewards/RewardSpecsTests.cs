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
        Assert.Equal(["accuracy", "format", "length", "words", "model"], RewardSpecs.BuiltIn.Select(b => b.Kind));
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
    public void Unnamed_rewards_are_named_after_their_kind_numbered_in_order_of_appearance()
    {
        string[] specs = ["format:^<think>", "accuracy:answer", "format:</answer>$", "length", "format:x", "accuracy:solution"];
        Assert.Equal(["format", "accuracy", "format_2", "length", "format_3", "accuracy_2"], RewardSpecs.Names(specs));
        var functions = RewardSpecs.ParseAll(specs, Context);
        Assert.Equal(RewardSpecs.Names(specs), functions.Select(f => f.Name));
        Assert.Equal("</answer>$", Assert.IsType<FormatReward>(functions[2]).Pattern);
        Assert.Equal("solution", Assert.IsType<AccuracyReward>(functions[5]).Column);

        // A single reward keeps its kind's name, as before names could be given.
        Assert.Equal("format", RewardSpecs.Parse("format:x", Context).Name);
        Assert.Equal(["words"], RewardSpecs.Names(["words:0.1"]));
    }

    [Fact]
    public void A_name_before_the_kind_names_the_reward_and_unnamed_ones_are_numbered_without_it()
    {
        string[] specs = ["think=format:^<think>", "format:</answer>$", "Final_2-b=format:a", "short=length", "format:b"];
        Assert.Equal(["think", "format", "Final_2-b", "short", "format_2"], RewardSpecs.Names(specs));
        var functions = RewardSpecs.ParseAll(specs, Context);
        Assert.Equal(["think", "format", "Final_2-b", "short", "format_2"], functions.Select(f => f.Name));
        Assert.Equal("^<think>", Assert.IsType<FormatReward>(functions[0]).Pattern);
        Assert.Equal(4, Assert.IsType<OverlongReward>(functions[3]).Cache);
        Assert.Equal("right", Assert.IsType<AccuracyReward>(RewardSpecs.Parse("right=accuracy:answer,incorrect=-1", Context)).Name);
        Assert.Equal("words", Assert.IsType<WordsReward>(RewardSpecs.Parse("words:0.1", Context)).Name);
    }

    [Theory]
    [InlineData("format:a=b", "format", "a=b")]
    [InlineData("format:(?=x)x", "format", "(?=x)x")]
    [InlineData("format:.*(?<=x=)", "format", ".*(?<=x=)")]
    [InlineData("format:key: v=1", "format", "key: v=1")]
    [InlineData("eq=format:x=y:z=w", "eq", "x=y:z=w")]
    public void An_equals_sign_after_the_first_colon_belongs_to_the_argument(string spec, string name, string pattern)
    {
        var format = Assert.IsType<FormatReward>(RewardSpecs.Parse(spec, Context));
        Assert.Equal((name, pattern), (format.Name, format.Pattern));
        Assert.Equal([name], RewardSpecs.Names([spec]));
    }

    [Theory]
    [InlineData(new[] { "format:a", "format:b", "format_2=accuracy:answer" },
        "--reward: 'format:b' and 'format_2=accuracy:answer' are both named 'format_2'; give one another name with NAME=KIND:ARGUMENT")]
    [InlineData(new[] { "x=format:a", "length", "x=words:0.1" },
        "--reward: 'x=format:a' and 'x=words:0.1' are both named 'x'; give one another name with NAME=KIND:ARGUMENT")]
    [InlineData(new[] { "format=length", "format:a" },
        "--reward: 'format=length' and 'format:a' are both named 'format'; give one another name with NAME=KIND:ARGUMENT")]
    public void Two_rewards_with_one_name_are_one_error_naming_the_flag_and_both_specs(string[] specs, string message)
    {
        Assert.Equal(message, Assert.Throws<InputException>(() => RewardSpecs.Names(specs)).Message);
        Assert.Equal(message, Assert.Throws<InputException>(() => RewardSpecs.ParseAll(specs, Context)).Message);
    }

    [Theory]
    [InlineData("my name=format:x", "--reward: 'my name=format:x': 'my name' is not a reward name; a name is letters, digits, '_' and '-' (NAME=KIND:ARGUMENT)")]
    [InlineData("=format:x", "--reward: '=format:x': '' is not a reward name; a name is letters, digits, '_' and '-' (NAME=KIND:ARGUMENT)")]
    [InlineData("a.b=format:x", "--reward: 'a.b=format:x': 'a.b' is not a reward name; a name is letters, digits, '_' and '-' (NAME=KIND:ARGUMENT)")]
    [InlineData("think=formt:x", "--reward: 'think=formt:x': unknown reward 'formt' (built in: accuracy, format, length, words, model)")]
    [InlineData("think=format", "--reward: 'think=format': 'format' needs an argument: a regular expression the whole completion must match")]
    public void Bad_names_are_one_line_errors_naming_the_flag(string spec, string message)
    {
        Assert.Equal(message, Assert.ThrowsAny<InputException>(() => RewardSpecs.Parse(spec, Context)).Message);
    }

    [Fact]
    public void Two_format_rewards_are_both_scored_and_weighted_by_position()
    {
        var set = new RewardSet(RewardSpecs.ParseAll(["format:<think>.*", "format:.*</answer>"], Context), [1f, 0.25f]);
        Assert.Equal(["format", "format_2"], set.Functions.Select(f => f.Name));
        var rewards = set.Score([Of("<think>a</think><answer>1</answer>"), Of("<think>a</think>"), Of("<answer>1</answer>"), Of("x")]);
        Assert.Equal([1f, 1f, 0f, 0f], rewards.PerFunction[0]);
        Assert.Equal([1f, 0f, 1f, 0f], rewards.PerFunction[1]);
        Assert.Equal([1.25f, 1f, 0.25f, 0f], rewards.Total);
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
