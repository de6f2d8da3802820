namespace Engine.Cuda.Interop;

// Typed handles: each wraps the raw value the C API traffics in, so a stream cannot be passed where an event is wanted.
// They own nothing; the classes of the public API (CudaBackend, CudaBuffer, …) decide lifetimes and free explicitly.

/// <summary>A device ordinal as the driver API sees it (<c>CUdevice</c>).</summary>
internal readonly record struct CuDevice(int Value);

/// <summary>A context (<c>CUcontext</c>).</summary>
internal readonly record struct CuContext(nint Value)
{
    public bool IsNull => Value == 0;
}

/// <summary>A stream (<c>CUstream</c>); the null value is the legacy default stream.</summary>
internal readonly record struct CuStream(nint Value);

/// <summary>An event (<c>CUevent</c>).</summary>
internal readonly record struct CuEvent(nint Value);

/// <summary>A loaded module (<c>CUmodule</c>).</summary>
internal readonly record struct CuModule(nint Value);

/// <summary>A kernel of a loaded module (<c>CUfunction</c>).</summary>
internal readonly record struct CuFunction(nint Value);

/// <summary>A device address (<c>CUdeviceptr</c>, 64 bits on every supported platform).</summary>
internal readonly record struct CuDevicePtr(ulong Value)
{
    public static CuDevicePtr From(nint address) => new((ulong)address);

    public CuDevicePtr Offset(long bytes) => new(Value + (ulong)bytes);
}

/// <summary>An NVRTC program (<c>nvrtcProgram</c>).</summary>
internal readonly record struct NvrtcProgram(nint Value);

/// <summary>A cuBLAS context (<c>cublasHandle_t</c>).</summary>
internal readonly record struct CublasHandle(nint Value);
