using System.Reflection;
using System.Runtime.InteropServices;

namespace Engine.Cuda.Interop;

/// <summary>
/// Finds the CUDA libraries at run time. The <c>[LibraryImport]</c> declarations name the logical libraries
/// <see cref="Driver"/>, <see cref="Nvrtc"/> and <see cref="Cublas"/>; a resolver maps each to the first of its candidate
/// file names that loads (versioned sonames first, since distributions ship the unversioned link only with -dev
/// packages). An environment variable (<c>ENGINE_LIBCUDA</c>, <c>ENGINE_NVRTC</c>, <c>ENGINE_CUBLAS</c>) naming a file
/// is tried before the list.
/// </summary>
internal static class NativeLibraries
{
    /// <summary>Logical name of the driver API library.</summary>
    public const string Driver = "engine-cuda-driver";

    /// <summary>Logical name of the runtime compiler.</summary>
    public const string Nvrtc = "engine-cuda-nvrtc";

    /// <summary>Logical name of cuBLAS.</summary>
    public const string Cublas = "engine-cuda-cublas";

    private static readonly Lock Gate = new();
    private static readonly Dictionary<string, LibraryProbe> Probes = new(StringComparer.Ordinal);
    private static int registered;

    /// <summary>Installs the resolver for this assembly (idempotent; called from the static constructors of the slices).</summary>
    public static void Register()
    {
        if (Interlocked.Exchange(ref registered, 1) == 0)
        {
            NativeLibrary.SetDllImportResolver(typeof(NativeLibraries).Assembly, Resolve);
        }
    }

    /// <summary>The probe of one logical library: loaded or not, and what was tried.</summary>
    public static LibraryProbe Probe(string logicalName)
    {
        lock (Gate)
        {
            if (!Probes.TryGetValue(logicalName, out var probe))
            {
                probe = Load(logicalName, Candidates(logicalName));
                Probes[logicalName] = probe;
            }

            return probe;
        }
    }

    /// <summary>File names tried for a logical library on this operating system, in order.</summary>
    public static IReadOnlyList<string> Candidates(string logicalName)
    {
        var names = new List<string>();
        string? overridePath = Environment.GetEnvironmentVariable(logicalName switch
        {
            Driver => "ENGINE_LIBCUDA",
            Nvrtc => "ENGINE_NVRTC",
            Cublas => "ENGINE_CUBLAS",
            _ => "ENGINE_UNKNOWN_LIBRARY",
        });
        if (!string.IsNullOrWhiteSpace(overridePath))
        {
            names.Add(overridePath);
        }

        bool windows = OperatingSystem.IsWindows();
        switch (logicalName)
        {
            case Driver:
                names.AddRange(windows ? ["nvcuda.dll"] : ["libcuda.so.1", "libcuda.so"]);
                break;
            case Nvrtc:
                names.AddRange(windows
                    ? ["nvrtc64_130_0.dll", "nvrtc64_120_0.dll", "nvrtc64_112_0.dll", "nvrtc64_111_0.dll"]
                    : ["libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so.11.2", "libnvrtc.so.11.1", "libnvrtc.so"]);
                break;
            case Cublas:
                names.AddRange(windows
                    ? ["cublas64_13.dll", "cublas64_12.dll", "cublas64_11.dll"]
                    : ["libcublas.so.13", "libcublas.so.12", "libcublas.so.11", "libcublas.so"]);
                break;
            default:
                throw new ArgumentException($"unknown CUDA library {logicalName}", nameof(logicalName));
        }

        return names;
    }

    private static LibraryProbe Load(string logicalName, IReadOnlyList<string> candidates)
    {
        foreach (string name in candidates)
        {
            if (NativeLibrary.TryLoad(name, out nint handle))
            {
                return new LibraryProbe(logicalName, handle, name, candidates);
            }
        }

        return new LibraryProbe(logicalName, 0, null, candidates);
    }

    private static nint Resolve(string libraryName, Assembly assembly, DllImportSearchPath? searchPath)
    {
        if (libraryName is not (Driver or Nvrtc or Cublas))
        {
            return 0;
        }

        // Zero makes the runtime throw DllNotFoundException; callers check Probe(...).IsLoaded first to give a reason.
        return Probe(libraryName).Handle;
    }
}

/// <summary>The outcome of probing one library.</summary>
/// <param name="LogicalName">Which library (<see cref="NativeLibraries.Driver"/> and so on).</param>
/// <param name="Handle">The OS handle, 0 when nothing loaded.</param>
/// <param name="LoadedName">The candidate that loaded, or null.</param>
/// <param name="Tried">Every candidate, in the order tried.</param>
internal sealed record LibraryProbe(string LogicalName, nint Handle, string? LoadedName, IReadOnlyList<string> Tried)
{
    /// <summary>Whether one candidate loaded.</summary>
    public bool IsLoaded => Handle != 0;

    /// <summary>Whether the library exports <paramref name="symbol"/> (for entry points newer than the oldest supported version).</summary>
    public bool HasExport(string symbol) => IsLoaded && NativeLibrary.TryGetExport(Handle, symbol, out _);

    /// <summary>"libnvrtc.so.11.2" when loaded, else "not found (tried a, b, c)".</summary>
    public string Describe() => IsLoaded ? LoadedName! : $"not found (tried {string.Join(", ", Tried)})";
}
