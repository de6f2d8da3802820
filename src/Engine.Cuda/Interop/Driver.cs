using System.Runtime.InteropServices;

namespace Engine.Cuda.Interop;

/// <summary>Status codes of the driver API (<c>CUresult</c>); names and texts come from the driver itself.</summary>
internal enum CuResult
{
    Success = 0,
    ErrorInvalidValue = 1,
    ErrorOutOfMemory = 2,
    ErrorNotInitialized = 3,
    ErrorNoDevice = 100,
    ErrorInvalidDevice = 101,
    ErrorNotReady = 600,
}

/// <summary>The device attributes Engine reads (<c>CUdevice_attribute</c>).</summary>
internal enum CuDeviceAttribute
{
    MaxThreadsPerBlock = 1,
    MaxSharedMemoryPerBlock = 8,
    WarpSize = 10,
    MultiprocessorCount = 16,
    ComputeCapabilityMajor = 75,
    ComputeCapabilityMinor = 76,
    MaxSharedMemoryPerBlockOptin = 97,
}

/// <summary>Kernel attributes that can be set (<c>CUfunction_attribute</c>).</summary>
internal enum CuFunctionAttribute
{
    MaxDynamicSharedSizeBytes = 8,
}

/// <summary>
/// The slice of the CUDA driver API (<c>libcuda.so.1</c>, <c>nvcuda.dll</c>) Engine uses. Raw declarations only; every call
/// goes through <see cref="Check"/>, which turns a failing status into a <see cref="CudaException"/> naming the call.
/// </summary>
internal static unsafe partial class Driver
{
    public const uint StreamNonBlocking = 1;
    public const uint EventDefault = 0;

    static Driver() => NativeLibraries.Register();

    /// <summary>Throws <see cref="CudaException"/> for anything but success, with the driver's name and text of the status.</summary>
    public static void Check(CuResult result, string call)
    {
        if (result != CuResult.Success)
        {
            throw new CudaException(call, (int)result, ErrorName(result), ErrorText(result));
        }
    }

    /// <summary>The driver's name of a status (<c>CUDA_ERROR_NO_DEVICE</c>), or the number when the driver does not know it.</summary>
    public static string ErrorName(CuResult result) =>
        cuGetErrorName(result, out nint text) == CuResult.Success && text != 0
            ? Marshal.PtrToStringUTF8(text) ?? $"CUresult {(int)result}"
            : $"CUresult {(int)result}";

    /// <summary>The driver's description of a status.</summary>
    public static string ErrorText(CuResult result) =>
        cuGetErrorString(result, out nint text) == CuResult.Success && text != 0
            ? Marshal.PtrToStringUTF8(text) ?? "unknown error"
            : "unknown error";

    [LibraryImport(NativeLibraries.Driver)]
    public static partial CuResult cuInit(uint flags);

    [LibraryImport(NativeLibraries.Driver)]
    public static partial CuResult cuDriverGetVersion(out int version);

    [LibraryImport(NativeLibraries.Driver)]
    public static partial CuResult cuGetErrorName(CuResult error, out nint text);

    [LibraryImport(NativeLibraries.Driver)]
    public static partial CuResult cuGetErrorString(CuResult error, out nint text);

    [LibraryImport(NativeLibraries.Driver)]
    public static partial CuResult cuDeviceGetCount(out int count);

    [LibraryImport(NativeLibraries.Driver)]
    public static partial CuResult cuDeviceGet(out CuDevice device, int ordinal);

    [LibraryImport(NativeLibraries.Driver)]
    public static partial CuResult cuDeviceGetAttribute(out int value, CuDeviceAttribute attribute, CuDevice device);

    [LibraryImport(NativeLibraries.Driver)]
    public static partial CuResult cuDeviceGetName(byte* name, int length, CuDevice device);

    [LibraryImport(NativeLibraries.Driver, EntryPoint = "cuDeviceTotalMem_v2")]
    public static partial CuResult cuDeviceTotalMem(out nuint bytes, CuDevice device);

    [LibraryImport(NativeLibraries.Driver)]
    public static partial CuResult cuDevicePrimaryCtxRetain(out CuContext context, CuDevice device);

