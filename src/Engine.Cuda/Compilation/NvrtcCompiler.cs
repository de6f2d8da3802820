using System.Runtime.InteropServices;
using System.Text;
using Engine.Cuda.Interop;

namespace Engine.Cuda.Compilation;

/// <summary>One compiled kernel file: the image for the driver and NVRTC's log.</summary>
/// <param name="FileName">The <c>.cu</c> file compiled.</param>
/// <param name="Target">Architecture and image kind.</param>
/// <param name="Image">CUBIN bytes, or PTX text with its terminating zero (what <c>cuModuleLoadData</c> takes).</param>
/// <param name="Log">NVRTC's log (warnings; empty when clean).</param>
/// <param name="Options">The options NVRTC was given.</param>
public sealed record CompiledKernel(string FileName, KernelTarget Target, byte[] Image, string Log, IReadOnlyList<string> Options);

/// <summary>
/// The runtime compiler: NVRTC turns the embedded CUDA C into CUBIN (or PTX) for the device at hand. It needs no GPU and
/// no toolkit headers, so kernels compile on any machine with <c>libnvrtc</c> (the tests do exactly that).
/// </summary>
public static unsafe class NvrtcCompiler
{
    /// <summary>Stack of the compiler thread: NVRTC needs several MiB for the attention kernels' templates.</summary>
    private const int CompilerStackBytes = 64 * 1024 * 1024;

    /// <summary>Whether an NVRTC library was found.</summary>
    public static bool IsAvailable => NativeLibraries.Probe(NativeLibraries.Nvrtc).IsLoaded;

    /// <summary>"libnvrtc.so.11.2", or "not found (tried …)".</summary>
    public static string LibraryDescription => NativeLibraries.Probe(NativeLibraries.Nvrtc).Describe();

    /// <summary>NVRTC's version (major, minor).</summary>
    public static (int Major, int Minor) Version
    {
        get
        {
            RequireLibrary();
            Nvrtc.Check(Nvrtc.nvrtcVersion(out int major, out int minor), "nvrtcVersion");
            return (major, minor);
        }
    }

    /// <summary>The architectures (80 for sm_80) this NVRTC can compile for; empty when the library is too old to say.</summary>
    public static IReadOnlyList<int> SupportedArchitectures
    {
        get
        {
            RequireLibrary();
            var probe = NativeLibraries.Probe(NativeLibraries.Nvrtc);
            if (!probe.HasExport("nvrtcGetSupportedArchs"))
            {
                return [];
            }

            Nvrtc.Check(Nvrtc.nvrtcGetNumSupportedArchs(out int count), "nvrtcGetNumSupportedArchs");
            var archs = new int[count];
            fixed (int* p = archs)
            {
                Nvrtc.Check(Nvrtc.nvrtcGetSupportedArchs(p), "nvrtcGetSupportedArchs");
            }

            return archs;
        }
    }

    /// <summary>The options Engine compiles with: the architecture, device code by default, C++17, optional line info.</summary>
    public static IReadOnlyList<string> Options(KernelTarget target, bool lineInfo)
    {
        var options = new List<string> { target.ArchitectureOption, "-default-device", "--std=c++17" };
        if (lineInfo)
        {
            options.Add("-lineinfo");
        }

        return options;
    }

    /// <summary>Compiles one embedded kernel file for <paramref name="target"/>.</summary>
    public static CompiledKernel CompileEmbedded(string fileName, KernelTarget target, bool lineInfo = false) =>
        Compile(fileName, KernelSources.Read(fileName), KernelSources.Headers(), Options(target, lineInfo), target);

    /// <summary>
    /// Compiles <paramref name="source"/> with the in-memory <paramref name="headers"/> (include name → text). A compile
    /// error throws <see cref="CudaException"/> whose message carries NVRTC's log.
    /// </summary>
    public static CompiledKernel Compile(
        string fileName, string source, IReadOnlyDictionary<string, string> headers, IReadOnlyList<string> options, KernelTarget target)
    {
        RequireLibrary();

        // NVRTC's front end recurses deeply: on a thread-pool thread's default stack (1.5 MiB on Linux) it overflows the
        // stack and takes the process down, so it always runs on a thread of its own with a large stack.
        CompiledKernel? result = null;
        System.Runtime.ExceptionServices.ExceptionDispatchInfo? failure = null;
        var thread = new Thread(
            () =>
            {
                try
                {
                    result = CompileOnThisThread(fileName, source, headers, options, target);
                }
                catch (Exception e)
                {
                    failure = System.Runtime.ExceptionServices.ExceptionDispatchInfo.Capture(e);
                }
            },
            CompilerStackBytes) { Name = "nvrtc " + fileName, IsBackground = true };
        thread.Start();
        thread.Join();
        failure?.Throw();
        return result!;
    }

