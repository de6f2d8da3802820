using System.Diagnostics;
using System.Reflection;
using System.Security.Cryptography;
using System.Text;
using System.Text.RegularExpressions;
using Engine.Cuda.Compilation;
using Engine.Cuda.Runtime;

namespace Engine.Cuda.Emulation;

/// <summary>
/// Builds the emulated device's native library: every <c>kernels/*.cu</c> (the embedded sources NVRTC compiles) compiled
/// for the CPU by g++ with <c>emulator.h</c> in front, one translation unit per file, plus one exported launch wrapper per
/// kernel of <see cref="Kernels.All"/> (<c>emu_kernel_&lt;name&gt;</c>, whose parameter letters are checked against the
/// kernel's C++ parameters at compile time). The one source rewrite is generic: <c>extern __shared__ T name[];</c>
/// becomes a pointer to the block's dynamic shared memory. The library is cached by a hash of everything that goes into
/// it (sources, flags, compiler version) under the temp folder, so a test run compiles it once.
/// </summary>
internal static partial class EmulatorLibrary
{
    /// <summary>The compiler flags: C++20, optimised, no contraction of a·b+c (the kernels spell out their FMAs), fixed-size
    /// arrays bounds-checked (the emulator reports the kernel, block and thread).</summary>
    private static readonly string[] Flags = ["-std=c++20", "-O2", "-fPIC", "-ffp-contract=off", "-fsanitize=bounds", "-fno-math-errno", "-w"];

    private static readonly Lazy<string> Built = new(Build);

    /// <summary>The path of the built library; throws <see cref="CudaException"/> with the reason when it cannot be built.</summary>
    public static string Path => Built.Value;

    /// <summary>
    /// Why the library cannot be built here — the compiler cannot be run — or null when it can. A compiler that runs but
    /// rejects the sources is not a reason to skip: that is a failure of the kernels or of the emulator.
    /// </summary>
    public static string? Unavailable
    {
        get
        {
            try
            {
                Run(Compiler, ["--version"], Environment.CurrentDirectory, "find the compiler");
                return null;
            }
            catch (CudaException e)
            {
                return e.Message;
            }
        }
    }

    /// <summary>The compiler the library is built with: <c>ENGINE_EMULATOR_CXX</c>, or <c>g++</c> on the path.</summary>
    public static string Compiler => Environment.GetEnvironmentVariable("ENGINE_EMULATOR_CXX") is { Length: > 0 } cxx ? cxx : "g++";

    /// <summary>The generated translation units by file name: one per kernel module, and the runtime.</summary>
    internal static IReadOnlyDictionary<string, string> Sources()
    {
        var units = new SortedDictionary<string, string>(StringComparer.Ordinal)
        {
            ["emulator_runtime.cpp"] = "#define EMU_RUNTIME\n#include \"emulator.h\"\n",
        };
        foreach (string module in KernelSources.Modules)
        {
            var text = new StringBuilder();
            text.Append("#include \"emulator.h\"\n#line 1 \"").Append(module).Append("\"\n");
            text.Append(DynamicShared().Replace(KernelSources.Read(module), "EMU_DYNAMIC_SHARED($1, $2);"));
            text.Append("\n#line 1 \"").Append(module).Append(" (launch wrappers)\"\n");
            foreach (var kernel in Kernels.All.Where(k => k.Module == module))
            {
                string letters = string.Join(", ", kernel.Parameters.Select(c => $"'{c}'"));
                text.Append($"extern \"C\" int emu_kernel_{kernel.Name}(const emu::Launch* l, void** a) ")
                    .Append($"{{ return emu::launch<{letters}>(\"{kernel.Name}\", &{kernel.Name}, l, a); }}\n");
            }

            units[module.Replace(".cu", ".cpp", StringComparison.Ordinal)] = text.ToString();
        }

        return units;
    }

    /// <summary>The headers beside the units: the emulation header and the kernels' own.</summary>
    internal static IReadOnlyDictionary<string, string> Headers()
    {
        var headers = new Dictionary<string, string>(KernelSources.Headers(), StringComparer.Ordinal) { ["emulator.h"] = EmulationHeader() };
        return headers;
    }

