namespace Engine.Training;

/// <summary>
/// The micro-batches of one epoch of a dataset. The order is a pure function of the shuffle seed, so a trainer resumes
/// an epoch from (seed, index) and reaches the same batches an uninterrupted run would.
/// </summary>
/// <typeparam name="TBatch">What the objective consumes.</typeparam>
public interface IBatchSource<out TBatch>
{
    /// <summary>The epoch's micro-batches: in a seeded random order, or in dataset order when <paramref name="shuffleSeed"/> is null (evaluation).</summary>
    IReadOnlyList<TBatch> Batches(ulong? shuffleSeed);
}
