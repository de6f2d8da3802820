using Engine.Cuda;
using Engine.Cuda.Compilation;
using Xunit;

namespace Engine.Tests.Support;

/// <summary>Why NVRTC tests cannot run here, or null when they can.</summary>
internal static class TestRequirements
{
    public static string? NvrtcMissing => NvrtcCompiler.IsAvailable ? null : $"NVRTC {NvrtcCompiler.LibraryDescription}";

    public static string? CudaMissing
    {
        get
        {
            var report = CudaAvailability.Probe();
            return report.IsAvailable ? null : $"CUDA not available: {report.Reason}";
        }
    }
}

/// <summary>A fact that needs NVRTC (no GPU): skipped with the probed library names where it is missing, never passed silently.</summary>
public sealed class NvrtcFactAttribute : FactAttribute
{
    public NvrtcFactAttribute() => Skip = TestRequirements.NvrtcMissing;
}

/// <summary>A theory that needs NVRTC (no GPU); skipped with the probed names where it is missing.</summary>
public sealed class NvrtcTheoryAttribute : TheoryAttribute
{
    public NvrtcTheoryAttribute() => Skip = TestRequirements.NvrtcMissing;
}

/// <summary>A fact that needs a working CUDA device; skipped with the availability report's reason elsewhere.</summary>
public sealed class CudaFactAttribute : FactAttribute
{
    public CudaFactAttribute() => Skip = TestRequirements.CudaMissing;
}

/// <summary>A theory that needs a working CUDA device; skipped with the availability report's reason elsewhere.</summary>
public sealed class CudaTheoryAttribute : TheoryAttribute
{
    public CudaTheoryAttribute() => Skip = TestRequirements.CudaMissing;
}
