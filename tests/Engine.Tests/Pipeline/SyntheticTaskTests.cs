using System.Text;
using Engine.Training.Data;
using Engine.Training.Pipeline;
using Xunit;

namespace Engine.Tests.Pipeline;

public sealed class SyntheticTaskTests
{
    private static readonly SyntheticTask Task = SyntheticTask.Generate(1234);

    [Fact]
    public void Same_seed_same_bytes_other_seed_other_world()
    {
        var again = SyntheticTask.Generate(1234);
        foreach (var split in Enum.GetValues<SyntheticSplit>())
        {
            Assert.Equal(Bytes(Task, split), Bytes(again, split));
        }

        var other = SyntheticTask.Generate(99);
        Assert.NotEqual(Task.Facts.Select(f => f.Answer), other.Facts.Select(f => f.Answer));
    }

    [Fact]
    public void World_has_unique_prompts_single_word_answers_and_a_small_corpus()
    {
        Assert.InRange(Task.Facts.Count, 40, 80);
        Assert.Equal(Task.Facts.Count, Task.Facts.Select(f => f.Prompt).Distinct().Count());
        Assert.All(Task.Facts, f => Assert.Matches(@"^[A-Za-z0-9]+$", f.Answer));
        Assert.All(Task.Facts, f => Assert.True(Task.Gold.Score(f.Prompt, " " + f.Answer + ".").Reward == 1.0));
        Assert.Contains(Task.Facts, f => f.Kind == FactKind.Sum && f.Answer == (int.Parse(f.Subject.Split(' ')[0]) + int.Parse(f.Subject.Split(' ')[2])).ToString());
        long bytes = Bytes(Task, SyntheticSplit.Pretrain).Length;
        Assert.InRange(bytes, 100_000, 800_000);
    }

    [Fact]
    public void Describe_names_the_sizes()
    {
        string line = Task.Describe();
        Assert.StartsWith("synthetic facts task, seed 1234: 64 facts (12 held out), corpus 2000 documents (", line, StringComparison.Ordinal);
        Assert.Contains($"{Task.Sft.Count} SFT demonstrations, {Task.Preferences.Count} preference pairs", line, StringComparison.Ordinal);
    }

    [Fact]
    public void Corpus_runs_facts_on_and_holds_every_fact_with_its_prompt_at_a_document_start()
    {
        var docs = Task.Pretrain.Select(d => d.Text).ToList();
        foreach (var fact in Task.Facts)
        {
            Assert.Contains(docs, d => d.StartsWith(fact.Statement(capitalize: true) + ",", StringComparison.Ordinal)
                || d.StartsWith(fact.Statement(capitalize: true) + " and", StringComparison.Ordinal));
        }

        // The ramble the pipeline is about: after an answer the corpus almost always goes on with another fact.
        var capital = Task.Facts.First(f => f.Kind == FactKind.Capital);
        Assert.Contains(docs, d => d.Contains(capital.Statement(false) + ", the capital of ", StringComparison.Ordinal)
            || d.StartsWith(capital.Statement(true) + ", the capital of ", StringComparison.Ordinal));
        Assert.True(docs.Average(d => d.Split(", ").Length) > 3);
    }

    [Fact]
    public void Fact_checks_run_on_like_lists_and_flag_exactly_the_wrong_answers_of_every_kind()
    {
        const string Header = "Fact check: ";
        var checks = Task.Pretrain.Select(d => d.Text).Where(d => d.StartsWith(Header, StringComparison.Ordinal)).ToList();
        Assert.InRange(checks.Count, Task.Pretrain.Count / 4, Task.Pretrain.Count * 3 / 4);
        string flag = " " + SyntheticTask.WrongFlag;
        int right = 0, wrong = 0;
        var kinds = new HashSet<FactKind>();
        foreach (var doc in checks)
        {
            Assert.EndsWith(".", doc, StringComparison.Ordinal);
            var claims = doc[Header.Length..^1].Split(", ");
            Assert.True(claims.Length >= 3, doc);
            foreach (string claim in claims)
            {
                bool flagged = claim.EndsWith(flag, StringComparison.Ordinal);
                string statement = flagged ? claim[..^flag.Length] : claim;
                int space = statement.LastIndexOf(' ');
                string prefix = statement[..space];
                var fact = Task.FactFor(char.ToUpperInvariant(prefix[0]) + prefix[1..]) ?? throw new Xunit.Sdk.XunitException($"not a prompt: '{prefix}' in {doc}");
                bool correct = statement[(space + 1)..] == fact.Answer;
                Assert.True(correct != flagged, $"'{claim}' in {doc}");
                kinds.Add(fact.Kind);
                right += correct ? 1 : 0;
                wrong += correct ? 0 : 1;
            }
        }

        // About half the claims are wrong, every kind is checked, and so are held-out facts (they are in the corpus, not
        // in any training split).
        Assert.InRange(right / (double)(right + wrong), 0.4, 0.6);
        Assert.Equal(Enum.GetValues<FactKind>().Length, kinds.Count);
        Assert.All(Task.HeldOutFacts, f => Assert.Contains(checks, d => d.Contains(f.Clause + " ", StringComparison.Ordinal) || d.Contains(f.Prompt + " ", StringComparison.Ordinal)));
    }

