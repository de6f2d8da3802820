using System.Diagnostics;
using System.Runtime.InteropServices;
using Engine.Core.Cpu;
using Engine.Cuda.Runtime;

namespace Engine.Cuda.Emulation;

/// <summary>
/// The emulated side of <see cref="IDeviceApi"/>: "device memory" is host memory, launches run the kernels of
/// <c>kernels/</c> compiled for the CPU (<see cref="EmulatorLibrary"/>) to completion before returning (so the stream
/// order holds trivially), and cuBLAS calls are served by <see cref="CpuBlas"/>. What the driver would reject is rejected
/// here too with the driver's error names: copies outside an allocation, freeing what was not allocated, launch shapes
/// past the device limits, dynamic shared memory past the kernel's allowance. A fault inside a kernel (an access past
/// the end of a device allocation or of dynamic shared memory, each of which ends at a guard page; an out-of-range index
/// of a fixed-size array; a deadlock; a misused warp mask) fails the launch naming the kernel, block and thread.
/// </summary>
internal sealed unsafe class EmulatedDeviceApi : IDeviceApi
{
    /// <summary>Shared memory a block may opt in to (an H100/H200's 227 KiB).</summary>
    private const int MaxSharedOptIn = 232448;

    private readonly nint library;
    private readonly delegate* unmanaged<nint> lastError;
    private readonly delegate* unmanaged<nuint, nint> allocate;
    private readonly delegate* unmanaged<nint, int> free;
    private readonly SortedDictionary<nint, long> allocations = [];
    private readonly Dictionary<nint, int> sharedAllowance = [];
    private readonly Dictionary<nint, long> events = [];
    private readonly Lock gate = new();
    private readonly CpuBlas blas = new();
    private long liveBytes;
    private nint nextEvent = 1;

    public EmulatedDeviceApi(CudaBackendOptions options)
    {
        if (options.DeviceOrdinal != 0)
        {
            throw new CudaException($"no CUDA device {options.DeviceOrdinal}: the emulator has one");
        }

        string path = EmulatorLibrary.Path;
        library = NativeLibrary.Load(path);
        lastError = (delegate* unmanaged<nint>)NativeLibrary.GetExport(library, "emu_last_error");
        allocate = (delegate* unmanaged<nuint, nint>)NativeLibrary.GetExport(library, "emu_alloc");
        free = (delegate* unmanaged<nint, int>)NativeLibrary.GetExport(library, "emu_free");
        long memory = GC.GetGCMemoryInfo().TotalAvailableMemoryBytes;
        Info = new CudaDeviceInfo(0, "Engine emulated device", 9, 0, 2, memory, MaxSharedOptIn);
        Toolchain = $"kernels emulated on the CPU ({System.IO.Path.GetFileName(path)} by {EmulatorLibrary.Compiler}), GEMM on the CPU backend";
    }

    public CudaDeviceInfo Info { get; }

    public string Toolchain { get; }

    public void MakeCurrent()
    {
    }

    public nint Allocate(long bytes)
    {
        // Zeroed pages ending at a guard page: a kernel reading or writing past the end faults, and the launch fails.
        nint address = allocate((nuint)bytes);
        if (address == 0)
        {
            throw new CudaException($"cuMemAlloc_v2({bytes} bytes)", 2, "CUDA_ERROR_OUT_OF_MEMORY", "out of memory under emulation");
        }

        lock (gate)
        {
            allocations[address] = bytes;
            liveBytes += bytes;
        }

        return address;
    }

    public void Free(nint address)
    {
        lock (gate)
        {
            if (!allocations.Remove(address, out long bytes))
            {
                throw Invalid("cuMemFree_v2", $"{address:x} is not the start of an allocation");
            }

            liveBytes -= bytes;
        }

        free(address);
    }

    public void Memset(nint address, byte value, long bytes)
    {
        Require(address, bytes, "cuMemsetD8Async");
        NativeMemory.Fill((void*)address, (nuint)bytes, value);
    }

    public void CopyToDevice(nint destination, void* source, long bytes)
    {
        Require(destination, bytes, "cuMemcpyHtoDAsync_v2");
        Buffer.MemoryCopy(source, (void*)destination, bytes, bytes);
    }

    public void CopyToHost(void* destination, nint source, long bytes)
    {
        Require(source, bytes, "cuMemcpyDtoHAsync_v2");
        Buffer.MemoryCopy((void*)source, destination, bytes, bytes);
    }

    public void CopyOnDevice(nint destination, nint source, long bytes)
    {
        Require(destination, bytes, "cuMemcpyDtoDAsync_v2");
        Require(source, bytes, "cuMemcpyDtoDAsync_v2");
        Buffer.MemoryCopy((void*)source, (void*)destination, bytes, bytes);
    }

    public void Synchronize()
    {
    }

    public (long Free, long Total) MemoryInfo()
    {
        lock (gate)
        {
            return (Info.TotalMemoryBytes - liveBytes, Info.TotalMemoryBytes);
        }
    }

    public nint Function(KernelSignature kernel) =>
        NativeLibrary.TryGetExport(library, $"emu_kernel_{kernel.Name}", out nint function)
            ? function
            : throw new CudaException($"cuModuleGetFunction({kernel.Name})", 500, "CUDA_ERROR_NOT_FOUND", $"{kernel.Module} has no kernel {kernel.Name}");

    public void AllowDynamicShared(nint function, string name, int bytes)
    {
        if (bytes > MaxSharedOptIn)
        {
            throw Invalid($"cuFuncSetAttribute({name}, max dynamic shared memory {bytes})", $"past the {MaxSharedOptIn} bytes a block may opt in to");
        }

        lock (gate)
        {
            sharedAllowance[function] = bytes;
        }
    }

