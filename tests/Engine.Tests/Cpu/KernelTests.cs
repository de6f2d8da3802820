using Engine.Core.Cpu;

namespace Engine.Tests.Cpu;

/// <summary>Small helpers shared by the CPU kernel tests.</summary>
internal static class KernelTests
{
    /// <summary>
    /// Disposes the backend at the end of a using block. A one-thread pool has no workers to stop, and
    /// WorkerPool.Dispose currently throws for it (SemaphoreSlim.Release(0)), so that one is left alone.
    /// </summary>
    public static IDisposable? Owned(CpuBackend backend) => backend.ThreadCount > 1 ? backend : null;

    /// <summary>Σ a[i]·b[i] in double: a scalar loss that projects an output onto fixed weights.</summary>
    public static double Dot(double[] a, float[] b)
    {
        double s = 0;
        for (int i = 0; i < a.Length; i++)
        {
            s += a[i] * b[i];
        }

        return s;
    }
}