    [Fact]
    public void Contrast_pairs_set_the_right_concise_answer_against_distinct_wrong_ones()
    {
        foreach (var fact in Task.TrainFacts)
        {
            string right = " " + fact.Answer + ".";
            var contrast = Task.Preferences
                .Where(p => p.Prompt.Text == fact.Prompt && (p.Chosen.Text == right || p.Rejected.Text == right))
                .Select(p => p.Chosen.Text == right ? p.Rejected.Text! : p.Chosen.Text!)
                .Where(other => other.Split(' ', StringSplitOptions.RemoveEmptyEntries).Length == 1)
                .ToList();
            int wrongAnswers = Task.Facts.Where(f => f.Kind == fact.Kind).Select(f => f.Answer).Distinct().Count() - 1;
            Assert.True(contrast.Distinct().Count() >= Math.Min(Task.Options.ContrastPairsPerFact, wrongAnswers), $"{fact.Prompt}: {contrast.Count} contrast pairs");
            Assert.DoesNotContain(right, contrast);
        }
    }

    [Fact]
    public void Held_out_facts_are_in_the_corpus_but_in_no_training_split()
    {
        Assert.NotEmpty(Task.HeldOutFacts);
        Assert.Equal(Task.Facts.Count, Task.HeldOutFacts.Count + Task.TrainFacts.Count);
        foreach (var kind in Enum.GetValues<FactKind>())
        {
            Assert.Contains(Task.HeldOutFacts, f => f.Kind == kind);
        }

        var heldPrompts = Task.HeldOutFacts.Select(f => f.Prompt).ToHashSet();
        Assert.DoesNotContain(Task.Sft, e => heldPrompts.Contains(e.Prompt.Text!));
        Assert.DoesNotContain(Task.Preferences, e => heldPrompts.Contains(e.Prompt.Text!));
        Assert.DoesNotContain(Task.Rankings, e => heldPrompts.Contains(e.Prompt.Text!));
        Assert.Equal(heldPrompts, Task.EvalPrompts.Select(e => e.Prompt.Text!).ToHashSet());
        Assert.All(Task.EvalPreferences, e => Assert.Contains(e.Prompt.Text!, heldPrompts));
        var corpus = string.Join("\n", Task.Pretrain.Select(d => d.Text));
        Assert.All(Task.HeldOutFacts, f => Assert.Contains(f.Statement(capitalize: true), corpus, StringComparison.Ordinal));
    }

    [Fact]
    public void Labeller_is_mostly_concise_and_correct_but_imperfect()
    {
        var scores = Task.Sft.Select(e => Task.Gold.Score(e.Prompt.Text!, e.Completion.Text!)).ToList();
        double concise = scores.Count(s => s.Reward == 1.0) / (double)scores.Count;
        Assert.InRange(concise, 0.7, 0.9);
        Assert.Contains(scores, s => s.Correct && s.ExtraWords > 0);
        Assert.Contains(scores, s => !s.Correct);
        Assert.All(Task.Sft, e => Assert.StartsWith(" ", e.Completion.Text!, StringComparison.Ordinal));
    }

