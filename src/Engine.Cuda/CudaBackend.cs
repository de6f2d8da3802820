using Engine.Core.Backends;
using Engine.Core.Tensors;
using Engine.Cuda.Compilation;
using Engine.Cuda.Interop;
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
    private readonly CuDevice device;
    private readonly CuContext context;
    private readonly CudaDeviceInfo info;
    private readonly KernelTarget target;
    private readonly string nvrtcVersion;
    private readonly KernelCache? cache;
    private readonly Lock gate = new();
    private readonly Dictionary<string, CuModule> modules = new(StringComparer.Ordinal);
    private readonly Dictionary<string, CuFunction> functions = new(StringComparer.Ordinal);
    private readonly Dictionary<string, int> dynamicSharedSet = new(StringComparer.Ordinal);
    private readonly CudaBuffer errorWord;
    private CuStream stream;
    private CublasHandle blas;
    private CudaBuffer? scratch;
    private bool errorCheckPending;
    private int disposed;

    // The backend whose context was last made current on this thread. Tracking the backend, not the context handle,
    // keeps a new backend from trusting a binding left by a disposed one that happened to get the same handle.
    [ThreadStatic]
    private static CudaBackend? currentOwner;

    private CudaBackend(CudaBackendOptions options)
    {
        if (options.LogProbWorkspaceBytes <= 0 || options.LogProbRowChunk < 0 || options.LogProbVocabChunk < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(options), $"the log-prob workspace and chunk sizes must be positive, got {options}");
        }

        this.options = options;
        var report = CudaAvailability.Probe();
        if (!report.IsAvailable)
        {
            throw new CudaException($"CUDA is not available: {report.Reason}");
        }

        if (options.DeviceOrdinal < 0 || options.DeviceOrdinal >= report.Devices.Count)
        {
            throw new CudaException($"no CUDA device {options.DeviceOrdinal}: found {report.Devices.Count}");
        }

        info = report.Devices[options.DeviceOrdinal];
        Device = new Device(DeviceKind.Cuda, options.DeviceOrdinal);
        Driver.Check(Driver.cuDeviceGet(out device, options.DeviceOrdinal), "cuDeviceGet");
        Driver.Check(Driver.cuDevicePrimaryCtxRetain(out context, device), "cuDevicePrimaryCtxRetain");
        try
        {
            MakeCurrent();
            Driver.Check(Driver.cuStreamCreate(out stream, Driver.StreamNonBlocking), "cuStreamCreate");
            Cublas.Check(Cublas.cublasCreate(out blas), "cublasCreate_v2");
            Cublas.Check(Cublas.cublasSetStream(blas, stream), "cublasSetStream_v2");
            Cublas.Check(Cublas.cublasSetMathMode(blas, options.AllowTf32 ? CublasMath.Tf32TensorOp : CublasMath.Default), "cublasSetMathMode");
            Cublas.Check(Cublas.cublasGetVersion(blas, out int blasVersion), "cublasGetVersion_v2");
            var (major, minor) = NvrtcCompiler.Version;
            nvrtcVersion = $"{major}.{minor}";
            target = KernelTarget.For(info.ComputeMajor, info.ComputeMinor, NvrtcCompiler.SupportedArchitectures);
            cache = options.UseDiskCache ? new KernelCache(options.CacheDirectory ?? KernelCache.DefaultDirectory) : null;
            errorWord = new CudaBuffer(this, 16);
            Description = $"{Device} ({info.Name}, sm_{info.ComputeMajor}{info.ComputeMinor}, {info.Multiprocessors} SMs, " +
                          $"{info.TotalMemoryBytes / (1024.0 * 1024 * 1024):F0} GiB; kernels {target}, NVRTC {nvrtcVersion}, " +
                          $"cuBLAS {blasVersion}{(options.AllowTf32 ? ", TF32" : string.Empty)})";
        }
        catch
        {
            ReleaseNative();
            throw;
        }
    }

    /// <inheritdoc/>
    public override Device Device { get; }

    /// <inheritdoc/>
    public override string Description { get; }

    /// <summary>The GPU this backend runs on.</summary>
    public CudaDeviceInfo DeviceInfo => info;

    /// <summary>The architecture and image kind the kernels are compiled for.</summary>
    public KernelTarget KernelTarget => target;

    /// <summary>Whether <see cref="Backend.Dispose()"/> has run.</summary>
    public bool IsDisposed => Volatile.Read(ref disposed) != 0;

    internal CuStream Stream => stream;

    /// <summary>Creates the backend for <paramref name="options"/> (default: device 0); throws <see cref="CudaException"/> with the reason when CUDA is unavailable.</summary>
    public static CudaBackend Create(CudaBackendOptions? options = null) => new(options ?? new CudaBackendOptions());

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
        Driver.Check(Driver.cuStreamSynchronize(stream), "cuStreamSynchronize");
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
        Driver.Check(Driver.cuMemGetInfo(out nuint free, out nuint total), "cuMemGetInfo_v2");
        return ((long)free, (long)total);
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
        if (!ReferenceEquals(currentOwner, this))
        {
            Driver.Check(Driver.cuCtxSetCurrent(context), "cuCtxSetCurrent");
            currentOwner = this;
        }
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
        ReleaseNative();
        base.Dispose(disposing);
    }

    private void ReleaseNative()
    {
        Driver.cuCtxSetCurrent(context);
        currentOwner = null;
        lock (gate)
        {
            foreach (var module in modules.Values)
            {
                Driver.cuModuleUnload(module);
            }

            modules.Clear();
            functions.Clear();
        }

        if (blas.Value != 0)
        {
            Cublas.cublasDestroy(blas);
            blas = default;
        }

        if (stream.Value != 0)
        {
            Driver.cuStreamSynchronize(stream);
            Driver.cuStreamDestroy(stream);
            stream = default;
        }

        // Statuses are not checked here on purpose: teardown must release everything it can even after a failed launch
        // left the context in an error state.
        Driver.cuDevicePrimaryCtxRelease(device);
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

            Driver.Check(
                Driver.cuLaunchKernel(function, grid.X, grid.Y, grid.Z, block.X, block.Y, block.Z, (uint)sharedBytes, stream, pointers, null),
                $"cuLaunchKernel({kernel.Name})");
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
                Driver.Check(Driver.cuStreamSynchronize(stream), "cuStreamSynchronize");
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
        var address = CuDevicePtr.From(errorWord.Address);
        Driver.Check(Driver.cuMemcpyDtoHAsync(word, address, 16, stream), "cuMemcpyDtoHAsync_v2");
        Driver.Check(Driver.cuStreamSynchronize(stream), "cuStreamSynchronize");
        if (word[0] == 0)
        {
            return;
        }

        Driver.Check(Driver.cuMemsetD8Async(address, 0, 16, stream), "cuMemsetD8Async");
        throw word[0] switch
        {
            1 => new ArgumentOutOfRangeException("tokens", word[2], $"EmbeddingForward: token id {word[2]} at position {word[1]} is outside the vocabulary (its row was written as zeros)"),
            2 => new ArgumentOutOfRangeException("targets", word[2], $"CrossEntropy: target {word[2]} of row {word[1]} is outside the vocabulary (the row was left untouched)"),
            3 => new ArgumentOutOfRangeException("targets", word[2], $"TokenLogProbs: target {word[2]} of row {word[1]} is outside the vocabulary (the row was treated as masked out)"),
            4 => new ArgumentOutOfRangeException("chosen", word[2], $"PairwiseLoss: pair {word[1]} indexes response {word[2]}, outside the scores (no gradient was added)"),
            _ => new CudaException($"a kernel reported input error {word[0]} at {word[1]} (value {word[2]})"),
        };
    }

    private CuFunction Function(KernelSignature kernel, int sharedBytes)
    {
        lock (gate)
        {
            if (!functions.TryGetValue(kernel.Name, out var function))
            {
                if (!modules.TryGetValue(kernel.Module, out var module))
                {
                    module = LoadModule(kernel.Module);
                    modules[kernel.Module] = module;
                }

                Driver.Check(Driver.cuModuleGetFunction(out function, module, kernel.Name), $"cuModuleGetFunction({kernel.Name})");
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

                Driver.Check(
                    Driver.cuFuncSetAttribute(function, CuFunctionAttribute.MaxDynamicSharedSizeBytes, sharedBytes),
                    $"cuFuncSetAttribute({kernel.Name}, max dynamic shared memory {sharedBytes})");
                dynamicSharedSet[kernel.Name] = sharedBytes;
            }

            return function;
        }
    }

    private CuModule LoadModule(string file)
    {
        string source = KernelSources.Read(file);
        var headers = KernelSources.Headers();
        var compileOptions = NvrtcCompiler.Options(target, options.LineInfo);
        string key = KernelCache.Key(source, headers, compileOptions, $"{info.Name} sm_{info.ComputeMajor}{info.ComputeMinor}", nvrtcVersion);
        byte[]? cached = cache?.TryRead(key, target.Kind);
        if (cached is not null && TryLoadImage(cached, out var fromCache))
        {
            return fromCache;
        }

        // Not cached, or the cached file is not loadable (written by a damaged disk or another driver): compile afresh.
        byte[] image = NvrtcCompiler.Compile(file, source, headers, compileOptions, target).Image;
        cache?.Write(key, target.Kind, image);
        fixed (byte* p = image)
        {
            Driver.Check(Driver.cuModuleLoadData(out var module, p), $"cuModuleLoadData({file}, {target})");
            return module;
        }
    }

    private static bool TryLoadImage(byte[] image, out CuModule module)
    {
        fixed (byte* p = image)
        {
            return Driver.cuModuleLoadData(out module, p) == CuResult.Success;
        }
    }
}
