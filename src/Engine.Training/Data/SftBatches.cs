using Engine.Core.Numerics;

namespace Engine.Training.Data;

/// <summary>
/// SFT micro-batches: every example tokenized once (completion/assistant masks from the collator), then per epoch put
/// in a seeded order and collated B per batch, padded to the batch's longest or packed into rows of the collator's
/// MaxLength (<see cref="CollatorOptions.Packing"/>). The last batch of an epoch may be smaller (or partly padding).
/// </summary>
public sealed class SftBatches : IBatchSource<SequenceBatch>
{
    private readonly SequenceCollator collator;
    private readonly TokenizedSequence[] sequences;
    private readonly int batchSize;

    /// <summary>Tokenizes <paramref name="examples"/> (text, prompt/completion, Alpaca or messages) with <paramref name="collator"/>.</summary>
    public SftBatches(SequenceCollator collator, IEnumerable<Example> examples, int batchSize)
    {
        ArgumentNullException.ThrowIfNull(collator);
        ArgumentNullException.ThrowIfNull(examples);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(batchSize);
        this.collator = collator;
        this.batchSize = batchSize;
        sequences = [.. examples.Select(collator.Tokenize).Where(s => s.Length > 0)];
    }

    /// <summary>Examples that produced tokens.</summary>
    public int Count => sequences.Length;

    /// <summary>The tokenized examples, in dataset order.</summary>
    public IReadOnlyList<TokenizedSequence> Sequences => sequences;

    /// <inheritdoc/>
    public IReadOnlyList<SequenceBatch> Batches(ulong? shuffleSeed)
    {
        var order = Order(sequences.Length, shuffleSeed);
        if (collator.Options.Packing)
        {
            return [.. collator.Pack(order.Select(i => sequences[i]), batchSize, shuffleSeed)];
        }

        int count = (order.Length + batchSize - 1) / batchSize;
        return new LazyList<SequenceBatch>(count, b =>
            collator.Collate([.. order.Skip(b * batchSize).Take(batchSize).Select(i => sequences[i])]));
    }

    /// <summary>0..n−1, Fisher–Yates shuffled by a <see cref="RandomStream"/> of <paramref name="seed"/> when one is given.</summary>
    public static int[] Order(int n, ulong? seed)
    {
        var order = Enumerable.Range(0, n).ToArray();
        if (seed is ulong s)
        {
            var rng = new RandomStream(s);
            for (int i = n - 1; i > 0; i--)
            {
                int j = rng.NextInt(i + 1);
                (order[i], order[j]) = (order[j], order[i]);
            }
        }

        return order;
    }
}

/// <summary>
/// Pretraining micro-batches: documents tokenized and joined into one stream, each followed by EOS (when the encoder has
/// one), then cut into rows of T + 1 tokens overlapping by one (tokens = row[0..T), targets = row[1..T]), as llm.c does.
/// Each epoch visits the rows in a seeded order, B per batch; a last partial batch is dropped.
/// </summary>
public sealed class PretrainBatches : IBatchSource<SequenceBatch>
{
    private readonly int[] stream;
    private readonly int time;
    private readonly int batchSize;

    /// <summary>Tokenizes <paramref name="examples"/> (text examples; others are rejected) into rows of <paramref name="time"/> positions.</summary>
    public PretrainBatches(ITextEncoder encoder, IEnumerable<Example> examples, int time, int batchSize)
    {
        ArgumentNullException.ThrowIfNull(encoder);
        ArgumentNullException.ThrowIfNull(examples);
        ArgumentOutOfRangeException.ThrowIfLessThan(time, 1);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(batchSize);
        this.time = time;
        this.batchSize = batchSize;
        var tokens = new List<int>();
        foreach (var example in examples)
        {
            if (example is not TextExample text)
            {
                throw new DatasetException(example.Source, example.Line, null, $"pretraining reads 'text' lines, this one has {ExampleFormats.Fields(example)}; use engine sft for it");
            }

            if (encoder.BosTokenId is int bos)
            {
                tokens.Add(bos);
            }

            tokens.AddRange(encoder.Encode(text.Text));
            if (encoder.EosTokenId is int eos)
            {
                tokens.Add(eos);
            }
        }

        stream = [.. tokens];
        Rows = stream.Length > time ? (stream.Length - 1) / time : 0;
        if (Rows < batchSize)
        {
            throw new Engine.Core.InputException(
                $"the training data has {stream.Length} tokens: fewer than one batch of {batchSize} rows of {time} + 1 tokens (lower batch_size or max_length, or give more data)");
        }
    }

    /// <summary>Rows of T + 1 tokens the stream yields.</summary>
    public int Rows { get; }

    /// <summary>Tokens in the stream.</summary>
    public int TokenCount => stream.Length;

    /// <inheritdoc/>
    public IReadOnlyList<SequenceBatch> Batches(ulong? shuffleSeed)
    {
        var order = SftBatches.Order(Rows, shuffleSeed);
        return new LazyList<SequenceBatch>(Rows / batchSize, b => Batch(order.AsSpan(b * batchSize, batchSize)));
    }

    private SequenceBatch Batch(ReadOnlySpan<int> rows)
    {
        int n = rows.Length * time;
        var tokens = new int[n];
        var targets = new int[n];
        var mask = new float[n];
        var documents = new int[n];
        var positions = new int[n];
        var lengths = new int[rows.Length];
        for (int b = 0; b < rows.Length; b++)
        {
            var row = stream.AsSpan(rows[b] * time, time + 1);
            row[..time].CopyTo(tokens.AsSpan(b * time));
            row[1..].CopyTo(targets.AsSpan(b * time));
            lengths[b] = time;
            for (int t = 0; t < time; t++)
            {
                positions[(b * time) + t] = t;
            }
        }

        Array.Fill(mask, 1f);
        return new SequenceBatch(rows.Length, time, tokens, targets, mask, documents, positions, lengths);
    }
}

/// <summary>A read-only list whose items are made on demand, so an epoch's batches are not all held at once.</summary>
internal sealed class LazyList<T>(int count, Func<int, T> make) : IReadOnlyList<T>
{
    public int Count => count;

    public T this[int index] => (uint)index < (uint)count ? make(index) : throw new ArgumentOutOfRangeException(nameof(index));

    public IEnumerator<T> GetEnumerator()
    {
        for (int i = 0; i < count; i++)
        {
            yield return make(i);
        }
    }

    System.Collections.IEnumerator System.Collections.IEnumerable.GetEnumerator() => GetEnumerator();
}
