using Engine.Core.Backends;
using Engine.Core.Cpu;
using Engine.Tests.Reference;
using Engine.Tests.Support;
using Xunit;

namespace Engine.Tests.Cpu;

[Trait("Category", "Kernels")]
public sealed class AttentionTests : IDisposable
{
    private readonly CpuBackend backend = new(2);

    /// <summary>B, T, NH, NKV, HS: every head layout and head size at every listed T, plus T past one key and query tile.</summary>
    public static TheoryData<int, int, int, int, int> Shapes()
    {
        var data = new TheoryData<int, int, int, int, int>();
        (int Nh, int Nkv)[] heads = [(1, 1), (4, 4), (6, 2), (4, 1)];
        int[] sizes = [8, 12, 64];
        int[] steps = [1, 2, 7, 16, 33];
        int n = 0;
        foreach (var (nh, nkv) in heads)
        {
            foreach (int hs in sizes)
            {
                foreach (int t in steps)
                {
                    data.Add((n++ % 3) + 1, t, nh, nkv, hs);
                }
            }
        }

        data.Add(2, 100, 6, 2, 20);
        data.Add(1, 150, 4, 1, 64);
        data.Add(1, 70, 2, 2, 16);
        return data;
    }

    public void Dispose() => backend.Dispose();

    [Theory]
    [MemberData(nameof(Shapes))]
    public void Forward_matches_reference(int b, int t, int nh, int nkv, int hs)
    {
        var shape = new AttentionShape(nh, nkv, hs);
        float[] qkv = TestData.Uniform(1, b * t * shape.QkvChannels, -2f, 2f);
        var (expectedOut, expectedLse) = AttentionReference.Forward(qkv, b, t, shape);
        var (output, lse) = Forward(backend, qkv, b, t, shape);
        Approx.Equal(expectedOut, output, 2e-5f, 1e-4f, "out");
        Approx.Equal(expectedLse, lse, 2e-5f, 1e-5f, "lse");
    }

    [Theory]
    [MemberData(nameof(Shapes))]
    public void Backward_matches_reference(int b, int t, int nh, int nkv, int hs)
    {
        var shape = new AttentionShape(nh, nkv, hs);
        float[] qkv = TestData.Uniform(2, b * t * shape.QkvChannels, -2f, 2f);
        float[] dout = TestData.Uniform(3, b * t * shape.OutChannels);
        float[] expected = AttentionReference.Backward(dout, qkv, b, t, shape);
        float[] grad = Backward(backend, qkv, dout, new float[qkv.Length], b, t, shape);
        Approx.Equal(expected, grad, 1e-4f, 1e-3f, "dqkv");
        Approx.RelativeNorm(expected, grad, 1e-5, "dqkv");
    }

    [Fact]
    public void Large_scores_stay_finite_and_accurate()
    {
        var shape = new AttentionShape(2, 1, 64);
        int b = 1, t = 90;
        float[] qkv = TestData.Uniform(4, b * t * shape.QkvChannels, -6f, 6f);
        var (expectedOut, expectedLse) = AttentionReference.Forward(qkv, b, t, shape);
        var (output, lse) = Forward(backend, qkv, b, t, shape);
        Approx.Equal(expectedOut, output, 1e-4f, 1e-4f, "out");
        Approx.Equal(expectedLse, lse, 1e-3f, 1e-5f, "lse");

        float[] dout = TestData.Uniform(5, b * t * shape.OutChannels);
        Approx.RelativeNorm(AttentionReference.Backward(dout, qkv, b, t, shape), Backward(backend, qkv, dout, new float[qkv.Length], b, t, shape), 1e-4, "dqkv");
    }

    [Theory]
    [InlineData(1, 5, 1, 1, 8)]
    [InlineData(2, 4, 4, 2, 8)]
    [InlineData(1, 6, 4, 1, 12)]
    public void Backward_matches_finite_differences(int b, int t, int nh, int nkv, int hs)
    {
        var shape = new AttentionShape(nh, nkv, hs);
        float[] qkv = TestData.Uniform(6, b * t * shape.QkvChannels);
        float[] w = TestData.Uniform(7, b * t * shape.OutChannels);
        double Loss(float[] x)
        {
            var (output, _) = Forward(backend, x, b, t, shape);
            double sum = 0;
            for (int i = 0; i < output.Length; i++)
            {
                sum += (double)output[i] * w[i];
            }

            return sum;
        }

        double[] numeric = FiniteDifference.Gradient(Loss, qkv, 1e-2f);
        float[] analytic = Backward(backend, qkv, w, new float[qkv.Length], b, t, shape);
        FiniteDifference.AssertClose(numeric, analytic, 2e-3, 1e-2, "dqkv");
    }

    [Fact]
    public void Backward_adds_into_the_gradient()
    {
        var shape = new AttentionShape(6, 2, 12);
        int b = 2, t = 40;
        float[] qkv = TestData.Uniform(8, b * t * shape.QkvChannels);
        float[] dout = TestData.Uniform(9, b * t * shape.OutChannels);
        float[] prefill = TestData.Uniform(10, qkv.Length, -3f, 3f);
        float[] fresh = Backward(backend, qkv, dout, new float[qkv.Length], b, t, shape);
        float[] added = Backward(backend, qkv, dout, (float[])prefill.Clone(), b, t, shape);
        var expected = new float[qkv.Length];
        for (int i = 0; i < expected.Length; i++)
        {
            expected[i] = prefill[i] + fresh[i];
        }

        Approx.Equal(expected, added, 1e-5f, 1e-5f, "prefilled dqkv");
    }

