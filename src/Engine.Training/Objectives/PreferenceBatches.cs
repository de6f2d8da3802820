using Engine.Training.Data;

namespace Engine.Training.Objectives;

/// <summary>
/// Reward-model and DPO micro-batches for the shared trainer: every preference or ranking example tokenized once into a
/// <see cref="PreferenceGroup"/>, then per epoch put in a seeded order and collated <c>groupsPerBatch</c> prompts per
/// batch (<see cref="PreferenceBatch.Collate"/>). The last batch of an epoch may hold fewer prompts.
/// </summary>
public sealed class PreferenceBatches : IBatchSource<PreferenceBatch>
{
    private readonly SequenceCollator collator;
    private readonly PreferenceGroup[] groups;
    private readonly int groupsPerBatch;

    /// <summary>Tokenizes <paramref name="examples"/> (preference pairs or K-wise rankings) with <paramref name="collator"/>.</summary>
    /// <exception cref="Data.DatasetException">An example has a response with no token left to score.</exception>
    public PreferenceBatches(SequenceCollator collator, IEnumerable<Example> examples, int groupsPerBatch)
    {
        ArgumentNullException.ThrowIfNull(collator);
        ArgumentNullException.ThrowIfNull(examples);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(groupsPerBatch);
        this.collator = collator;
        this.groupsPerBatch = groupsPerBatch;
        groups = [.. examples.Select(e => PreferenceGroup.From(collator, e))];
    }

    /// <summary>Number of prompts (pairs and rankings).</summary>
    public int Count => groups.Length;

    /// <summary>The tokenized groups, in dataset order.</summary>
    public IReadOnlyList<PreferenceGroup> Groups => groups;

    /// <summary>Every batch in dataset order, materialised (e.g. to compute a <see cref="ReferenceLogProbCache"/> over the whole dataset).</summary>
    public IReadOnlyList<PreferenceBatch> All() => [.. Batches(null)];

    /// <inheritdoc/>
    public IReadOnlyList<PreferenceBatch> Batches(ulong? shuffleSeed)
    {
        var order = SftBatches.Order(groups.Length, shuffleSeed);
        int count = (order.Length + groupsPerBatch - 1) / groupsPerBatch;
        return new LazyList<PreferenceBatch>(count, b =>
            PreferenceBatch.Collate([.. order.Skip(b * groupsPerBatch).Take(groupsPerBatch).Select(i => groups[i])], collator));
    }
}
