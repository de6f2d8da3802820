using Engine.Core.Backends;
using Engine.Core.Cpu;
using Engine.Core.Tensors;
using Engine.Tests.Reference;
using Engine.Tests.Support;
using Xunit;

namespace Engine.Tests.Cpu;

[Trait("Category", "Kernels")]
public sealed class OptimizerTests : IDisposable
{
    private readonly CpuBackend cpu = new(2);

    public static TheoryData<int, float, float> AdamWCases
    {
        get
        {
            var data = new TheoryData<int, float, float>();
            foreach (int n in new[] { 1, 3, 7, 16, 33, 257, CpuBackend.ElementChunk + 5 })
            {
                data.Add(n, 0f, 1f);
                data.Add(n, 0.1f, 0.37f);
            }

            return data;
        }
    }

    public void Dispose() => cpu.Dispose();

    [Theory]
    [MemberData(nameof(AdamWCases))]
    public void AdamW_follows_torch_semantics_over_several_steps(int n, float weightDecay, float gradScale)
    {
        var p0 = TestData.Uniform(200, n);
        var p = TestData.Upload(cpu, p0, n);
        var m = cpu.AllocateTensor(DType.F32, n);
        var v = cpu.AllocateTensor(DType.F32, n);
        var rp = Array.ConvertAll(p0, x => (double)x);
        var rm = new double[n];
        var rv = new double[n];
        for (int step = 1; step <= 5; step++)
        {
            var grad = TestData.Uniform(200 + step, n, -2f, 2f);
            var h = new AdamWParameters(1e-2f, 0.9f, 0.95f, 1e-8f, weightDecay, step, gradScale);
            cpu.AdamW(p, TestData.Upload(cpu, grad, n), m, v, h);
            ScalarKernels.AdamW(rp, grad, rm, rv, h);
        }

        Approx.Equal(ScalarKernels.ToFloat(rp), TestData.Download(cpu, p), 1e-6f, 1e-5f, "params");
        Approx.Equal(ScalarKernels.ToFloat(rm), TestData.Download(cpu, m), 1e-7f, 1e-5f, "first moment");
        Approx.Equal(ScalarKernels.ToFloat(rv), TestData.Download(cpu, v), 1e-8f, 1e-5f, "second moment");
    }

    [Fact]
    public void AdamW_first_step_is_bias_corrected_to_a_sign_step()
    {
        // With m = v = 0, m̂ = g and v̂ = g², so the update is η·sign(g) whatever β₁, β₂ are.
        const int n = 40;
        const float lr = 1e-3f, wd = 0.1f;
        var p0 = TestData.Uniform(210, n);
        var grad = TestData.Uniform(211, n, -3f, 3f);
        var p = TestData.Upload(cpu, p0, n);
        cpu.AdamW(p, TestData.Upload(cpu, grad, n), cpu.AllocateTensor(DType.F32, n), cpu.AllocateTensor(DType.F32, n),
            new AdamWParameters(lr, 0.9f, 0.999f, 1e-8f, wd, 1, 2f));
        var expected = new float[n];
        for (int i = 0; i < n; i++)
        {
            expected[i] = (float)((p0[i] * (1 - ((double)lr * wd))) - (lr * Math.Sign(grad[i])));
        }

        Approx.Equal(expected, TestData.Download(cpu, p), 1e-7f, 1e-5f, "first step");
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(15)]
    [InlineData(17)]
    [InlineData(100_003)]
    public void SquaredNorm_matches_double_reference(int n)
    {
        var x = TestData.Uniform(220, n, -3f, 3f);
        double got = cpu.SquaredNorm(TestData.Upload(cpu, x, n));
        double expected = ScalarKernels.SquaredNorm(x);
        Assert.True(Math.Abs(got - expected) <= 1e-12 * Math.Max(1, expected), $"{got:R} vs {expected:R}");
    }

    [Fact]
    public void SquaredNorm_spans_several_partial_groups_and_is_identical_across_thread_counts()
    {
        // More than 1024 chunks, so the partials are reduced in more than one group.
        int n = (1025 * CpuBackend.ElementChunk) + 7;
        var x = TestData.Uniform(230, n);
        double expected = ScalarKernels.SquaredNorm(x);
        double? first = null;
        foreach (var backend in TestData.ThreadVariants())
        {
            using (backend)
            {
                var t = TestData.Upload(backend, x, n);
                double got = backend.SquaredNorm(t);
                t.Buffer!.Dispose();
                Assert.True(Math.Abs(got - expected) <= 1e-11 * expected, $"{got:R} vs {expected:R}");
                first ??= got;
                Assert.Equal(BitConverter.DoubleToInt64Bits(first.Value), BitConverter.DoubleToInt64Bits(got));
            }
        }
    }
}