    [Fact]
    public void Future_keys_and_values_do_not_change_earlier_outputs()
    {
        var shape = new AttentionShape(4, 2, 16);
        int b = 2, t = 80, changed = 45;
        float[] qkv = TestData.Uniform(11, b * t * shape.QkvChannels);
        var (before, lseBefore) = Forward(backend, qkv, b, t, shape);
        float[] noise = TestData.Uniform(12, 2 * shape.NumKvHeads * shape.HeadSize, -5f, 5f);
        for (int bi = 0; bi < b; bi++)
        {
            int kv = (((bi * t) + changed) * shape.QkvChannels) + (shape.NumHeads * shape.HeadSize);
            noise.CopyTo(qkv, kv);
        }

        var (after, lseAfter) = Forward(backend, qkv, b, t, shape);
        for (int bi = 0; bi < b; bi++)
        {
            int rowsBefore = ((bi * t) + changed) * shape.OutChannels;
            Approx.BitEqual(before.AsSpan(bi * t * shape.OutChannels, changed * shape.OutChannels), after.AsSpan(bi * t * shape.OutChannels, changed * shape.OutChannels), "earlier outputs");
            Assert.NotEqual(before[rowsBefore], after[rowsBefore]);
            for (int h = 0; h < shape.NumHeads; h++)
            {
                int row = ((bi * shape.NumHeads) + h) * t;
                Approx.BitEqual(lseBefore.AsSpan(row, changed), lseAfter.AsSpan(row, changed), "earlier lse");
            }
        }
    }

    [Theory]
    [InlineData(2, 150, 6, 2, 20)]
    [InlineData(3, 70, 4, 4, 64)]
    public void Results_are_identical_for_any_thread_count(int b, int t, int nh, int nkv, int hs)
    {
        var shape = new AttentionShape(nh, nkv, hs);
        float[] qkv = TestData.Uniform(13, b * t * shape.QkvChannels, -2f, 2f);
        float[] dout = TestData.Uniform(14, b * t * shape.OutChannels);
        float[] prefill = TestData.Uniform(15, qkv.Length);
        float[]? out0 = null, lse0 = null, grad0 = null;
        foreach (var cpu in TestData.ThreadVariants())
        {
            using (cpu)
            {
                var (output, lse) = Forward(cpu, qkv, b, t, shape);
                float[] grad = Backward(cpu, qkv, dout, (float[])prefill.Clone(), b, t, shape);
                if (out0 is null)
                {
                    (out0, lse0, grad0) = (output, lse, grad);
                }
                else
                {
                    Approx.BitEqual(out0, output, $"out, {cpu.ThreadCount} threads");
                    Approx.BitEqual(lse0, lse, $"lse, {cpu.ThreadCount} threads");
                    Approx.BitEqual(grad0, grad, $"dqkv, {cpu.ThreadCount} threads");
                }
            }
        }
    }

    /// <summary>Runs the kernel forward on host data; returns (out, lse).</summary>
    internal static (float[] Out, float[] Lse) Forward(CpuBackend cpu, float[] qkv, int b, int t, AttentionShape shape)
    {
        var x = TestData.Upload(cpu, qkv, b, t, shape.QkvChannels);
        var output = cpu.AllocateTensor(Engine.Core.Tensors.DType.F32, b, t, shape.OutChannels);
        var lse = cpu.AllocateTensor(Engine.Core.Tensors.DType.F32, b, shape.NumHeads, t);
        try
        {
            cpu.AttentionForward(output, lse, x, shape);
            return (TestData.Download(cpu, output), TestData.Download(cpu, lse));
        }
        finally
        {
            x.Buffer!.Dispose();
            output.Buffer!.Dispose();
            lse.Buffer!.Dispose();
        }
    }

    /// <summary>Runs forward then backward on host data, adding into <paramref name="grad"/>; returns the new gradient.</summary>
    private static float[] Backward(CpuBackend cpu, float[] qkv, float[] dout, float[] grad, int b, int t, AttentionShape shape)
    {
        var x = TestData.Upload(cpu, qkv, b, t, shape.QkvChannels);
        var dx = TestData.Upload(cpu, grad, b, t, shape.QkvChannels);
        var dy = TestData.Upload(cpu, dout, b, t, shape.OutChannels);
        var output = cpu.AllocateTensor(Engine.Core.Tensors.DType.F32, b, t, shape.OutChannels);
        var lse = cpu.AllocateTensor(Engine.Core.Tensors.DType.F32, b, shape.NumHeads, t);
        try
        {
            cpu.AttentionForward(output, lse, x, shape);
            cpu.AttentionBackward(dx, dy, x, output, lse, shape);
            return TestData.Download(cpu, dx);
        }
        finally
        {
            foreach (var tensor in new[] { x, dx, dy, output, lse })
            {
                tensor.Buffer!.Dispose();
            }
        }
    }
}
