using Engine.Core.Backends;
using Engine.Core.Tensors;
using Engine.Cuda.Runtime;

namespace Engine.Cuda;

/// <summary>
/// The CUDA implementation of the kernel contract. GEMMs go through cuBLAS; everything else is a kernel of
/// <c>kernels/</c>, compiled by NVRTC for this device on first use and cached on disk. All work is queued on one stream
/// and nothing waits for the GPU except the calls that hand a result to the host (<see cref="Backend.CopyToHost{T}"/>,
/// <see cref="Backend.SquaredNorm"/>, <see cref="Synchronize"/>).
/// <para>Inputs the CPU backend checks on the host before it starts (token ids, targets) live in device memory here, so
/// the kernels check them, skip the bad rows and record the first error in a device word; the next synchronisation
/// throws <see cref="ArgumentOutOfRangeException"/> naming the op, the position and the value.</para>
/// The op families live in the partial files beside this one, like the CPU backend's.
/// </summary>
public sealed unsafe partial class CudaBackend : Backend
{
    private const int ElementThreads = 256;

    private readonly CudaBackendOptions options;
    private readonly IDeviceApi api;
    private readonly CudaDeviceInfo info;
    private readonly Lock gate = new();
    private readonly Dictionary<string, nint> functions = new(StringComparer.Ordinal);
    private readonly Dictionary<string, int> dynamicSharedSet = new(StringComparer.Ordinal);
    private readonly CudaBuffer errorWord;
    private CudaBuffer? scratch;
    private bool errorCheckPending;
    private int disposed;

    private CudaBackend(CudaBackendOptions options, Func<CudaBackendOptions, IDeviceApi> open)
    {
        if (options.LogProbWorkspaceBytes <= 0 || options.LogProbRowChunk < 0 || options.LogProbVocabChunk < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(options), $"the log-prob workspace and chunk sizes must be positive, got {options}");
        }