    [LibraryImport(NativeLibraries.Driver, EntryPoint = "cuDevicePrimaryCtxRelease_v2")]
    public static partial CuResult cuDevicePrimaryCtxRelease(CuDevice device);

    [LibraryImport(NativeLibraries.Driver)]
    public static partial CuResult cuCtxSetCurrent(CuContext context);

    [LibraryImport(NativeLibraries.Driver, EntryPoint = "cuMemAlloc_v2")]
    public static partial CuResult cuMemAlloc(out CuDevicePtr pointer, nuint bytes);

    [LibraryImport(NativeLibraries.Driver, EntryPoint = "cuMemFree_v2")]
    public static partial CuResult cuMemFree(CuDevicePtr pointer);

    [LibraryImport(NativeLibraries.Driver, EntryPoint = "cuMemGetInfo_v2")]
    public static partial CuResult cuMemGetInfo(out nuint free, out nuint total);

    [LibraryImport(NativeLibraries.Driver)]
    public static partial CuResult cuMemsetD8Async(CuDevicePtr destination, byte value, nuint count, CuStream stream);

    [LibraryImport(NativeLibraries.Driver, EntryPoint = "cuMemcpyHtoDAsync_v2")]
    public static partial CuResult cuMemcpyHtoDAsync(CuDevicePtr destination, void* source, nuint bytes, CuStream stream);

    [LibraryImport(NativeLibraries.Driver, EntryPoint = "cuMemcpyDtoHAsync_v2")]
    public static partial CuResult cuMemcpyDtoHAsync(void* destination, CuDevicePtr source, nuint bytes, CuStream stream);

    [LibraryImport(NativeLibraries.Driver, EntryPoint = "cuMemcpyDtoDAsync_v2")]
    public static partial CuResult cuMemcpyDtoDAsync(CuDevicePtr destination, CuDevicePtr source, nuint bytes, CuStream stream);

    [LibraryImport(NativeLibraries.Driver)]
    public static partial CuResult cuStreamCreate(out CuStream stream, uint flags);

    [LibraryImport(NativeLibraries.Driver, EntryPoint = "cuStreamDestroy_v2")]
    public static partial CuResult cuStreamDestroy(CuStream stream);

    [LibraryImport(NativeLibraries.Driver)]
    public static partial CuResult cuStreamSynchronize(CuStream stream);

    [LibraryImport(NativeLibraries.Driver)]
    public static partial CuResult cuEventCreate(out CuEvent evt, uint flags);

    [LibraryImport(NativeLibraries.Driver, EntryPoint = "cuEventDestroy_v2")]
    public static partial CuResult cuEventDestroy(CuEvent evt);

    [LibraryImport(NativeLibraries.Driver)]
    public static partial CuResult cuEventRecord(CuEvent evt, CuStream stream);

    [LibraryImport(NativeLibraries.Driver)]
    public static partial CuResult cuEventSynchronize(CuEvent evt);

    [LibraryImport(NativeLibraries.Driver)]
    public static partial CuResult cuEventElapsedTime(out float milliseconds, CuEvent start, CuEvent end);

    [LibraryImport(NativeLibraries.Driver)]
    public static partial CuResult cuModuleLoadData(out CuModule module, void* image);

    [LibraryImport(NativeLibraries.Driver)]
    public static partial CuResult cuModuleUnload(CuModule module);

    [LibraryImport(NativeLibraries.Driver, StringMarshalling = StringMarshalling.Utf8)]
    public static partial CuResult cuModuleGetFunction(out CuFunction function, CuModule module, string name);

    [LibraryImport(NativeLibraries.Driver)]
    public static partial CuResult cuFuncSetAttribute(CuFunction function, CuFunctionAttribute attribute, int value);

    [LibraryImport(NativeLibraries.Driver)]
    public static partial CuResult cuLaunchKernel(
        CuFunction function,
        uint gridX,
        uint gridY,
        uint gridZ,
        uint blockX,
        uint blockY,
        uint blockZ,
        uint sharedMemoryBytes,
        CuStream stream,
        void** kernelParams,
        void** extra);
}
