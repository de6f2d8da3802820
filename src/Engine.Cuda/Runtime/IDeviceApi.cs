namespace Engine.Cuda.Runtime;

/// <summary>
/// The seam between <see cref="CudaBackend"/> and what runs its work: memory, copies, kernel launches, events and the
/// cuBLAS GEMMs. Two sides: <see cref="DriverDeviceApi"/> (the CUDA driver, NVRTC and cuBLAS) and
/// <see cref="Emulation.EmulatedDeviceApi"/> (the same kernels compiled for the CPU, device memory in host memory). Every
/// host path of the backend (launch shapes, chunk loops, scratch, error checks) is above this line, so it runs on both.
/// Work is ordered as on one stream; calls throw <see cref="CudaException"/> naming the call that failed.
/// </summary>
internal unsafe interface IDeviceApi : IDisposable
{
    /// <summary>The device as the driver describes it.</summary>
    CudaDeviceInfo Info { get; }

    /// <summary>What compiles and runs the kernels and GEMMs, for the backend's description (kernel target, compiler, BLAS).</summary>
    string Toolchain { get; }

    /// <summary>Binds the device to the calling thread (a no-op when it already is).</summary>
    void MakeCurrent();

    /// <summary>Allocates <paramref name="bytes"/> (&gt; 0) of device memory, zeroed in stream order.</summary>
    nint Allocate(long bytes);

    /// <summary>Frees what <see cref="Allocate"/> returned.</summary>
    void Free(nint address);

    /// <summary>Sets <paramref name="bytes"/> bytes at <paramref name="address"/> to <paramref name="value"/>, in stream order.</summary>
    void Memset(nint address, byte value, long bytes);

    /// <summary>Copies host memory to the device; the source may be reused when the call returns.</summary>
    void CopyToDevice(nint destination, void* source, long bytes);

    /// <summary>Queues a device-to-host copy; the bytes are there after the next <see cref="Synchronize"/>.</summary>
    void CopyToHost(void* destination, nint source, long bytes);

    /// <summary>Copies device memory to device memory, in stream order.</summary>
    void CopyOnDevice(nint destination, nint source, long bytes);

    /// <summary>Waits for everything queued.</summary>
    void Synchronize();

    /// <summary>Free and total device memory in bytes.</summary>
    (long Free, long Total) MemoryInfo();

    /// <summary>The entry point <paramref name="kernel"/> (its module loaded, compiled or read from a cache, on first use).</summary>
    nint Function(KernelSignature kernel);

    /// <summary>Lets <paramref name="function"/> use <paramref name="bytes"/> of dynamic shared memory (past the 48 KiB default).</summary>
    void AllowDynamicShared(nint function, string name, int bytes);

    /// <summary>Queues a launch; <paramref name="arguments"/> points to one pointer per parameter, to its value.</summary>
    void Launch(nint function, string name, Dim3 grid, Dim3 block, int sharedBytes, void** arguments);

    /// <summary>Creates a timing event.</summary>
    nint CreateEvent();

    /// <summary>Records <paramref name="handle"/> in stream order.</summary>
    void RecordEvent(nint handle);

    /// <summary>Milliseconds between two recorded events, waiting for the second.</summary>
    float ElapsedMilliseconds(nint start, nint stop);

    /// <summary>Destroys an event.</summary>
    void DestroyEvent(nint handle);

    /// <summary>One cuBLAS fp32 GEMM (or a strided batch of them) with cuBLAS's column-major semantics.</summary>
    void Gemm(in BlasGemm gemm);
}

/// <summary>
/// A cuBLAS <c>cublasGemmEx</c> / <c>cublasGemmStridedBatchedEx</c> call in cuBLAS's own terms: column-major
/// C[m,n] = α·op(A)·op(B) + β·C with leading dimensions (column strides) and, for <see cref="Batch"/> &gt; 1 or
/// <see cref="Strided"/>, element strides between the products.
/// </summary>
internal readonly record struct BlasGemm(
    bool TransposeA,
    bool TransposeB,
    int M,
    int N,
    int K,
    float Alpha,
    nint A,
    int Lda,
    long StrideA,
    nint B,
    int Ldb,
    long StrideB,
    float Beta,
    nint C,
    int Ldc,
    long StrideC,
    int Batch,
    bool Strided,
    bool AllowTf32)
{
    /// <summary>How the call is named in errors.</summary>
    public string Describe() => Strided
        ? $"cublasGemmStridedBatchedEx(batch={Batch}, m={M}, n={N}, k={K})"
        : $"cublasGemmEx(m={M}, n={N}, k={K})";
}
