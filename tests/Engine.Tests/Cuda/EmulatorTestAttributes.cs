using Engine.Cuda.Emulation;
using Xunit;

namespace Engine.Tests.Cuda;

/// <summary>
/// Whether the emulated CUDA device can be built here (a C++20 g++ runs), and if not, why. Only a missing compiler skips:
/// sources it rejects fail the tests, which build the library on first use (once per source hash, then cached).
/// </summary>
internal static class EmulatorRequirement
{
    private static readonly Lazy<string?> Missing = new(() =>
        EmulatorLibrary.Unavailable is string why ? $"the emulated CUDA device cannot be built: {why}" : null);

    /// <summary>Null when the emulator can be built.</summary>
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
