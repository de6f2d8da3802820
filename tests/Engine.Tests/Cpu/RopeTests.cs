using Engine.Core.Backends;
using Engine.Core.Cpu;
using Engine.Tests.Reference;
using Engine.Tests.Support;
using Xunit;

namespace Engine.Tests.Cpu;

[Trait("Category", "Kernels")]
public sealed class RopeTests : IDisposable
{
    private const int MaxT = 64;
    private readonly CpuBackend backend = new(2);

    public void Dispose() => backend.Dispose();

    [Theory]
    [InlineData(1, 1, 1, 1, 8, 0)]
    [InlineData(2, 7, 4, 4, 12, 0)]
    [InlineData(3, 5, 6, 2, 20, 11)]
    [InlineData(2, 33, 4, 1, 64, 30)]
    [InlineData(1, 16, 2, 2, 128, 48)]
    public void Forward_matches_reference_and_leaves_v_alone(int b, int t, int nh, int nkv, int hs, int offset)
    {
        var shape = new AttentionShape(nh, nkv, hs);
        float[] table = Table(hs);
        float[] qkv = TestData.Uniform(20, b * t * shape.QkvChannels);
        float[] expected = (float[])qkv.Clone();
        AttentionReference.Rope(expected, table, b, t, shape, offset);
        float[] actual = Run(backend, qkv, table, b, t, shape, offset, inverse: false);
        Approx.Equal(expected, actual, 1e-6f, 1e-5f, "rotated qkv");

        int vStart = (nh + nkv) * hs;
        for (int row = 0; row < b * t; row++)
        {
            int v = (row * shape.QkvChannels) + vStart;
            Approx.BitEqual(qkv.AsSpan(v, nkv * hs), actual.AsSpan(v, nkv * hs), "v heads");
        }
    }

    [Fact]
    public void Position_zero_is_the_identity()
    {
        var shape = new AttentionShape(2, 1, 16);
        float[] qkv = TestData.Uniform(21, shape.QkvChannels);
        Approx.BitEqual(qkv, Run(backend, qkv, Table(16), 1, 1, shape, 0, inverse: false), "position 0");
    }

    [Theory]
    [InlineData(2, 9, 4, 4, 12, 0)]
    [InlineData(2, 13, 6, 2, 64, 17)]
    public void Backward_is_the_transpose_of_forward(int b, int t, int nh, int nkv, int hs, int offset)
    {
        // ⟨R x, y⟩ = ⟨x, Rᵀ y⟩ for random x, y: the backward must be the adjoint of the forward rotation.
        var shape = new AttentionShape(nh, nkv, hs);
        float[] table = Table(hs);
        float[] x = TestData.Uniform(22, b * t * shape.QkvChannels);
        float[] y = TestData.Uniform(23, x.Length);
        float[] rx = Run(backend, x, table, b, t, shape, offset, inverse: false);
        float[] rty = Run(backend, y, table, b, t, shape, offset, inverse: true);
        double left = 0, right = 0, scale = 0;
        for (int i = 0; i < x.Length; i++)
        {
            left += (double)rx[i] * y[i];
            right += (double)x[i] * rty[i];
            scale += Math.Abs((double)x[i] * y[i]);
        }

        Assert.True(Math.Abs(left - right) <= 1e-6 * scale, $"<Rx,y> = {left}, <x,R^T y> = {right}");

        float[] expected = (float[])y.Clone();
        AttentionReference.Rope(expected, table, b, t, shape, offset, inverse: true);
        Approx.Equal(expected, rty, 1e-6f, 1e-5f, "inverse rotation");
        Approx.Equal(x, Run(backend, rx, table, b, t, shape, offset, inverse: true), 1e-6f, 1e-5f, "R^T R x");
    }

    [Fact]
    public void Results_are_identical_for_any_thread_count()
    {
        var shape = new AttentionShape(12, 4, 20);
        int b = 3, t = 50;
        float[] table = Table(20);
        float[] qkv = TestData.Uniform(24, b * t * shape.QkvChannels);
        float[]? first = null;
        foreach (var cpu in TestData.ThreadVariants())
        {
            using (cpu)
            {
                float[] forward = Run(cpu, qkv, table, b, t, shape, 7, inverse: false);
                float[] both = Run(cpu, forward, table, b, t, shape, 7, inverse: true);
                float[] result = [.. forward, .. both];
                if (first is null)
                {
                    first = result;
                }
                else
                {
                    Approx.BitEqual(first, result, $"{cpu.ThreadCount} threads");
                }
            }
        }
    }

    [Fact]
    public void Odd_head_size_and_short_table_are_rejected()
    {
        float[] odd = TestData.Uniform(25, 3 * 9);
        Assert.Throws<ArgumentException>(() => Run(backend, odd, new float[MaxT * 9], 1, 1, new AttentionShape(1, 1, 9), 0, inverse: false));
        float[] qkv = TestData.Uniform(26, 3 * 8 * 10);
        Assert.Throws<ArgumentException>(() => Run(backend, qkv, Table(8), 1, 10, new AttentionShape(1, 1, 8), MaxT - 5, inverse: false));
    }

    private static float[] Table(int hs)
    {
        var table = new float[MaxT * hs];
        RopeTables.Fill(table, MaxT, hs, 10000.0);
        return table;
    }

    private static float[] Run(CpuBackend cpu, float[] qkv, float[] table, int b, int t, AttentionShape shape, int offset, bool inverse)
    {
        var x = TestData.Upload(cpu, qkv, b, t, shape.QkvChannels);
        var tab = TestData.Upload(cpu, table, MaxT, shape.HeadSize);
        try
        {
            if (inverse)
            {
                cpu.RopeBackward(x, tab, shape, offset);
            }
            else
            {
                cpu.RopeForward(x, tab, shape, offset);
            }

            return TestData.Download(cpu, x);
        }
        finally
        {
            x.Buffer!.Dispose();
            tab.Buffer!.Dispose();
        }
    }
}
