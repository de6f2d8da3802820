using Engine.Cuda.Compilation;
using Engine.Cuda.Interop;

namespace Engine.Cuda.Runtime;

/// <summary>
/// The real side of <see cref="IDeviceApi"/>: the CUDA driver (primary context, one non-blocking stream), kernels of
/// <c>kernels/</c> compiled by NVRTC for this device and cached on disk by source hash, and cuBLAS on the same stream.
/// </summary>
internal sealed unsafe class DriverDeviceApi : IDeviceApi
{
    // The API whose context was last made current on this thread. Tracking the object, not the context handle, keeps a
    // new backend from trusting a binding left by a disposed one that happened to get the same handle.
    [ThreadStatic]
    private static DriverDeviceApi? currentOwner;

    private readonly CuDevice device;
    private readonly CuContext context;
    private readonly KernelTarget target;
    private readonly string nvrtcVersion;
    private readonly KernelCache? cache;
    private readonly bool lineInfo;
    private readonly Lock gate = new();
    private readonly Dictionary<string, CuModule> modules = new(StringComparer.Ordinal);
    private CuStream stream;
    private CublasHandle blas;

    public DriverDeviceApi(CudaBackendOptions options)
    {
        var report = CudaAvailability.Probe();
        if (!report.IsAvailable)
        {
            throw new CudaException($"CUDA is not available: {report.Reason}");
        }

        if (options.DeviceOrdinal < 0 || options.DeviceOrdinal >= report.Devices.Count)
        {
            throw new CudaException($"no CUDA device {options.DeviceOrdinal}: found {report.Devices.Count}");
        }

        Info = report.Devices[options.DeviceOrdinal];
        lineInfo = options.LineInfo;
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
            target = KernelTarget.For(Info.ComputeMajor, Info.ComputeMinor, NvrtcCompiler.SupportedArchitectures);
            cache = options.UseDiskCache ? new KernelCache(options.CacheDirectory ?? KernelCache.DefaultDirectory) : null;
            Toolchain = $"kernels {target}, NVRTC {nvrtcVersion}, cuBLAS {blasVersion}";
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    public CudaDeviceInfo Info { get; }

    public string Toolchain { get; } = string.Empty;

    public void MakeCurrent()
    {
        if (!ReferenceEquals(currentOwner, this))
        {
            Driver.Check(Driver.cuCtxSetCurrent(context), "cuCtxSetCurrent");
            currentOwner = this;
        }
    }

    public nint Allocate(long bytes)
    {
        Driver.Check(Driver.cuMemAlloc(out var pointer, (nuint)bytes), $"cuMemAlloc_v2({bytes} bytes)");
        Driver.Check(Driver.cuMemsetD8Async(pointer, 0, (nuint)bytes, stream), "cuMemsetD8Async");
        return (nint)pointer.Value;
    }

    public void Free(nint address) => Driver.Check(Driver.cuMemFree(CuDevicePtr.From(address)), "cuMemFree_v2");

    public void Memset(nint address, byte value, long bytes) =>
        Driver.Check(Driver.cuMemsetD8Async(CuDevicePtr.From(address), value, (nuint)bytes, stream), "cuMemsetD8Async");

    public void CopyToDevice(nint destination, void* source, long bytes) =>
        Driver.Check(Driver.cuMemcpyHtoDAsync(CuDevicePtr.From(destination), source, (nuint)bytes, stream), "cuMemcpyHtoDAsync_v2");

    public void CopyToHost(void* destination, nint source, long bytes) =>
        Driver.Check(Driver.cuMemcpyDtoHAsync(destination, CuDevicePtr.From(source), (nuint)bytes, stream), "cuMemcpyDtoHAsync_v2");

    public void CopyOnDevice(nint destination, nint source, long bytes) =>
        Driver.Check(Driver.cuMemcpyDtoDAsync(CuDevicePtr.From(destination), CuDevicePtr.From(source), (nuint)bytes, stream), "cuMemcpyDtoDAsync_v2");

    public void Synchronize() => Driver.Check(Driver.cuStreamSynchronize(stream), "cuStreamSynchronize");

    public (long Free, long Total) MemoryInfo()
    {
        Driver.Check(Driver.cuMemGetInfo(out nuint free, out nuint total), "cuMemGetInfo_v2");
        return ((long)free, (long)total);
    }

    public nint Function(KernelSignature kernel)
    {
        lock (gate)
        {
            if (!modules.TryGetValue(kernel.Module, out var module))
            {
                module = LoadModule(kernel.Module);
                modules[kernel.Module] = module;
            }

            Driver.Check(Driver.cuModuleGetFunction(out var function, module, kernel.Name), $"cuModuleGetFunction({kernel.Name})");
            return function.Value;
        }
    }

    public void AllowDynamicShared(nint function, string name, int bytes) =>
        Driver.Check(
            Driver.cuFuncSetAttribute(new CuFunction(function), CuFunctionAttribute.MaxDynamicSharedSizeBytes, bytes),
            $"cuFuncSetAttribute({name}, max dynamic shared memory {bytes})");

    public void Launch(nint function, string name, Dim3 grid, Dim3 block, int sharedBytes, void** arguments) =>
        Driver.Check(
            Driver.cuLaunchKernel(new CuFunction(function), grid.X, grid.Y, grid.Z, block.X, block.Y, block.Z, (uint)sharedBytes, stream, arguments, null),
            $"cuLaunchKernel({name})");

    public nint CreateEvent()
    {
        Driver.Check(Driver.cuEventCreate(out var handle, Driver.EventDefault), "cuEventCreate");
        return handle.Value;
    }

    public void RecordEvent(nint handle) => Driver.Check(Driver.cuEventRecord(new CuEvent(handle), stream), "cuEventRecord");

    public float ElapsedMilliseconds(nint start, nint stop)
    {
        Driver.Check(Driver.cuEventSynchronize(new CuEvent(stop)), "cuEventSynchronize");
        Driver.Check(Driver.cuEventElapsedTime(out float ms, new CuEvent(start), new CuEvent(stop)), "cuEventElapsedTime");
        return ms;
    }

    public void DestroyEvent(nint handle) => Driver.Check(Driver.cuEventDestroy(new CuEvent(handle)), "cuEventDestroy_v2");

    public void Gemm(in BlasGemm g)
    {
        float alpha = g.Alpha, beta = g.Beta;
        var compute = g.AllowTf32 ? CublasComputeType.Compute32FFastTf32 : CublasComputeType.Compute32F;
        var opA = g.TransposeA ? CublasOperation.Transpose : CublasOperation.None;
        var opB = g.TransposeB ? CublasOperation.Transpose : CublasOperation.None;
        var status = g.Strided
            ? Cublas.cublasGemmStridedBatchedEx(
                blas, opA, opB, g.M, g.N, g.K, &alpha, CuDevicePtr.From(g.A), CudaDataType.R32F, g.Lda, g.StrideA,
                CuDevicePtr.From(g.B), CudaDataType.R32F, g.Ldb, g.StrideB, &beta, CuDevicePtr.From(g.C), CudaDataType.R32F, g.Ldc, g.StrideC,
                g.Batch, compute, Cublas.GemmDefault)
            : Cublas.cublasGemmEx(
                blas, opA, opB, g.M, g.N, g.K, &alpha, CuDevicePtr.From(g.A), CudaDataType.R32F, g.Lda,
                CuDevicePtr.From(g.B), CudaDataType.R32F, g.Ldb, &beta, CuDevicePtr.From(g.C), CudaDataType.R32F, g.Ldc, compute, Cublas.GemmDefault);
        Cublas.Check(status, g.Describe());
    }

    public void Dispose()
    {
        // Statuses are not checked here on purpose: teardown must release everything it can even after a failed launch
        // left the context in an error state.
        Driver.cuCtxSetCurrent(context);
        currentOwner = null;
        lock (gate)
        {
            foreach (var module in modules.Values)
            {
                Driver.cuModuleUnload(module);
            }

            modules.Clear();
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

        Driver.cuDevicePrimaryCtxRelease(device);
    }

    private CuModule LoadModule(string file)
    {
        string source = KernelSources.Read(file);
        var headers = KernelSources.Headers();
        var compileOptions = NvrtcCompiler.Options(target, lineInfo);
        string key = KernelCache.Key(source, headers, compileOptions, $"{Info.Name} sm_{Info.ComputeMajor}{Info.ComputeMinor}", nvrtcVersion);
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