    [Fact]
    public void Preferences_follow_the_gold_reward_with_some_noise_and_eval_pairs_without()
    {
        double Agree(IEnumerable<PreferenceExample> pairs) => pairs.Average(p =>
            Task.Gold.Score(p.Prompt.Text!, p.Chosen.Text!).Reward > Task.Gold.Score(p.Prompt.Text!, p.Rejected.Text!).Reward ? 1.0 : 0.0);

        // Mostly the gold order, but not always: the labeller is noisy (Bradley–Terry with Gumbel noise).
        double agree = Agree(Task.Preferences);
        Assert.InRange(agree, 0.75, 1.0);
        Assert.True(agree < 1.0, "no pair was labelled against the gold reward: the label noise is missing");
        Assert.Equal(1.0, Agree(Task.EvalPreferences));
        Assert.All(Task.Preferences, p => Assert.NotEqual(p.Chosen, p.Rejected));

        // Every pair draws a fresh set of candidates, so a fact's run-on responses are many, not the same five again.
        foreach (var fact in Task.TrainFacts)
        {
            var runOn = Task.Preferences.Where(p => p.Prompt.Text == fact.Prompt)
                .SelectMany(p => new[] { p.Chosen.Text!, p.Rejected.Text! }).Where(r => r.Contains(',', StringComparison.Ordinal)).Distinct().Count();
            Assert.True(runOn > Task.Options.PairsPerFact / 2, $"{fact.Prompt}: {runOn} distinct run-on responses in {Task.Options.PairsPerFact} pairs");
        }
        Assert.All(Task.Rankings, r =>
        {
            Assert.Equal(Task.Options.RankingSize, r.Responses.Count);
            Assert.Equal(Enumerable.Range(0, r.Responses.Count), r.Ranking.Order());
            Assert.Equal(r.Responses.Count, r.Responses.Distinct().Count());
        });
    }

    [Fact]
    public void Every_split_round_trips_through_JsonlReader_with_the_right_format()
    {
        string dir = Path.Combine(Path.GetTempPath(), "engine-synthetic-" + Guid.NewGuid().ToString("N"));
        try
        {
            var paths = Task.WriteAll(dir);
            var expected = new Dictionary<SyntheticSplit, DatasetFormat>
            {
                [SyntheticSplit.Pretrain] = DatasetFormat.Text,
                [SyntheticSplit.Sft] = DatasetFormat.PromptCompletion,
                [SyntheticSplit.Preference] = DatasetFormat.Preference,
                [SyntheticSplit.Ranking] = DatasetFormat.Ranking,
                [SyntheticSplit.EvalPrompts] = DatasetFormat.Prompt,
                [SyntheticSplit.EvalPreference] = DatasetFormat.Preference,
            };
            foreach (var (split, format) in expected)
            {
                using var reader = new JsonlReader(paths[split]);
                var read = reader.Examples().ToList();
                Assert.Equal(format, reader.Format);
                var original = Task.Split(split);
                Assert.Equal(original.Count, read.Count);
                for (int i = 0; i < read.Count; i++)
                {
                    Assert.Equal(Describe(original[i]), Describe(read[i]));
                }
            }
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }

        // For looking at the data by eye: ENGINE_SAMPLE_TASK_DIR=/tmp/task dotnet test --filter …
        string? keep = Environment.GetEnvironmentVariable("ENGINE_SAMPLE_TASK_DIR");
        if (!string.IsNullOrEmpty(keep))
        {
            Task.WriteAll(keep);
        }
    }

    private static string Describe(Example e) => e switch
    {
        TextExample t => "text:" + t.Text,
        PromptCompletionExample pc => $"pc:{pc.Prompt}|{pc.Completion}",
        PreferenceExample p => $"pref:{p.Prompt}|{p.Chosen}|{p.Rejected}|{p.Margin}|{p.ImplicitPrompt}",
        RankingExample r => $"rank:{r.Prompt}|{string.Join("|", r.Responses)}|{string.Join(",", r.Ranking)}",
        PromptExample p => "prompt:" + p.Prompt,
        _ => throw new InvalidOperationException(e.GetType().Name),
    };

    private static byte[] Bytes(SyntheticTask task, SyntheticSplit split)
    {
        using var stream = new MemoryStream();
        task.WriteSplit(split, stream);
        return stream.ToArray();
    }
}