    private static CompiledKernel CompileOnThisThread(
        string fileName, string source, IReadOnlyDictionary<string, string> headers, IReadOnlyList<string> options, KernelTarget target)
    {
        if (target.Kind == KernelImageKind.Cubin && !NativeLibraries.Probe(NativeLibraries.Nvrtc).HasExport("nvrtcGetCUBIN"))
        {
            throw new CudaException($"{LibraryDescription} predates nvrtcGetCUBIN (NVRTC 11.1); compile to PTX instead");
        }

        var headerNames = headers.Keys.ToArray();
        using var strings = new Utf8Strings([source, fileName, .. headerNames.Select(n => headers[n]), .. headerNames, .. options]);
        int h = headerNames.Length;
        byte** all = strings.Pointers;
        Nvrtc.Check(Nvrtc.nvrtcCreateProgram(out var program, all[0], all[1], h, all + 2, all + 2 + h), "nvrtcCreateProgram");
        try
        {
            var status = Nvrtc.nvrtcCompileProgram(program, options.Count, all + 2 + (2 * h));
            string log = Log(program);
            if (status != NvrtcResult.Success)
            {
                throw new CudaException(
                    $"nvrtcCompileProgram({fileName}, {string.Join(' ', options)})",
                    (int)status,
                    Nvrtc.NameOf(status),
                    $"{Nvrtc.ErrorText(status)}; log:{Environment.NewLine}{log}");
            }

            byte[] image = target.Kind == KernelImageKind.Cubin ? Cubin(program) : Ptx(program);
            return new CompiledKernel(fileName, target, image, log, options);
        }
        finally
        {
            Nvrtc.Check(Nvrtc.nvrtcDestroyProgram(ref program), "nvrtcDestroyProgram");
        }
    }

    private static void RequireLibrary()
    {
        if (!IsAvailable)
        {
            throw new CudaException($"NVRTC {LibraryDescription}");
        }
    }

    private static string Log(NvrtcProgram program)
    {
        Nvrtc.Check(Nvrtc.nvrtcGetProgramLogSize(program, out nuint size), "nvrtcGetProgramLogSize");
        var bytes = new byte[Math.Max(1, (int)size)];
        fixed (byte* p = bytes)
        {
            Nvrtc.Check(Nvrtc.nvrtcGetProgramLog(program, p), "nvrtcGetProgramLog");
        }

        return Encoding.UTF8.GetString(bytes).TrimEnd('\0').Trim();
    }

    private static byte[] Cubin(NvrtcProgram program)
    {
        Nvrtc.Check(Nvrtc.nvrtcGetCUBINSize(program, out nuint size), "nvrtcGetCUBINSize");
        var bytes = new byte[(int)size];
        fixed (byte* p = bytes)
        {
            Nvrtc.Check(Nvrtc.nvrtcGetCUBIN(program, p), "nvrtcGetCUBIN");
        }

        return bytes;
    }

    private static byte[] Ptx(NvrtcProgram program)
    {
        // The size includes the terminating zero, which cuModuleLoadData needs to find the end of the text.
        Nvrtc.Check(Nvrtc.nvrtcGetPTXSize(program, out nuint size), "nvrtcGetPTXSize");
        var bytes = new byte[(int)size];
        fixed (byte* p = bytes)
        {
            Nvrtc.Check(Nvrtc.nvrtcGetPTX(program, p), "nvrtcGetPTX");
        }

        return bytes;
    }

    /// <summary>Zero-terminated UTF-8 copies of some strings in one native block, with an array of pointers to them.</summary>
    private sealed class Utf8Strings : IDisposable
    {
        private readonly byte* block;

        public Utf8Strings(IReadOnlyList<string> strings)
        {
            var lengths = new int[strings.Count];
            long bytes = (long)strings.Count * sizeof(byte*);
            for (int i = 0; i < strings.Count; i++)
            {
                lengths[i] = Encoding.UTF8.GetByteCount(strings[i]);
                bytes += lengths[i] + 1;
            }

            block = (byte*)NativeMemory.Alloc((nuint)bytes);
            Pointers = (byte**)block;
            byte* next = block + ((long)strings.Count * sizeof(byte*));
            for (int i = 0; i < strings.Count; i++)
            {
                Encoding.UTF8.GetBytes(strings[i], new Span<byte>(next, lengths[i]));
                next[lengths[i]] = 0;
                Pointers[i] = next;
                next += lengths[i] + 1;
            }
        }

        public byte** Pointers { get; }

        public void Dispose() => NativeMemory.Free(block);
    }
}