    /// <summary>The names of the kernels launched on any emulated device of this process (for coverage checks in tests).</summary>
    internal static IReadOnlyCollection<string> LaunchedKernels => Launched.Keys.ToList();

    private static readonly System.Collections.Concurrent.ConcurrentDictionary<string, bool> Launched = new(StringComparer.Ordinal);

    public void Launch(nint function, string name, Dim3 grid, Dim3 block, int sharedBytes, void** arguments)
    {
        Launched.TryAdd(name, true);
        string call = $"cuLaunchKernel({name})";
        long threads = (long)block.X * block.Y * block.Z;
        if (grid.X == 0 || grid.Y == 0 || grid.Z == 0 || grid.Y > 65535 || grid.Z > 65535 || grid.X > int.MaxValue)
        {
            throw Invalid(call, $"grid ({grid.X},{grid.Y},{grid.Z}) is outside the device limits");
        }

        if (threads == 0 || threads > 1024 || block.Z > 64)
        {
            throw Invalid(call, $"block ({block.X},{block.Y},{block.Z}) is outside the device limits (1024 threads, z ≤ 64)");
        }

        int allowance;
        lock (gate)
        {
            allowance = Math.Max(48 * 1024, sharedAllowance.GetValueOrDefault(function));
        }

        if (sharedBytes < 0 || sharedBytes > allowance)
        {
            throw Invalid(call, $"{sharedBytes} bytes of dynamic shared memory, past the {allowance} the kernel is allowed");
        }

        var launch = new EmulatedLaunch(grid, block, (uint)sharedBytes);
        int status = ((delegate* unmanaged<EmulatedLaunch*, void**, int>)function)(&launch, arguments);
        if (status != 0)
        {
            string reason = Marshal.PtrToStringUTF8(lastError()) ?? "unknown failure";
            throw new CudaException(call, 719, "CUDA_ERROR_LAUNCH_FAILED", $"under emulation: {reason}");
        }
    }

    public nint CreateEvent()
    {
        lock (gate)
        {
            nint handle = nextEvent++;
            events[handle] = 0;
            return handle;
        }
    }

    public void RecordEvent(nint handle)
    {
        lock (gate)
        {
            events[handle] = Stopwatch.GetTimestamp();
        }
    }

    public float ElapsedMilliseconds(nint start, nint stop)
    {
        lock (gate)
        {
            return (float)Stopwatch.GetElapsedTime(events[start], events[stop]).TotalMilliseconds;
        }
    }

    public void DestroyEvent(nint handle)
    {
        lock (gate)
        {
            events.Remove(handle);
        }
    }

    public void Gemm(in BlasGemm gemm)
    {
        RequireOperand(gemm.A, gemm.TransposeA ? gemm.K : gemm.M, gemm.TransposeA ? gemm.M : gemm.K, gemm.Lda, gemm.StrideA, gemm, "A");
        RequireOperand(gemm.B, gemm.TransposeB ? gemm.N : gemm.K, gemm.TransposeB ? gemm.K : gemm.N, gemm.Ldb, gemm.StrideB, gemm, "B");
        RequireOperand(gemm.C, gemm.M, gemm.N, gemm.Ldc, gemm.StrideC, gemm, "C");
        blas.Gemm(gemm);
    }

    public void Dispose()
    {
        // The library stays loaded: other backends of this process may be using it, and unloading native code that
        // owns thread-local fiber stacks is not worth the risk. Memory still allocated is freed with the device.
        lock (gate)
        {
            foreach (var address in allocations.Keys)
            {
                free(address);
            }

            allocations.Clear();
            liveBytes = 0;
        }

        blas.Dispose();
    }

    private static CudaException Invalid(string call, string detail) =>
        new(call, 1, "CUDA_ERROR_INVALID_VALUE", $"invalid argument under emulation: {detail}");

    /// <summary>A column-major operand of rows × columns (leading dimension ld), batch-strided, must lie inside one allocation.</summary>
    private void RequireOperand(nint address, int rows, int columns, int ld, long stride, in BlasGemm gemm, string operand)
    {
        if (ld < Math.Max(1, rows))
        {
            throw new CudaException(gemm.Describe(), 7, "CUBLAS_STATUS_INVALID_VALUE", $"ld{operand.ToLowerInvariant()} {ld} is less than {rows} rows");
        }

        long last = (long)(gemm.Batch - 1) * stride + ((long)(columns - 1) * ld) + rows;
        Require(address, last * sizeof(float), gemm.Describe());
    }

    private void Require(nint address, long bytes, string call)
    {
        if (bytes == 0)
        {
            return;
        }

        lock (gate)
        {
            foreach (var (start, length) in allocations)
            {
                if (start <= address && address + bytes <= start + length)
                {
                    return;
                }
            }
        }

        throw Invalid(call, $"{bytes} bytes at {address:x} are not inside one device allocation");
    }

    /// <summary>The launch description the emulator's wrappers read (<c>emu::Launch</c>).</summary>
    [StructLayout(LayoutKind.Sequential)]
    private readonly struct EmulatedLaunch(Dim3 grid, Dim3 block, uint sharedBytes)
    {
        public readonly uint GridX = grid.X, GridY = grid.Y, GridZ = grid.Z;
        public readonly uint BlockX = block.X, BlockY = block.Y, BlockZ = block.Z;
        public readonly uint SharedBytes = sharedBytes;
    }
}
