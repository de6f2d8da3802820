namespace Engine.Cuda;

/// <summary>
/// Times work queued on a <see cref="CudaBackend"/>'s stream with two events: <see cref="Start"/> and <see cref="Stop"/>
/// only record events (no waiting); <see cref="ElapsedMilliseconds"/> waits for the stop event.
/// </summary>
public sealed class CudaStopwatch : IDisposable
{
    private readonly CudaBackend owner;
    private nint start;
    private nint stop;

    internal CudaStopwatch(CudaBackend owner)
    {
        this.owner = owner;
        start = owner.Api.CreateEvent();
        stop = owner.Api.CreateEvent();
    }

    /// <summary>Records the start event on the stream.</summary>
    public void Start()
    {
        owner.MakeCurrent();
        owner.Api.RecordEvent(start);
    }

    /// <summary>Records the stop event on the stream.</summary>
    public void Stop()
    {
        owner.MakeCurrent();
        owner.Api.RecordEvent(stop);
    }

    /// <summary>GPU time between the two events, waiting for the stop event to complete.</summary>
    public float ElapsedMilliseconds
    {
        get
        {
            owner.MakeCurrent();
            return owner.Api.ElapsedMilliseconds(start, stop);
        }
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        if (start != 0 && !owner.IsDisposed)
        {
            owner.MakeCurrent();
            owner.Api.DestroyEvent(start);
            owner.Api.DestroyEvent(stop);
        }

        start = default;
        stop = default;
    }
}
