using Engine.Training.Data;

namespace Engine.Training.Objectives.Preference;

/// <summary>
/// A collated KTO micro-batch of E unpaired examples: rows 0..E−1 are prompt i + completion i, rows E..2E−1 the
/// mismatched pairs (prompt i + another example's completion) from which the KL baseline is estimated. The
/// rows travel as a <see cref="PreferenceBatch"/> whose pairs (i, E + i) tie each example to its KL row, so reference
/// models and caches read them like any preference batch; the pairs are not preferences.
/// </summary>
public sealed class KtoBatch
{
    /// <summary>Wraps collated rows (E examples then E KL rows) and the examples' labels.</summary>
    public KtoBatch(PreferenceBatch rows, bool[] desirable)
    {
        ArgumentNullException.ThrowIfNull(rows);
        ArgumentNullException.ThrowIfNull(desirable);
        int e = desirable.Length;
        if (rows.Rows != 2 * e || rows.Pairs != e || Enumerable.Range(0, e).Any(i => rows.Chosen[i] != i || rows.Rejected[i] != e + i))
        {
            throw new ArgumentException($"a KTO batch of {e} examples needs {2 * e} rows, pairs (i, {e} + i)", nameof(rows));
        }

        Rows = rows;
        Desirable = desirable;
    }

    /// <summary>The 2E rows: the examples, then their KL rows.</summary>
    public PreferenceBatch Rows { get; }

    /// <summary>Per example, whether its completion is desirable [E].</summary>
    public bool[] Desirable { get; }

    /// <summary>E, the number of examples.</summary>
    public int Examples => Desirable.Length;

    /// <summary>
    /// Tokenizes and collates unpaired examples with their KL rows: prompt i + <paramref name="klCompletions"/>[i], or
    /// when those are not given prompt i + completion i−1 of this batch (cyclically, TRL's shift).
    /// </summary>
    /// <exception cref="DatasetException">A completion has no token left to score.</exception>
    public static KtoBatch Collate(IReadOnlyList<UnpairedPreferenceExample> examples, SequenceCollator collator, IReadOnlyList<TextOrChat>? klCompletions = null)
    {
        ArgumentNullException.ThrowIfNull(examples);
        ArgumentNullException.ThrowIfNull(collator);
        int e = examples.Count;
        if (e == 0)
        {
            throw new ArgumentException("no examples to collate", nameof(examples));
        }

        var rows = new List<TokenizedSequence>(2 * e);
        rows.AddRange(examples.Select(x => Scored(collator, x, x.Completion, "completion")));
        for (int i = 0; i < e; i++)
        {
            var other = klCompletions is null ? examples[(i + e - 1) % e].Completion : klCompletions[i];
            rows.Add(Scored(collator, examples[i], other, "completion (in the KL pair of another line)"));
        }

        var batch = new PreferenceBatch(collator.Collate(rows), [.. Enumerable.Range(0, e)], [.. Enumerable.Range(e, e)]);
        return new KtoBatch(batch, [.. examples.Select(x => x.Label)]);
    }

    private static TokenizedSequence Scored(SequenceCollator collator, UnpairedPreferenceExample example, TextOrChat completion, string field)
    {
        var s = collator.Tokenize(example.Prompt, completion, example.Tools);
        for (int i = 1; i < s.Length; i++)
        {
            if (s.Trained[i])
            {
                return s;
            }
        }

        throw new DatasetException(example.Source, example.Line, field, "no completion token to score: it is empty or was truncated away; raise MaxLength or set MaxPromptLength");
    }
}

/// <summary>
/// KTO micro-batches for the shared trainer: the examples in a seeded order per epoch, <c>examplesPerBatch</c> each.
/// Each example's KL pair is fixed once, prompt i + completion i−1 in dataset order (TRL's shift), so the KL rows are
/// the same in every epoch and a reference log-prob cache covers them.
/// </summary>
public sealed class KtoBatches : IBatchSource<KtoBatch>
{
    private readonly SequenceCollator collator;
    private readonly UnpairedPreferenceExample[] examples;
    private readonly int examplesPerBatch;

    /// <summary>Keeps the prompt/completion/label examples of <paramref name="data"/>.</summary>
    /// <exception cref="DatasetException">A line is not prompt/completion/label.</exception>
    public KtoBatches(SequenceCollator collator, IEnumerable<Example> data, int examplesPerBatch)
    {
        ArgumentNullException.ThrowIfNull(collator);
        ArgumentNullException.ThrowIfNull(data);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(examplesPerBatch);
        this.collator = collator;
        this.examplesPerBatch = examplesPerBatch;
        examples = [.. data.Select(x => x as UnpairedPreferenceExample ?? throw new DatasetException(
            x.Source, x.Line, null, $"a {ExampleFormats.Fields(x)} line is not KTO data; KTO needs prompt/completion/label lines (label true or false)"))];
    }

    /// <summary>Number of examples.</summary>
    public int Count => examples.Length;

    /// <summary>Every batch in dataset order, materialised (e.g. for a <see cref="ReferenceLogProbCache"/>).</summary>
    public IReadOnlyList<KtoBatch> All() => [.. Batches(null)];

    /// <inheritdoc/>
    public IReadOnlyList<KtoBatch> Batches(ulong? shuffleSeed)
    {
        var order = SftBatches.Order(examples.Length, shuffleSeed);
        int count = (order.Length + examplesPerBatch - 1) / examplesPerBatch;
        return new LazyList<KtoBatch>(count, b =>
        {
            int[] chunk = [.. order.Skip(b * examplesPerBatch).Take(examplesPerBatch)];
            return KtoBatch.Collate(
                [.. chunk.Select(i => examples[i])], collator, [.. chunk.Select(i => examples[(i + examples.Length - 1) % examples.Length].Completion)]);
        });
    }
}
