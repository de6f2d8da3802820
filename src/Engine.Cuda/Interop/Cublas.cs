using System.Runtime.InteropServices;

namespace Engine.Cuda.Interop;

/// <summary>Status codes of cuBLAS (<c>cublasStatus_t</c>).</summary>
internal enum CublasStatus
{
    Success = 0,
    NotInitialized = 1,
    AllocFailed = 3,
    InvalidValue = 7,
    ArchMismatch = 8,
    MappingError = 11,
    ExecutionFailed = 13,
    InternalError = 14,
    NotSupported = 15,
    LicenseError = 16,
}

/// <summary><c>cublasOperation_t</c>.</summary>
internal enum CublasOperation
{
    None = 0,
    Transpose = 1,
}

/// <summary><c>cublasMath_t</c>: default (full fp32) or TF32 tensor cores for fp32 GEMMs.</summary>
internal enum CublasMath
{
    Default = 0,
    Pedantic = 2,
    Tf32TensorOp = 3,
}

/// <summary><c>cudaDataType</c> of the GEMM operands.</summary>
internal enum CudaDataType
{
    R32F = 0,
    R16F = 2,
    R16BF = 14,
}

/// <summary><c>cublasComputeType_t</c>.</summary>
internal enum CublasComputeType
{
    Compute32F = 68,
    Compute32FFastTf32 = 77,
}

/// <summary>
/// The slice of cuBLAS (<c>libcublas.so.*</c>) Engine uses: handle, stream, math mode and the two <c>Ex</c> GEMMs.
/// cuBLAS is column-major; <c>CudaBackend</c> maps row-major products onto it by computing Cᵀ = op(B)ᵀ·op(A)ᵀ.
/// </summary>
internal static unsafe partial class Cublas
{
    /// <summary><c>CUBLAS_GEMM_DEFAULT</c>: let cuBLAS pick the algorithm.</summary>
    public const int GemmDefault = -1;

    static Cublas() => NativeLibraries.Register();

    /// <summary>Throws <see cref="CudaException"/> for anything but success, with the status name from cublas_api.h.</summary>
    public static void Check(CublasStatus status, string call)
    {
        if (status != CublasStatus.Success)
        {
            throw new CudaException(call, (int)status, NameOf(status), Describe(status));
        }
    }

    /// <summary>The enumerator name of a status.</summary>
    public static string NameOf(CublasStatus status) => status switch
    {
        CublasStatus.Success => "CUBLAS_STATUS_SUCCESS",
        CublasStatus.NotInitialized => "CUBLAS_STATUS_NOT_INITIALIZED",
        CublasStatus.AllocFailed => "CUBLAS_STATUS_ALLOC_FAILED",
        CublasStatus.InvalidValue => "CUBLAS_STATUS_INVALID_VALUE",
        CublasStatus.ArchMismatch => "CUBLAS_STATUS_ARCH_MISMATCH",
        CublasStatus.MappingError => "CUBLAS_STATUS_MAPPING_ERROR",
        CublasStatus.ExecutionFailed => "CUBLAS_STATUS_EXECUTION_FAILED",
        CublasStatus.InternalError => "CUBLAS_STATUS_INTERNAL_ERROR",
        CublasStatus.NotSupported => "CUBLAS_STATUS_NOT_SUPPORTED",
        CublasStatus.LicenseError => "CUBLAS_STATUS_LICENSE_ERROR",
        _ => $"cublasStatus_t {(int)status}",
    };

    private static string Describe(CublasStatus status) => status switch
    {
        CublasStatus.NotInitialized => "the cuBLAS library was not initialized (usually no usable driver or device)",
        CublasStatus.AllocFailed => "resource allocation failed inside cuBLAS",
        CublasStatus.InvalidValue => "an unsupported value or parameter was passed",
        CublasStatus.ArchMismatch => "the function needs a feature absent from the device architecture",
        CublasStatus.ExecutionFailed => "the GPU program failed to execute",
        CublasStatus.InternalError => "an internal cuBLAS operation failed",
        CublasStatus.NotSupported => "the functionality requested is not supported",
        _ => "cuBLAS error",
    };

    [LibraryImport(NativeLibraries.Cublas, EntryPoint = "cublasCreate_v2")]
    public static partial CublasStatus cublasCreate(out CublasHandle handle);

    [LibraryImport(NativeLibraries.Cublas, EntryPoint = "cublasDestroy_v2")]
    public static partial CublasStatus cublasDestroy(CublasHandle handle);

    [LibraryImport(NativeLibraries.Cublas, EntryPoint = "cublasGetVersion_v2")]
    public static partial CublasStatus cublasGetVersion(CublasHandle handle, out int version);

    [LibraryImport(NativeLibraries.Cublas, EntryPoint = "cublasSetStream_v2")]
    public static partial CublasStatus cublasSetStream(CublasHandle handle, CuStream stream);

    [LibraryImport(NativeLibraries.Cublas)]
    public static partial CublasStatus cublasSetMathMode(CublasHandle handle, CublasMath mode);

    [LibraryImport(NativeLibraries.Cublas)]
    public static partial CublasStatus cublasGemmEx(
        CublasHandle handle,
        CublasOperation transA,
        CublasOperation transB,
        int m,
        int n,
        int k,
        void* alpha,
        CuDevicePtr a,
        CudaDataType aType,
        int lda,
        CuDevicePtr b,
        CudaDataType bType,
        int ldb,
        void* beta,
        CuDevicePtr c,
        CudaDataType cType,
        int ldc,
        CublasComputeType computeType,
        int algorithm);

    [LibraryImport(NativeLibraries.Cublas)]
    public static partial CublasStatus cublasGemmStridedBatchedEx(
        CublasHandle handle,
        CublasOperation transA,
        CublasOperation transB,
        int m,
        int n,
        int k,
        void* alpha,
        CuDevicePtr a,
        CudaDataType aType,
        int lda,
        long strideA,
        CuDevicePtr b,
        CudaDataType bType,
        int ldb,
        long strideB,
        void* beta,
        CuDevicePtr c,
        CudaDataType cType,
        int ldc,
        long strideC,
        int batchCount,
        CublasComputeType computeType,
        int algorithm);
}
