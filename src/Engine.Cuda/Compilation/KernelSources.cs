using System.Reflection;

namespace Engine.Cuda.Compilation;

/// <summary>
/// The CUDA C sources of <c>kernels/</c>, embedded in this assembly as resources named <c>kernels/&lt;file&gt;</c>: one
/// <c>.cu</c> per kernel family (one module each) and the shared header <c>common.cuh</c>, handed to NVRTC in memory.
/// </summary>
public static class KernelSources
{
    /// <summary>The shared header every kernel file includes.</summary>
    public const string HeaderName = "common.cuh";

    private const string Prefix = "kernels/";
    private static readonly Assembly Self = typeof(KernelSources).Assembly;

    /// <summary>Every embedded file name (<c>attention.cu</c>, <c>common.cuh</c>, …), sorted.</summary>
    public static IReadOnlyList<string> Names { get; } =
        [.. Self.GetManifestResourceNames().Where(n => n.StartsWith(Prefix, StringComparison.Ordinal)).Select(n => n[Prefix.Length..]).Order(StringComparer.Ordinal)];

    /// <summary>The kernel files (<c>.cu</c>), one module each.</summary>
    public static IReadOnlyList<string> Modules { get; } = [.. Names.Where(n => n.EndsWith(".cu", StringComparison.Ordinal))];

    /// <summary>The text of one embedded file.</summary>
    public static string Read(string name)
    {
        using var stream = Self.GetManifestResourceStream(Prefix + name)
            ?? throw new ArgumentException($"no embedded kernel source named {name} (have {string.Join(", ", Names)})", nameof(name));
        using var reader = new StreamReader(stream);
        return reader.ReadToEnd();
    }

    /// <summary>The headers a kernel file may include, by include name.</summary>
    public static IReadOnlyDictionary<string, string> Headers() =>
        Names.Where(n => n.EndsWith(".cuh", StringComparison.Ordinal)).ToDictionary(n => n, Read, StringComparer.Ordinal);
}
