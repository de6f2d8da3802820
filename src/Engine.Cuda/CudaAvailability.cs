using Engine.Cuda.Compilation;
using Engine.Cuda.Interop;

namespace Engine.Cuda;

/// <summary>One GPU as the driver describes it.</summary>
/// <param name="Ordinal">Device index.</param>
/// <param name="Name">Marketing name, e.g. "NVIDIA H100 80GB HBM3".</param>
/// <param name="ComputeMajor">Compute capability major version.</param>
/// <param name="ComputeMinor">Compute capability minor version.</param>
/// <param name="Multiprocessors">Number of SMs.</param>
/// <param name="TotalMemoryBytes">Device memory in bytes.</param>
/// <param name="MaxSharedMemoryPerBlock">Shared memory a block may opt in to, in bytes.</param>
public sealed record CudaDeviceInfo(
    int Ordinal, string Name, int ComputeMajor, int ComputeMinor, int Multiprocessors, long TotalMemoryBytes, int MaxSharedMemoryPerBlock)
{
    /// <inheritdoc/>
    public override string ToString() =>
        $"cuda:{Ordinal} {Name} (sm_{ComputeMajor}{ComputeMinor}, {Multiprocessors} SMs, {TotalMemoryBytes / (1024.0 * 1024 * 1024):F1} GiB)";
}

/// <summary>What <see cref="CudaAvailability.Probe"/> found.</summary>
/// <param name="IsAvailable">True when the CUDA backend can be created.</param>
/// <param name="Reason">Why not (one line), or a summary of what was found.</param>
/// <param name="DriverVersion">The driver's CUDA version as 1000·major + 10·minor (0 when no driver).</param>
/// <param name="Devices">The GPUs found.</param>
public sealed record CudaAvailabilityReport(bool IsAvailable, string Reason, int DriverVersion, IReadOnlyList<CudaDeviceInfo> Devices);

/// <summary>
/// Whether this machine can run the CUDA backend, and if not, why: no driver library, <c>cuInit</c> failing (with the
/// driver's error name), no device, or a missing NVRTC or cuBLAS. Never throws.
/// </summary>
public static class CudaAvailability
{
    private static readonly Lazy<CudaAvailabilityReport> Cached = new(ProbeOnce);

    /// <summary>The report (probed once per process).</summary>
    public static CudaAvailabilityReport Probe() => Cached.Value;

    /// <summary>Initialises the driver and describes device <paramref name="ordinal"/>; throws <see cref="CudaException"/>.</summary>
    internal static CudaDeviceInfo Describe(int ordinal)
    {
        Driver.Check(Driver.cuDeviceGet(out var device, ordinal), "cuDeviceGet");
        return Describe(device, ordinal);
    }

    private static unsafe CudaDeviceInfo Describe(CuDevice device, int ordinal)
    {
        byte* name = stackalloc byte[256];
        Driver.Check(Driver.cuDeviceGetName(name, 256, device), "cuDeviceGetName");
        Driver.Check(Driver.cuDeviceTotalMem(out nuint total, device), "cuDeviceTotalMem_v2");
        return new CudaDeviceInfo(
            ordinal,
            System.Runtime.InteropServices.Marshal.PtrToStringUTF8((nint)name) ?? "unknown",
            Attribute(device, CuDeviceAttribute.ComputeCapabilityMajor),
            Attribute(device, CuDeviceAttribute.ComputeCapabilityMinor),
            Attribute(device, CuDeviceAttribute.MultiprocessorCount),
            (long)total,
            Attribute(device, CuDeviceAttribute.MaxSharedMemoryPerBlockOptin));
    }

    private static int Attribute(CuDevice device, CuDeviceAttribute attribute)
    {
        Driver.Check(Driver.cuDeviceGetAttribute(out int value, attribute, device), "cuDeviceGetAttribute");
        return value;
    }

    private static CudaAvailabilityReport ProbeOnce()
    {
        var driver = NativeLibraries.Probe(NativeLibraries.Driver);
        if (!driver.IsLoaded)
        {
            return Unavailable($"no CUDA driver: {driver.Describe()}");
        }

        try
        {
            var init = Driver.cuInit(0);
            if (init != CuResult.Success)
            {
                return Unavailable($"cuInit failed: {Driver.ErrorName(init)} ({Driver.ErrorText(init)})");
            }

            Driver.Check(Driver.cuDriverGetVersion(out int version), "cuDriverGetVersion");
            Driver.Check(Driver.cuDeviceGetCount(out int count), "cuDeviceGetCount");
            if (count == 0)
            {
                return Unavailable("the CUDA driver found no device", version);
            }

            var devices = new List<CudaDeviceInfo>();
            for (int i = 0; i < count; i++)
            {
                devices.Add(Describe(i));
            }

            var nvrtc = NativeLibraries.Probe(NativeLibraries.Nvrtc);
            if (!nvrtc.IsLoaded)
            {
                return new CudaAvailabilityReport(false, $"NVRTC {nvrtc.Describe()}: the kernels cannot be compiled", version, devices);
            }

            var cublas = NativeLibraries.Probe(NativeLibraries.Cublas);
            if (!cublas.IsLoaded)
            {
                return new CudaAvailabilityReport(false, $"cuBLAS {cublas.Describe()}", version, devices);
            }

            var (major, minor) = NvrtcCompiler.Version;
            string summary = $"CUDA driver {version / 1000}.{version % 1000 / 10}, NVRTC {major}.{minor} ({nvrtc.LoadedName}), " +
                             $"cuBLAS ({cublas.LoadedName}); {string.Join("; ", devices)}";
            return new CudaAvailabilityReport(true, summary, version, devices);
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException or CudaException or BadImageFormatException)
        {
            return Unavailable($"{e.GetType().Name}: {e.Message}");
        }
    }

    private static CudaAvailabilityReport Unavailable(string reason, int driverVersion = 0) =>
        new(false, reason, driverVersion, []);
}
