using Engine.Cuda.Interop;

namespace Engine.Cuda;

/// <summary>
/// Times work queued on a <see cref="CudaBackend"/>'s stream with two events: <see cref="Start"/> and <see cref="Stop"/>
/// only record events (no waiting); <see cref="ElapsedMilliseconds"/> waits for the stop event.
/// </summary>
public sealed class CudaStopwatch : IDisposable
{
    private readonly CudaBackend owner;
    private CuEvent start;
    private CuEvent stop;

    internal CudaStopwatch(CudaBackend owner)
    {
        this.owner = owner;
        Driver.Check(Driver.cuEventCreate(out start, Driver.EventDefault), "cuEventCreate");
        Driver.Check(Driver.cuEventCreate(out stop, Driver.EventDefault), "cuEventCreate");
    }

    /// <summary>Records the start event on the stream.</summary>
    public void Start()
    {
        owner.MakeCurrent();
        Driver.Check(Driver.cuEventRecord(start, owner.Stream), "cuEventRecord");
    }

    /// <summary>Records the stop event on the stream.</summary>
    public void Stop()
    {
        owner.MakeCurrent();
        Driver.Check(Driver.cuEventRecord(stop, owner.Stream), "cuEventRecord");
    }

    /// <summary>GPU time between the two events, waiting for the stop event to complete.</summary>
    public float ElapsedMilliseconds
    {
        get
        {
            owner.MakeCurrent();
            Driver.Check(Driver.cuEventSynchronize(stop), "cuEventSynchronize");
            Driver.Check(Driver.cuEventElapsedTime(out float ms, start, stop), "cuEventElapsedTime");
            return ms;
        }
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        if (start.Value != 0 && !owner.IsDisposed)
        {
            owner.MakeCurrent();
            Driver.Check(Driver.cuEventDestroy(start), "cuEventDestroy_v2");
            Driver.Check(Driver.cuEventDestroy(stop), "cuEventDestroy_v2");
        }

        start = default;
        stop = default;
    }
}