        this.options = options;
        api = open(options);
        info = api.Info;
        Device = new Device(DeviceKind.Cuda, options.DeviceOrdinal);
        try
        {
            api.MakeCurrent();
            errorWord = new CudaBuffer(this, 16);
            Description = $"{Device} ({info.Name}, sm_{info.ComputeMajor}{info.ComputeMinor}, {info.Multiprocessors} SMs, " +
                          $"{info.TotalMemoryBytes / (1024.0 * 1024 * 1024):F0} GiB; {api.Toolchain}{(options.AllowTf32 ? ", TF32" : string.Empty)})";
        }
        catch
        {
            api.Dispose();
            throw;
        }
    }

    /// <inheritdoc/>
    public override Device Device { get; }

    /// <inheritdoc/>
    public override string Description { get; }

    /// <summary>The GPU this backend runs on.</summary>
    public CudaDeviceInfo DeviceInfo => info;

    /// <summary>Whether <see cref="Backend.Dispose()"/> has run.</summary>
    public bool IsDisposed => Volatile.Read(ref disposed) != 0;

    /// <summary>The driver, or the emulator, underneath.</summary>
    internal IDeviceApi Api => api;

    /// <summary>Creates the backend for <paramref name="options"/> (default: device 0); throws <see cref="CudaException"/> with the reason when CUDA is unavailable.</summary>
    public static CudaBackend Create(CudaBackendOptions? options = null) => new(options ?? new CudaBackendOptions(), o => new DriverDeviceApi(o));


    /// <summary>
    /// Creates the backend on the emulated device: the same host code, the kernels of <c>kernels/</c> compiled for the CPU
    /// by g++ (<see cref="Emulation.EmulatorLibrary"/>), cuBLAS served by the CPU GEMM. For tests; throws
    /// <see cref="CudaException"/> with the reason when the emulator cannot be built here.
    /// </summary>
    internal static CudaBackend CreateEmulated(CudaBackendOptions? options = null) =>
        new(options ?? new CudaBackendOptions(), o => new Emulation.EmulatedDeviceApi(o));

    /// <summary>Creates the backend, or returns false with the one-line reason CUDA cannot be used here. Never throws.</summary>
    public static bool TryCreate(out CudaBackend? backend, out string reason, CudaBackendOptions? options = null)
    {
        try
        {
            backend = Create(options);
            reason = string.Empty;
            return true;
        }
        catch (Exception e) when (e is CudaException or DllNotFoundException or EntryPointNotFoundException)
        {
            backend = null;
            reason = e.Message;
            return false;
        }
    }

    /// <inheritdoc/>
    public override DeviceBuffer Allocate(long byteLength) => new CudaBuffer(this, byteLength);

    /// <inheritdoc/>
    public override void Synchronize()
    {
        MakeCurrent();
        api.Synchronize();
        ThrowRecordedInputError();
    }

    /// <inheritdoc/>
    public override DeviceMemoryInfo QueryMemory()
    {
        var (free, total) = DeviceMemory();
        return new DeviceMemoryInfo(free, total, CudaBuffer.LiveBytes, "cuMemGetInfo (free device memory)");
    }

    /// <summary>Free and total device memory in bytes, as the driver reports them.</summary>
    public (long Free, long Total) DeviceMemory()
    {
        MakeCurrent();
        return api.MemoryInfo();
    }

    /// <summary>A pair of events on this backend's stream for timing queued work without synchronising per launch.</summary>
    public CudaStopwatch CreateStopwatch()
    {
        MakeCurrent();
        return new CudaStopwatch(this);
    }

    /// <summary>Makes this backend's context current on the calling thread (a no-op when it already is).</summary>
    internal void MakeCurrent()
    {
        ObjectDisposedException.ThrowIf(IsDisposed, this);
        api.MakeCurrent();
    }

    /// <inheritdoc/>
    protected override void Dispose(bool disposing)
    {
        if (IsDisposed)
        {
            return;
        }

        if (disposing)
        {
            // Freed while the backend is still live, so the memory goes back to a primary context other backends may share.
            scratch?.Dispose();
            errorWord?.Dispose();
        }

        Volatile.Write(ref disposed, 1);
        lock (gate)
        {
            functions.Clear();
        }

        api.Dispose();
        base.Dispose(disposing);
    }

    // ------------------------------------------------------------------ launching

    /// <summary>
    /// Queues <paramref name="kernel"/> on the stream after checking the arguments against its signature.
    /// </summary>
    internal void Launch(KernelSignature kernel, Dim3 grid, Dim3 block, int sharedBytes, params ReadOnlySpan<KernelArg> args)
    {
        if (args.Length != kernel.Parameters.Length)
        {
            throw new InvalidOperationException($"{kernel.Name} takes {kernel.Parameters.Length} arguments ({kernel.Parameters}), got {args.Length}");
        }

        for (int i = 0; i < args.Length; i++)
        {
            if (args[i].Kind != kernel.Parameters[i])
            {
                throw new InvalidOperationException($"{kernel.Name} argument {i} must be of kind '{kernel.Parameters[i]}', got '{args[i].Kind}'");
            }
        }

        MakeCurrent();
        var function = Function(kernel, sharedBytes);
        fixed (KernelArg* values = args)
        {
            void** pointers = stackalloc void*[args.Length];
            for (int i = 0; i < args.Length; i++)
            {
                pointers[i] = values + i;
            }

            api.Launch(function, kernel.Name, grid, block, sharedBytes, pointers);
        }
    }

    /// <summary>A grid for a grid-stride loop over <paramref name="n"/> elements: enough blocks to fill the GPU, no more.</summary>
    internal Dim3 ElementGrid(long n) => new((uint)Math.Min((n + ElementThreads - 1) / ElementThreads, (long)info.Multiprocessors * 32));

    /// <summary>Device scratch of at least <paramref name="bytes"/> bytes, valid until the next call (the stream orders the uses).</summary>
    internal nint Scratch(long bytes)
    {
        if (scratch is null || scratch.ByteLength < bytes)
        {
            if (scratch is not null)
            {
                // The old scratch may still be read by queued kernels.
                api.Synchronize();
                scratch.Dispose();
            }

            long size = Math.Max(bytes, Math.Max(1 << 20, (scratch?.ByteLength ?? 0) * 2));
            scratch = new CudaBuffer(this, size);
        }

        return scratch.Address;
    }

    /// <summary>The device word the input-checking kernels report into; marks that a check is due at the next sync.</summary>
    internal KernelArg ErrorWord()
    {
        errorCheckPending = true;
        return KernelArg.Pointer(errorWord.Address);
    }

    private void ThrowRecordedInputError()
    {
        if (!errorCheckPending)
        {
            return;
        }

        errorCheckPending = false;
        int* word = stackalloc int[4];
        api.CopyToHost(word, errorWord.Address, 16);
        api.Synchronize();
        if (word[0] == 0)
        {
            return;
        }

        api.Memset(errorWord.Address, 0, 16);
        throw word[0] switch
        {
            1 => new ArgumentOutOfRangeException("tokens", word[2], $"EmbeddingForward: token id {word[2]} at position {word[1]} is outside the vocabulary (its row was written as zeros)"),
            2 => new ArgumentOutOfRangeException("targets", word[2], $"CrossEntropy: target {word[2]} of row {word[1]} is outside the vocabulary (the row was left untouched)"),
            3 => new ArgumentOutOfRangeException("targets", word[2], $"TokenLogProbs: target {word[2]} of row {word[1]} is outside the vocabulary (the row was treated as masked out)"),
            4 => new ArgumentOutOfRangeException("chosen", word[2], $"PairwiseLoss: pair {word[1]} indexes response {word[2]}, outside the scores (no gradient was added)"),
            5 => new ArgumentOutOfRangeException("chosen", word[2], $"PreferenceLoss: pair {word[1]} indexes response {word[2]}, outside the responses (no gradient was added)"),
            _ => new CudaException($"a kernel reported input error {word[0]} at {word[1]} (value {word[2]})"),
        };
    }

    private nint Function(KernelSignature kernel, int sharedBytes)
    {
        lock (gate)
        {
            if (!functions.TryGetValue(kernel.Name, out var function))
            {
                function = api.Function(kernel);
                functions[kernel.Name] = function;
            }

            // Beyond 48 KiB a kernel must opt in to its dynamic shared memory.
            if (sharedBytes > 48 * 1024 && dynamicSharedSet.GetValueOrDefault(kernel.Name) < sharedBytes)
            {
                if (sharedBytes > info.MaxSharedMemoryPerBlock)
                {
                    throw new NotSupportedException(
                        $"{kernel.Name} needs {sharedBytes} bytes of shared memory; {info.Name} allows {info.MaxSharedMemoryPerBlock} per block");
                }

                api.AllowDynamicShared(function, kernel.Name, sharedBytes);
                dynamicSharedSet[kernel.Name] = sharedBytes;
            }

            return function;
        }
    }
}
