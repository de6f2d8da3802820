using Engine.Training.Data;
using Engine.Training.Objectives;
using Xunit;

namespace Engine.Tests.Objectives;

[Trait("Category", "Training")]
public class PreferenceBatchTests
{
    private static readonly SequenceCollator Collator = SyntheticPreferences.Collator;

    private static TextOrChat T(string text) => TextOrChat.FromText(text);

    [Fact]
    public void Pairs_and_rankings_collate_into_rows_forwarded_once_with_weighted_pairs()
    {
        Example[] examples =
        [
            new PreferenceExample(T("ab"), T("gh"), T("qrs"), 0.5, false) { Source = "d.jsonl", Line = 1 },
            new RankingExample(T("abc"), [T("q"), T("gg"), T("ghi"), T("z")], [2, 1, 0, 3]) { Source = "d.jsonl", Line = 2 },
        ];
        var batch = PreferenceBatch.Batches(examples, Collator, 8).Single();

        Assert.Equal(6, batch.Rows);
        Assert.Equal(1 + 6, batch.Pairs);
        Assert.Equal(2, batch.Groups);
        Assert.Equal([0, 4, 4, 4, 3, 3, 2], batch.Chosen);
        Assert.Equal([1, 3, 2, 5, 2, 5, 5], batch.Rejected);
        Assert.Equal(1f, batch.Weights[0]);
        Assert.All(batch.Weights[1..], w => Assert.Equal(1f / 6, w));
        Assert.Equal([0.5f, 0, 0, 0, 0, 0, 0], batch.Margins!);

        // "ab" + "gh" + EOS: the last response token is the EOS at position 4; 3 response tokens have a log-prob.
        Assert.Equal(4, batch.LastResponse[0]);
        Assert.Equal(3, batch.ResponseTokens[0]);
        Assert.Equal(1, batch.Sequences.Tokens[(0 * batch.Time) + 4]);
        Assert.Equal(6, batch.LastResponse[4]);
        Assert.Equal(batch.Sequences.Lengths.Sum(), batch.Tokens);
    }

    [Fact]
    public void Without_margins_in_the_data_there_are_none()
    {
        var batch = SyntheticPreferences.Batches(SyntheticPreferences.Examples(1, 5), 5).Single();
        Assert.Null(batch.Margins);
        Assert.All(batch.Weights, w => Assert.Equal(1f, w));
    }

    [Fact]
    public void An_empty_response_is_an_error_naming_the_line_and_field()
    {
        var noEos = new SequenceCollator(new FuncTextEncoder(t => [.. t.Select(c => c - 'a' + 2)]), new CollatorOptions { MaxLength = 24 });
        var example = new PreferenceExample(T("ab"), T("gh"), T(""), null, false) { Source = "prefs.jsonl", Line = 7 };
        var e = Assert.Throws<DatasetException>(() => PreferenceGroup.From(noEos, example));
        Assert.Equal("rejected", e.Field);
        Assert.StartsWith("prefs.jsonl:7:", e.Message, StringComparison.Ordinal);
        Assert.Contains("no response token to score: the response is empty", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_response_truncated_away_is_an_error_that_says_how_to_fix_it()
    {
        var tight = new SequenceCollator(
            new FuncTextEncoder(t => [.. t.Select(c => c - 'a' + 2)], eosTokenId: 1),
            new CollatorOptions { MaxLength = 4, TruncatePromptLeft = false });
        var example = new RankingExample(T("abcdef"), [T("g"), T("h")], [0, 1]) { Source = "r.jsonl", Line = 3 };
        var e = Assert.Throws<DatasetException>(() => PreferenceGroup.From(tight, example));
        Assert.Equal("responses", e.Field);
        Assert.Contains("MaxLength", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void An_sft_example_is_not_a_preference()
    {
        var e = Assert.Throws<DatasetException>(() => PreferenceGroup.From(Collator, new TextExample("abc") { Source = "s.jsonl", Line = 2 }));
        Assert.Contains("s.jsonl:2", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Rows_without_targets_and_bad_pairs_are_refused()
    {
        var ok = SyntheticPreferences.Batches(SyntheticPreferences.Examples(2, 1), 1).Single();
        var rows = ok.Sequences;
        Assert.Throws<ArgumentOutOfRangeException>(() => new PreferenceBatch(rows, [0], [2]));
        Assert.Throws<ArgumentOutOfRangeException>(() => new PreferenceBatch(rows, [1], [1]));
        Assert.Throws<ArgumentOutOfRangeException>(() => new PreferenceBatch(rows, [0], [1], weights: [-1f]));
        Assert.Throws<ArgumentOutOfRangeException>(() => new PreferenceBatch(rows, [0], [1], margins: [float.NaN]));
        Assert.Throws<ArgumentException>(() => new PreferenceBatch(rows, [], []));

        var noTargets = rows with { Targets = [.. rows.Targets.Select((t, i) => i < rows.Time ? t : CollatorOptions.IgnoreIndex)] };
        var e = Assert.Throws<ArgumentException>(() => new PreferenceBatch(noTargets, [0], [1]));
        Assert.Contains("row 1 has no response token", e.Message, StringComparison.Ordinal);
    }
}
