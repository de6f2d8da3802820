using Engine.Core.Cpu;
using Engine.Core.Tensors;
using Engine.Tests.Reference;
using Engine.Tests.Support;
using Xunit;

namespace Engine.Tests.Cpu;

[Trait("Category", "Kernels")]
public sealed class ActivationTests : IDisposable
{
    private readonly CpuBackend cpu = new(2);

    /// <summary>The shared lengths plus a few that cross the element chunk, leaving a last chunk shorter than a vector.</summary>
    public static TheoryData<int> Lengths
    {
        get
        {
            var data = new TheoryData<int>();
            foreach (int n in TestData.Lengths.Concat([CpuBackend.ElementChunk + 3, (2 * CpuBackend.ElementChunk) + 21]))
            {
                data.Add(n);
            }

            return data;
        }
    }

    public static TheoryData<int, int> SwiGluShapes => new() { { 1, 1 }, { 2, 3 }, { 3, 4 }, { 3, 7 }, { 2, 16 }, { 4, 33 }, { 2, 257 }, { 3, 768 } };

    public void Dispose() => cpu.Dispose();

    [Theory]
    [MemberData(nameof(Lengths))]
    public void Gelu_forward_and_backward_match_reference(int n)
    {
        var x = TestData.Uniform(n, n, -6f, 6f);
        var y = cpu.AllocateTensor(DType.F32, n);
        var xt = TestData.Upload(cpu, x, n);
        cpu.GeluForward(y, xt);
        Approx.Equal(ScalarKernels.ToFloat(ScalarKernels.Gelu(x)), TestData.Download(cpu, y), 1e-6f, 1e-5f, "gelu");

        cpu.GeluForward(xt, xt);
        Approx.Equal(ScalarKernels.ToFloat(ScalarKernels.Gelu(x)), TestData.Download(cpu, xt), 1e-6f, 1e-5f, "gelu in place");

        var dy = TestData.Uniform(n + 1, n);
        var dx0 = TestData.Uniform(n + 2, n);
        var dx = TestData.Upload(cpu, dx0, n);
        cpu.GeluBackward(dx, TestData.Upload(cpu, dy, n), TestData.Upload(cpu, x, n));
        Approx.Equal(ScalarKernels.Plus(dx0, ScalarKernels.GeluBackward(dy, x)), TestData.Download(cpu, dx), 1e-6f, 1e-5f, "dinp");
    }

    [Fact]
    public void Gelu_saturates_without_nan()
    {
        float[] x = [-1e30f, -1e4f, -100f, -10f, 0f, 10f, 100f, 1e4f, 1e30f, -0f, 1e-30f, -1e-30f, 3f, -3f, 0.5f, -0.5f, 20f];
        var y = cpu.AllocateTensor(DType.F32, x.Length);
        cpu.GeluForward(y, TestData.Upload(cpu, x, x.Length));
        Approx.Equal(ScalarKernels.ToFloat(ScalarKernels.Gelu(x)), TestData.Download(cpu, y), 1e-6f, 1e-5f, "gelu extremes");
        var ones = Enumerable.Repeat(1f, x.Length).ToArray();
        var dx = cpu.AllocateTensor(DType.F32, x.Length);
        cpu.GeluBackward(dx, TestData.Upload(cpu, ones, x.Length), TestData.Upload(cpu, x, x.Length));
        Approx.Equal(ScalarKernels.ToFloat(ScalarKernels.GeluBackward(ones, x)), TestData.Download(cpu, dx), 1e-6f, 1e-5f, "gelu' extremes");
    }

    [Fact]
    public void Gelu_backward_matches_finite_differences()
    {
        const int n = 37;
        var x = TestData.Uniform(40, n, -4f, 4f);
        var proj = TestData.Uniform(41, n);
        var dx = TestData.Upload(cpu, new float[n], n);
        cpu.GeluBackward(dx, TestData.Upload(cpu, proj, n), TestData.Upload(cpu, x, n));
        var numeric = FiniteDifference.Gradient(xx => KernelTests.Dot(ScalarKernels.Gelu(xx), proj), x, 1e-3f);
        FiniteDifference.AssertClose(numeric, TestData.Download(cpu, dx), 1e-3, 1e-3, "gelu dinp");
    }

    [Theory]
    [MemberData(nameof(SwiGluShapes))]
    public void SwiGlu_forward_and_backward_match_reference(int n, int f)
    {
        var x = TestData.Uniform(50 + f, n * 2 * f, -5f, 5f);
        var y = cpu.AllocateTensor(DType.F32, n, f);
        cpu.SwiGluForward(y, TestData.Upload(cpu, x, n, 2 * f));
        Approx.Equal(ScalarKernels.ToFloat(ScalarKernels.SwiGlu(x, n, f)), TestData.Download(cpu, y), 1e-6f, 1e-5f, "swiglu");

        var dy = TestData.Uniform(51 + f, n * f);
        var dx0 = TestData.Uniform(52 + f, n * 2 * f);
        var dx = TestData.Upload(cpu, dx0, n, 2 * f);
        cpu.SwiGluBackward(dx, TestData.Upload(cpu, dy, n, f), TestData.Upload(cpu, x, n, 2 * f));
        Approx.Equal(ScalarKernels.Plus(dx0, ScalarKernels.SwiGluBackward(dy, x, n, f)), TestData.Download(cpu, dx), 1e-5f, 1e-5f, "dinp");
    }

