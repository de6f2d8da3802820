namespace Engine.Cuda;

/// <summary>
/// A call into the CUDA driver, NVRTC or cuBLAS returned an error. The message names the call, the library's name for
/// the status (<c>CUDA_ERROR_OUT_OF_MEMORY</c>, <c>NVRTC_ERROR_COMPILATION</c>, <c>CUBLAS_STATUS_INVALID_VALUE</c>) and its
/// description.
/// </summary>
public sealed class CudaException : Exception
{
    /// <summary>Creates the exception for a failed <paramref name="call"/>.</summary>
    public CudaException(string call, int code, string errorName, string description)
        : base($"{call} failed: {errorName} ({description})")
    {
        Call = call;
        Code = code;
        ErrorName = errorName;
    }

    /// <summary>Creates an exception with a message of its own (no status code).</summary>
    public CudaException(string message)
        : base(message)
    {
        Call = string.Empty;
        ErrorName = string.Empty;
    }

    /// <summary>Creates an exception with a message and the exception that caused it.</summary>
    public CudaException(string message, Exception innerException)
        : base(message, innerException)
    {
        Call = string.Empty;
        ErrorName = string.Empty;
    }

    /// <summary>Creates an exception with no details.</summary>
    public CudaException()
        : this("CUDA error")
    {
    }

    /// <summary>The API call that failed, e.g. <c>cuMemAlloc_v2</c>.</summary>
    public string Call { get; }

    /// <summary>The numeric status the call returned (0 when there was none).</summary>
    public int Code { get; }

    /// <summary>The library's name for the status, e.g. <c>CUDA_ERROR_NO_DEVICE</c>.</summary>
    public string ErrorName { get; }
}