    private static string EmulationHeader()
    {
        using var stream = Assembly.GetExecutingAssembly().GetManifestResourceStream("emulation/emulator.h")
            ?? throw new InvalidOperationException("emulator.h is not embedded in Engine.Cuda");
        using var reader = new StreamReader(stream);
        return reader.ReadToEnd();
    }

    private static string Build()
    {
        string version = Run(Compiler, ["--version"], Environment.CurrentDirectory, "find the compiler").Split('\n')[0];
        var sources = Sources();
        var headers = Headers();
        string key = Hash(version, sources, headers);
        string folder = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "engine-emulator", key);
        string library = System.IO.Path.Combine(folder, "libengine-emulator.so");
        if (File.Exists(library))
        {
            return library;
        }

        // Built in a private folder and moved into place whole, so concurrent test processes never load a half-written file.
        string work = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "engine-emulator", $"{key}.{Environment.ProcessId}.{Guid.NewGuid():N}");
        Directory.CreateDirectory(work);
        try
        {
            foreach (var (name, text) in sources.Concat(headers))
            {
                File.WriteAllText(System.IO.Path.Combine(work, name), text);
            }

            var objects = sources.Keys.Select(n => n.Replace(".cpp", ".o", StringComparison.Ordinal)).ToArray();
            try
            {
                Parallel.ForEach(
                    sources.Keys,
                    new ParallelOptions { MaxDegreeOfParallelism = Environment.ProcessorCount },
                    unit => Run(Compiler, [.. Flags, "-c", unit, "-o", unit.Replace(".cpp", ".o", StringComparison.Ordinal)], work, $"compile {unit}"));
            }
            catch (AggregateException e) when (e.InnerExceptions[0] is CudaException first)
            {
                throw first;
            }
            Run(Compiler, ["-shared", "-o", "libengine-emulator.so", .. objects, "-lpthread"], work, "link the emulator");
            Directory.CreateDirectory(folder);
            try
            {
                File.Move(System.IO.Path.Combine(work, "libengine-emulator.so"), library);
            }
            catch (IOException) when (File.Exists(library))
            {
                // Another process finished the same build first.
            }

            return library;
        }
        finally
        {
            Directory.Delete(work, recursive: true);
        }
    }

    private static string Hash(string compiler, IReadOnlyDictionary<string, string> sources, IReadOnlyDictionary<string, string> headers)
    {
        var text = new StringBuilder(compiler).Append('\0').AppendJoin(' ', Flags);
        foreach (var (name, content) in sources.Concat(headers).OrderBy(p => p.Key, StringComparer.Ordinal))
        {
            text.Append('\0').Append(name).Append('\0').Append(content);
        }

        return Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(text.ToString())))[..16].ToLowerInvariant();
    }

    private static string Run(string program, IEnumerable<string> arguments, string directory, string what)
    {
        var start = new ProcessStartInfo(program)
        {
            WorkingDirectory = directory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (string argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        Process process;
        try
        {
            process = Process.Start(start) ?? throw new CudaException($"the emulated device cannot {what}: {program} did not start");
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            throw new CudaException($"the emulated device needs a C++20 compiler: {program} cannot be run ({e.Message}); install g++ or set ENGINE_EMULATOR_CXX");
        }

        using (process)
        {
            var error = process.StandardError.ReadToEndAsync();
            string output = process.StandardOutput.ReadToEnd();
            process.WaitForExit();
            if (process.ExitCode != 0)
            {
                string log = error.Result.Length > 4000 ? error.Result[..4000] + "…" : error.Result;
                throw new CudaException($"the emulated device cannot {what}: {program} exited with {process.ExitCode}:\n{log}");
            }

            return output;
        }
    }

    [GeneratedRegex(@"extern\s+__shared__\s+(\w+)\s+(\w+)\s*\[\s*\]\s*;")]
    private static partial Regex DynamicShared();
}
