using Engine.Cuda;
using Engine.Cuda.Runtime;
using Xunit;

namespace Engine.Tests.Cuda;

/// <summary>Host-side launch planning of the CUDA backend, checkable without a GPU.</summary>
[Trait("Category", "CudaCompile")]
public class CudaLaunchPlanTests
{
    [Theory]
    [InlineData(1, 1)]
    [InlineData(63, 768)]
    [InlineData(8192, 768)]
    [InlineData(8192, 50257)]
    [InlineData(10_000_000, 1)]
    [InlineData(65, 3)]
    public void Column_reduction_segments_cover_every_row_within_the_limits(long rows, long columns)
    {
        var (segments, perSegment) = CudaBackend.Segments(rows, columns);
        Assert.InRange(segments, 1, 65535);
        Assert.True((long)segments * perSegment >= rows, "rows left over");
        Assert.True((long)(segments - 1) * perSegment < rows, "an empty segment");
        Assert.True((long)segments * columns <= Math.Max(1L << 22, columns), "partials exceed the scratch bound");
        Assert.Equal((segments, perSegment), CudaBackend.Segments(rows, columns));
    }

    [Theory]
    [InlineData(2048, 50257, 256L << 20, 1335, 50257)]
    [InlineData(100, 50257, 256L << 20, 100, 50257)]
    [InlineData(4096, 151_936, 256L << 20, 441, 151_936)]
    [InlineData(100_000, 1000, 256L << 20, 4096, 1000)]
    [InlineData(4096, 1 << 20, 256L << 20, 256, 262_144)]
    [InlineData(64, 50257, 1L << 20, 64, 1024)]
    [InlineData(1, 1, 4, 1, 1)]
    public void Log_prob_chunks_keep_the_whole_vocabulary_while_enough_rows_fit(long n, long v, long budget, int rows, int vocab)
    {
        var (r, vc) = CudaBackend.LogProbChunks(n, v, budget);
        Assert.Equal((rows, vocab), (r, vc));
        Assert.True((long)r * vc * sizeof(float) <= Math.Max(budget, (long)CudaBackend.LogProbMinRows * 32 * sizeof(float)), "workspace over budget");
    }

    [Fact]
    public void Log_prob_chunk_overrides_win_but_stay_within_the_shape()
    {
        Assert.Equal((16, 96), CudaBackend.LogProbChunks(100, 1000, 256L << 20, 16, 96));
        Assert.Equal((7, 50), CudaBackend.LogProbChunks(7, 50, 256L << 20, 16, 96));
    }

    [Theory]
    [InlineData(1)]
    [InlineData(4096)]
    [InlineData(4097)]
    [InlineData(1_000_003)]
    [InlineData(100_000_000)]
    public void Token_reduction_slices_cover_every_element(long n)
    {
        var (blocks, perBlock) = CudaBackend.ReductionSlices(n);
        Assert.InRange(blocks, 1, 1024);
        Assert.True(blocks * perBlock >= n, "elements left over");
        Assert.True((blocks - 1) * perBlock < n, "an empty slice");
    }

    [Fact]
    public void Kernel_arguments_carry_their_kind_and_value_bits()
    {
        KernelArg i = -3, l = 5L, f = 1.5f, u = ulong.MaxValue, w = 7u;
        Assert.Equal(('i', unchecked((ulong)-3L)), (i.Kind, i.Bits));
        Assert.Equal(('l', 5UL), (l.Kind, l.Bits));
        Assert.Equal(('f', (ulong)BitConverter.SingleToUInt32Bits(1.5f)), (f.Kind, f.Bits));
        Assert.Equal(('u', ulong.MaxValue), (u.Kind, u.Bits));
        Assert.Equal(('I', 7UL), (w.Kind, w.Bits));
        Assert.Equal('p', KernelArg.Pointer(0x1000).Kind);
    }

    [Fact]
    public void Grid_sizes_refuse_what_the_hardware_cannot_launch()
    {
        Assert.Equal(4u, Dim3.Blocks(100, 32));
        Assert.Throws<ArgumentOutOfRangeException>(() => Dim3.Blocks(0, 32));
        Assert.Throws<ArgumentOutOfRangeException>(() => Dim3.Blocks((long)int.MaxValue * 64, 32));
    }
}
