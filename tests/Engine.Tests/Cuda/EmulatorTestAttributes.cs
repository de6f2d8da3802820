using Engine.Cuda;
using Engine.Cuda.Emulation;
using Xunit;

namespace Engine.Tests.Cuda;

/// <summary>Whether the emulated CUDA device can be built here (g++ with C++20), and if not, why.</summary>
internal static class EmulatorRequirement
{
    private static readonly Lazy<string?> Missing = new(() =>
    {
        try
        {
            _ = EmulatorLibrary.Path;
            return null;
        }
        catch (CudaException e)
        {
            return $"the emulated CUDA device cannot be built: {e.Message}";
        }
    });

    /// <summary>Null when the emulator library is built (compiled once per source hash, then cached).</summary>
    public static string? Reason => Missing.Value;
}

/// <summary>A fact on the emulated CUDA device; skipped with the build failure's reason where g++ is missing.</summary>
public sealed class EmulatorFactAttribute : FactAttribute
{
    public EmulatorFactAttribute() => Skip = EmulatorRequirement.Reason;
}

/// <summary>A theory on the emulated CUDA device; skipped with the build failure's reason where g++ is missing.</summary>
public sealed class EmulatorTheoryAttribute : TheoryAttribute
{
    public EmulatorTheoryAttribute() => Skip = EmulatorRequirement.Reason;
}
