namespace Engine.Training;

/// <summary>
/// An <see cref="IProgress{T}"/> that runs its callback at once, on the reporting thread, in order — unlike
/// <see cref="Progress{T}"/>, which posts to a synchronization context (the thread pool in a console app) and may
/// deliver reports late or out of order.
/// </summary>
/// <typeparam name="T">The report.</typeparam>
public sealed class InlineProgress<T>(Action<T> report) : IProgress<T>
{
    private readonly Action<T> report = report ?? throw new ArgumentNullException(nameof(report));

    /// <inheritdoc/>
    public void Report(T value) => report(value);
}
