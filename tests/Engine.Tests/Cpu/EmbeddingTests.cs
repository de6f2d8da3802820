using Engine.Core.Cpu;
using Engine.Core.Tensors;
using Engine.Tests.Reference;
using Engine.Tests.Support;
using Xunit;

namespace Engine.Tests.Cpu;

[Trait("Category", "Kernels")]
public sealed class EmbeddingTests : IDisposable
{
    private readonly CpuBackend cpu = new(2);

    public static TheoryData<int, int, int> Shapes => new() { { 1, 1, 1 }, { 5, 3, 7 }, { 40, 11, 33 }, { 17, 50, 257 }, { 64, 9, 768 } };

    public void Dispose() => cpu.Dispose();

    [Theory]
    [MemberData(nameof(Shapes))]
    public void Token_embedding_forward_and_backward_match_reference(int n, int vocab, int c)
    {
        // Few ids over many rows, so most ids repeat.
        var tokens = TestData.Tokens(n, n, vocab);
        var table = TestData.Uniform(n + 1, vocab * c);
        var y = cpu.AllocateTensor(DType.F32, n, c);
        cpu.EmbeddingForward(y, TestData.Upload(cpu, tokens, n), TestData.Upload(cpu, table, vocab, c));
        Approx.BitEqual(ScalarKernels.ToFloat(ScalarKernels.Embedding(tokens, table, c)), TestData.Download(cpu, y), "out");

        var dy = TestData.Uniform(n + 2, n * c);
        var dt0 = TestData.Uniform(n + 3, vocab * c);
        var dt = TestData.Upload(cpu, dt0, vocab, c);
        cpu.EmbeddingBackward(dt, TestData.Upload(cpu, dy, n, c), TestData.Upload(cpu, tokens, n));
        Approx.Equal(ScalarKernels.Plus(dt0, ScalarKernels.EmbeddingBackward(dy, tokens, vocab, c)), TestData.Download(cpu, dt), 1e-5f, 1e-5f, "dtable");
    }

    [Fact]
    public void Token_embedding_backward_matches_finite_differences()
    {
        const int n = 9, vocab = 4, c = 5;
        var tokens = TestData.Tokens(100, n, vocab);
        var table = TestData.Uniform(101, vocab * c);
        var proj = TestData.Uniform(102, n * c);
        var dt = TestData.Upload(cpu, new float[vocab * c], vocab, c);
        cpu.EmbeddingBackward(dt, TestData.Upload(cpu, proj, n, c), TestData.Upload(cpu, tokens, n));
        var numeric = FiniteDifference.Gradient(tt => KernelTests.Dot(ScalarKernels.Embedding(tokens, tt, c), proj), table, 1e-2f);
        FiniteDifference.AssertClose(numeric, TestData.Download(cpu, dt), 1e-4, 1e-4, "dtable");
    }

    [Fact]
    public void Token_embedding_backward_is_bitwise_identical_across_thread_counts()
    {
        const int n = 700, vocab = 5, c = 300;
        var tokens = TestData.Tokens(110, n, vocab);
        var dy = TestData.Uniform(111, n * c);
        float[]? first = null;
        foreach (var backend in TestData.ThreadVariants())
        {
            using (backend)
            {
                var dt = TestData.Upload(backend, TestData.Uniform(112, vocab * c), vocab, c);
                backend.EmbeddingBackward(dt, TestData.Upload(backend, dy, n, c), TestData.Upload(backend, tokens, n));
                var now = TestData.Download(backend, dt);
                if (first is null)
                {
                    first = now;
                }
                else
                {
                    Approx.BitEqual(first, now, $"dtable on {backend.ThreadCount} threads");
                }
            }
        }
    }

    [Theory]
    [InlineData(-1)]
    [InlineData(7)]
    [InlineData(int.MaxValue)]
    public void Token_ids_outside_the_vocabulary_are_rejected_with_position_and_id(int bad)
    {
        const int vocab = 7, c = 4;
        int[] tokens = [0, 6, 3, bad, 2];
        var table = TestData.Upload(cpu, TestData.Uniform(120, vocab * c), vocab, c);
        var tok = TestData.Upload(cpu, tokens, tokens.Length);
        var y = cpu.AllocateTensor(DType.F32, tokens.Length, c);
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => cpu.EmbeddingForward(y, tok, table));
        Assert.Contains("position 3", e.Message, StringComparison.Ordinal);
        Assert.Contains(bad.ToString(System.Globalization.CultureInfo.InvariantCulture), e.Message, StringComparison.Ordinal);

        var before = TestData.Download(cpu, table);
        e = Assert.Throws<ArgumentOutOfRangeException>(() => cpu.EmbeddingBackward(table, TestData.Upload(cpu, new float[tokens.Length * c], tokens.Length, c), tok));
        Assert.Contains("position 3", e.Message, StringComparison.Ordinal);
        Approx.BitEqual(before, TestData.Download(cpu, table), "table untouched");
    }

    [Theory]
    [InlineData(1, 1, 1, 1, 0)]
    [InlineData(2, 5, 7, 8, 3)]
    [InlineData(3, 16, 33, 20, 0)]
    [InlineData(4, 64, 768, 100, 36)]
    public void Position_embedding_forward_and_backward_match_reference(int b, int t, int c, int maxT, int offset)
    {
        var x = TestData.Uniform(130, b * t * c);
        var wpe = TestData.Uniform(131, maxT * c);
        var xt = TestData.Upload(cpu, x, b, t, c);
        cpu.PositionEmbeddingForward(xt, TestData.Upload(cpu, wpe, maxT, c), offset);
        Approx.Equal(ScalarKernels.ToFloat(ScalarKernels.PositionEmbedding(x, wpe, b, t, c, offset)), TestData.Download(cpu, xt), 0f, 0f, "x + wpe");

        var dx = TestData.Uniform(132, b * t * c);
        var dw0 = TestData.Uniform(133, maxT * c);
        var dw = TestData.Upload(cpu, dw0, maxT, c);
        cpu.PositionEmbeddingBackward(dw, TestData.Upload(cpu, dx, b, t, c));
        Approx.Equal(ScalarKernels.Plus(dw0, ScalarKernels.PositionEmbeddingBackward(dx, b, t, c, maxT)), TestData.Download(cpu, dw), 1e-6f, 1e-5f, "dwpe");
    }
}
