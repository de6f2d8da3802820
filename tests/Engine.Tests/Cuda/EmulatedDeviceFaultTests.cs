using Engine.Core.Tensors;
using Engine.Cuda;
using Engine.Cuda.Runtime;
using Xunit;

namespace Engine.Tests.Cuda;

/// <summary>
/// Device-side faults under emulation become a <see cref="CudaException"/> naming the kernel, block and thread, and the
/// backend stays usable: a fixed-size shared array indexed past its end, a write past the end of a device allocation, a
/// warp reduction over lanes that do not exist, and the driver's own launch limits. Bad token ids and targets, which the
/// kernels check themselves, surface at the next synchronisation as on a GPU.
/// </summary>
[Trait("Category", "CudaEmulated")]
public class EmulatedDeviceFaultTests
{
    [EmulatorFact]
    public void A_shared_tile_indexed_past_its_end_fails_the_launch_naming_kernel_block_and_thread()
    {
        using var cuda = CudaBackend.CreateEmulated();
        var x = cuda.AllocateTensor(DType.F32, 16, 32);
        var partials = cuda.AllocateTensor(DType.F32, 1, 32);

        // column_partials keeps a [8][33] tile indexed by (threadIdx.y, threadIdx.x): nine rows of threads overrun it.
        var e = Assert.Throws<CudaException>(() => cuda.Launch(Kernels.ColumnPartials, new Dim3(1), new Dim3(32, 9), 0, partials, x, 16, 32, 16));

        Assert.Contains("kernel column_partials, block (0,0,0), thread (0,8,0)", e.Message, StringComparison.Ordinal);
        Assert.Contains("out of bounds", e.Message, StringComparison.Ordinal);
        StillWorks(cuda);
    }

    [EmulatorFact]
    public void A_write_past_the_end_of_a_device_allocation_fails_the_launch_naming_kernel_block_and_thread()
    {
        using var cuda = CudaBackend.CreateEmulated();
        var t = cuda.AllocateTensor(DType.F32, 300);

        // fill_f32 told of 301 elements: one grid-stride step writes element 300, just past the tensor's 1200 bytes.
        var e = Assert.Throws<CudaException>(() => cuda.Launch(Kernels.Fill, new Dim3(2), new Dim3(256), 0, t, 301L, 1f));

        Assert.Contains("kernel fill_f32, block (1,0,0), thread (44,0,0): invalid memory access", e.Message, StringComparison.Ordinal);
        Assert.Contains("0 bytes past the end of a 1200-byte device allocation", e.Message, StringComparison.Ordinal);
        StillWorks(cuda);
    }

    [EmulatorFact]
    public void A_full_warp_mask_over_missing_lanes_fails_the_launch()
    {
        using var cuda = CudaBackend.CreateEmulated();
        var partials = cuda.AllocateTensor(DType.F32, 8);
        var result = cuda.AllocateTensor(DType.F32, 2);

        // block_sum_double reduces with full-warp shuffles: a 48-thread block has a second warp of 16 lanes.
        var e = Assert.Throws<CudaException>(() => cuda.Launch(Kernels.SquaredNormFold, new Dim3(1), new Dim3(48), 0, result, partials, 4));

        Assert.Contains("kernel squared_norm_fold, block (0,0,0), thread (32,0,0)", e.Message, StringComparison.Ordinal);
        Assert.Contains("__shfl_xor_sync with mask 0xffffffff names lanes that do not exist", e.Message, StringComparison.Ordinal);
        StillWorks(cuda);
    }

    [EmulatorFact]
    public void Token_ids_and_targets_outside_the_vocabulary_are_reported_at_the_next_synchronisation()
    {
        using var cuda = CudaBackend.CreateEmulated();
        var table = cuda.AllocateTensor(DType.F32, 10, 8);
        var tokens = cuda.AllocateTensor(DType.I32, 2, 3);
        var output = cuda.AllocateTensor(DType.F32, 6, 8);
        cuda.CopyFromHost<int>(tokens, [1, 2, 3, 4, 10, 5]);
        cuda.EmbeddingForward(output, tokens, table);
        var e = Assert.Throws<ArgumentOutOfRangeException>(cuda.Synchronize);
        Assert.Contains("token id 10 at position 4 is outside the vocabulary", e.Message, StringComparison.Ordinal);

        var logits = cuda.AllocateTensor(DType.F32, 3, 10);
        var losses = cuda.AllocateTensor(DType.F32, 3);
        var targets = cuda.AllocateTensor(DType.I32, 3);
        cuda.CopyFromHost<int>(targets, [0, 12, 9]);
        cuda.CrossEntropyForward(losses, logits, targets);
        e = Assert.Throws<ArgumentOutOfRangeException>(cuda.Synchronize);
        Assert.Contains("target 12 of row 1 is outside the vocabulary", e.Message, StringComparison.Ordinal);
        StillWorks(cuda);
    }

    [EmulatorFact]
    public void Launch_shapes_past_the_device_limits_are_rejected_like_the_driver_does()
    {
        using var cuda = CudaBackend.CreateEmulated();
        var t = cuda.AllocateTensor(DType.F32, 4);

        var e = Assert.Throws<CudaException>(() => cuda.Launch(Kernels.Fill, new Dim3(1), new Dim3(2048), 0, t, 4L, 1f));
        Assert.Equal("CUDA_ERROR_INVALID_VALUE", e.ErrorName);
        e = Assert.Throws<CudaException>(() => cuda.Launch(Kernels.Fill, new Dim3(0), new Dim3(32), 0, t, 4L, 1f));
        Assert.Equal("CUDA_ERROR_INVALID_VALUE", e.ErrorName);
        e = Assert.Throws<CudaException>(() => cuda.Launch(Kernels.Fill, new Dim3(1, 70_000), new Dim3(32), 0, t, 4L, 1f));
        Assert.Equal("CUDA_ERROR_INVALID_VALUE", e.ErrorName);
    }

    private static void StillWorks(CudaBackend cuda)
    {
        var t = cuda.AllocateTensor(DType.F32, 300);
        cuda.Fill(t, 2.5f);
        var host = new float[300];
        cuda.CopyToHost(t, host.AsSpan());
        Assert.All(host, v => Assert.Equal(2.5f, v));
    }
}