    [Fact]
    public void SwiGlu_backward_matches_finite_differences()
    {
        const int n = 3, f = 11;
        var x = TestData.Uniform(60, n * 2 * f, -3f, 3f);
        var proj = TestData.Uniform(61, n * f);
        var dx = TestData.Upload(cpu, new float[n * 2 * f], n, 2 * f);
        cpu.SwiGluBackward(dx, TestData.Upload(cpu, proj, n, f), TestData.Upload(cpu, x, n, 2 * f));
        var numeric = FiniteDifference.Gradient(xx => KernelTests.Dot(ScalarKernels.SwiGlu(xx, n, f), proj), x, 1e-3f);
        FiniteDifference.AssertClose(numeric, TestData.Download(cpu, dx), 1e-3, 1e-3, "swiglu dinp");
    }

    [Theory]
    [MemberData(nameof(Lengths))]
    public void Dropout_forward_and_backward_match_reference(int n)
    {
        const float p = 0.3f;
        const ulong seed = 1234, offset = 77;
        var x = TestData.Uniform(70, n);
        var y = cpu.AllocateTensor(DType.F32, n);
        cpu.DropoutForward(y, TestData.Upload(cpu, x, n), p, seed, offset);
        Approx.Equal(ScalarKernels.ToFloat(ScalarKernels.Dropout(x, p, seed, offset)), TestData.Download(cpu, y), 1e-7f, 1e-6f, "dropout");

        var dy = TestData.Uniform(71, n);
        var dx0 = TestData.Uniform(72, n);
        var dx = TestData.Upload(cpu, dx0, n);
        cpu.DropoutBackward(dx, TestData.Upload(cpu, dy, n), p, seed, offset);
        Approx.Equal(ScalarKernels.Plus(dx0, ScalarKernels.Dropout(dy, p, seed, offset)), TestData.Download(cpu, dx), 1e-6f, 1e-6f, "dinp");
    }

    [Fact]
    public void Dropout_with_zero_probability_is_identity()
    {
        const int n = 1000;
        var x = TestData.Uniform(80, n);
        var y = cpu.AllocateTensor(DType.F32, n);
        cpu.DropoutForward(y, TestData.Upload(cpu, x, n), 0f, 5, 0);
        Approx.BitEqual(x, TestData.Download(cpu, y), "p = 0 forward");

        var xt = TestData.Upload(cpu, x, n);
        cpu.DropoutForward(xt, xt, 0f, 5, 0);
        Approx.BitEqual(x, TestData.Download(cpu, xt), "p = 0 in place");

        var dx0 = TestData.Uniform(81, n);
        var dx = TestData.Upload(cpu, dx0, n);
        cpu.DropoutBackward(dx, TestData.Upload(cpu, x, n), 0f, 5, 0);
        Approx.BitEqual(dx0.Zip(x, (a, b) => a + b).ToArray(), TestData.Download(cpu, dx), "p = 0 backward");
    }

    [Theory]
    [InlineData(0.1f)]
    [InlineData(0.5f)]
    [InlineData(0.9f)]
    public void Dropout_keeps_about_one_minus_p_and_scales_the_kept(float p)
    {
        const int n = 100_000;
        var ones = Enumerable.Repeat(1f, n).ToArray();
        var y = cpu.AllocateTensor(DType.F32, n);
        cpu.DropoutForward(y, TestData.Upload(cpu, ones, n), p, 42, 0);
        var got = TestData.Download(cpu, y);
        int kept = got.Count(v => v != 0f);
        Assert.All(got, v => Assert.True(v == 0f || v == 1f / (1f - p)));
        double rate = kept / (double)n;
        double sigma = Math.Sqrt(p * (1 - p) / n);
        Assert.InRange(rate, 1 - p - (5 * sigma), 1 - p + (5 * sigma));
    }

    [Fact]
    public void Dropout_masks_follow_seed_and_offset()
    {
        const int n = 4096;
        const float p = 0.5f;
        var ones = TestData.Upload(cpu, Enumerable.Repeat(1f, n).ToArray(), n);
        float[] Mask(ulong seed, ulong offset)
        {
            var y = cpu.AllocateTensor(DType.F32, n);
            cpu.DropoutForward(y, ones, p, seed, offset);
            return TestData.Download(cpu, y);
        }

        var a = Mask(9, 100);
        Approx.BitEqual(a, Mask(9, 100), "same seed and offset");
        Assert.NotEqual(a, Mask(9, 100 + n));
        Assert.NotEqual(a, Mask(10, 100));

        // Element i of a call at offset k is element k + i of the stream: a shifted call sees the same mask shifted.
        var shifted = Mask(9, 103);
        Approx.BitEqual(a.AsSpan(3).ToArray(), shifted.AsSpan(0, n - 3).ToArray(), "offset is a flat index");

        // Backward applies exactly the forward's mask.
        var dy = TestData.Uniform(90, n, 0.5f, 1f);
        var dx = cpu.AllocateTensor(DType.F32, n);
        cpu.DropoutBackward(dx, TestData.Upload(cpu, dy, n), p, 9, 100);
        var grad = TestData.Download(cpu, dx);
        for (int i = 0; i < n; i++)
        {
            Assert.Equal(a[i] != 0f, grad[i] != 0f);
        }
    }

    [Fact]
    public void Dropout_backward_matches_finite_differences()
    {
        const int n = 50;
        const float p = 0.4f;
        var x = TestData.Uniform(91, n);
        var proj = TestData.Uniform(92, n);
        var dx = TestData.Upload(cpu, new float[n], n);
        cpu.DropoutBackward(dx, TestData.Upload(cpu, proj, n), p, 3, 11);
        var numeric = FiniteDifference.Gradient(xx => KernelTests.Dot(ScalarKernels.Dropout(xx, p, 3, 11), proj), x, 1e-2f);
        FiniteDifference.AssertClose(numeric, TestData.Download(cpu, dx), 1e-4, 1e-4, "dropout dinp");
    }
}
