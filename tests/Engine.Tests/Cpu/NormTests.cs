using Engine.Core.Cpu;
using Engine.Core.Tensors;
using Engine.Tests.Reference;
using Engine.Tests.Support;
using Xunit;

namespace Engine.Tests.Cpu;

[Trait("Category", "Kernels")]
public sealed class NormTests : IDisposable
{
    private const float Eps = 1e-5f;
    private readonly CpuBackend cpu = new(2);

    public static TheoryData<int, int> Shapes => new() { { 1, 1 }, { 2, 2 }, { 3, 3 }, { 3, 7 }, { 2, 8 }, { 4, 16 }, { 2, 33 }, { 3, 257 }, { 5, 768 }, { 40, 1024 } };

    public void Dispose() => cpu.Dispose();

    [Theory]
    [MemberData(nameof(Shapes))]
    public void LayerNorm_forward_matches_reference(int n, int c)
    {
        foreach (bool withBias in new[] { true, false })
        {
            var x = TestData.Uniform(1, n * c, -2f, 3f);
            var w = TestData.Uniform(2, c, 0.5f, 1.5f);
            float[]? b = withBias ? TestData.Uniform(3, c) : null;
            var (y, mean, rstd) = LayerNormForward(cpu, x, w, b, n, c);
            var r = ScalarKernels.LayerNorm(x, w, b, n, c, Eps);
            Approx.Equal(ScalarKernels.ToFloat(r.Out), y, 1e-5f, 1e-4f, "out");
            Approx.Equal(ScalarKernels.ToFloat(r.Mean), mean, 1e-6f, 1e-5f, "mean");
            Approx.Equal(ScalarKernels.ToFloat(r.Rstd), rstd, 1e-6f, 1e-4f, "rstd");
        }
    }

    [Theory]
    [MemberData(nameof(Shapes))]
    public void LayerNorm_backward_adds_reference_gradients(int n, int c)
    {
        var x = TestData.Uniform(4, n * c, -2f, 3f);
        var w = TestData.Uniform(5, c, 0.5f, 1.5f);
        var b = TestData.Uniform(6, c);
        var dy = TestData.Uniform(7, n * c);
        var (_, mean, rstd) = LayerNormForward(cpu, x, w, b, n, c);
        var dx0 = TestData.Uniform(8, n * c);
        var dw0 = TestData.Uniform(9, c);
        var db0 = TestData.Uniform(10, c);
        var (dx, dw, db) = LayerNormBackward(cpu, dy, x, w, mean, rstd, dx0, dw0, db0, n, c);
        var r = ScalarKernels.LayerNormBackward(dy, x, w, mean, rstd, n, c);
        Approx.Equal(ScalarKernels.Plus(dx0, r.Dx), dx, 2e-5f, 1e-4f, "dinp");
        Approx.Equal(ScalarKernels.Plus(dw0, r.Dw), dw, 2e-5f * n, 1e-4f, "dweight");
        Approx.Equal(ScalarKernels.Plus(db0, r.Db), db, 2e-5f * n, 1e-4f, "dbias");
    }

    [Fact]
    public void LayerNorm_backward_skips_gradients_that_are_not_wanted()
    {
        const int n = 3, c = 40;
        var x = TestData.Uniform(11, n * c);
        var w = TestData.Uniform(12, c);
        var dy = TestData.Uniform(13, n * c);
        var (_, mean, rstd) = LayerNormForward(cpu, x, w, null, n, c);
        var r = ScalarKernels.LayerNormBackward(dy, x, w, mean, rstd, n, c);
        var db = TestData.Upload(cpu, new float[c], c);
        cpu.LayerNormBackward(
            default, default, db, TestData.Upload(cpu, dy, n, c), TestData.Upload(cpu, x, n, c), TestData.Upload(cpu, w, c),
            TestData.Upload(cpu, mean, n), TestData.Upload(cpu, rstd, n));
        Approx.Equal(ScalarKernels.ToFloat(r.Db), TestData.Download(cpu, db), 1e-5f, 1e-4f, "dbias only");
        var dx = TestData.Upload(cpu, new float[n * c], n, c);
        cpu.LayerNormBackward(
            dx, default, default, TestData.Upload(cpu, dy, n, c), TestData.Upload(cpu, x, n, c), TestData.Upload(cpu, w, c),
            TestData.Upload(cpu, mean, n), TestData.Upload(cpu, rstd, n));
        Approx.Equal(ScalarKernels.ToFloat(r.Dx), TestData.Download(cpu, dx), 1e-5f, 1e-4f, "dinp only");
    }

    [Fact]
    public void LayerNorm_backward_matches_finite_differences()
    {
        const int n = 3, c = 19;
        var x = TestData.Uniform(14, n * c, -2f, 2f);
        var w = TestData.Uniform(15, c, 0.5f, 1.5f);
        var b = TestData.Uniform(16, c);
        var proj = TestData.Uniform(17, n * c);
        double Loss(float[] xx, float[] ww, float[] bb) => KernelTests.Dot(ScalarKernels.LayerNorm(xx, ww, bb, n, c, Eps).Out, proj);
        var (_, mean, rstd) = LayerNormForward(cpu, x, w, b, n, c);
        var (dx, dw, db) = LayerNormBackward(cpu, proj, x, w, mean, rstd, new float[n * c], new float[c], new float[c], n, c);
        FiniteDifference.AssertClose(FiniteDifference.Gradient(xx => Loss(xx, w, b), x, 1e-3f), dx, 2e-3, 2e-3, "dinp");
        FiniteDifference.AssertClose(FiniteDifference.Gradient(ww => Loss(x, ww, b), w, 1e-3f), dw, 2e-3, 2e-3, "dweight");
        FiniteDifference.AssertClose(FiniteDifference.Gradient(bb => Loss(x, w, bb), b, 1e-3f), db, 2e-3, 2e-3, "dbias");
    }

    [Theory]
    [MemberData(nameof(Shapes))]
    public void RmsNorm_forward_and_backward_match_reference(int n, int c)
    {
        var x = TestData.Uniform(20, n * c, -2f, 3f);
        var w = TestData.Uniform(21, c, 0.5f, 1.5f);
        var dy = TestData.Uniform(22, n * c);
        var (y, rstd) = RmsNormForward(cpu, x, w, n, c);
        var r = ScalarKernels.RmsNorm(x, w, n, c, Eps);
        Approx.Equal(ScalarKernels.ToFloat(r.Out), y, 1e-5f, 1e-4f, "out");
        Approx.Equal(ScalarKernels.ToFloat(r.Rstd), rstd, 1e-6f, 1e-4f, "rstd");

        var dx0 = TestData.Uniform(23, n * c);
        var dw0 = TestData.Uniform(24, c);
        var (dx, dw) = RmsNormBackward(cpu, dy, x, w, rstd, dx0, dw0, n, c);
        var rb = ScalarKernels.RmsNormBackward(dy, x, w, rstd, n, c);
        Approx.Equal(ScalarKernels.Plus(dx0, rb.Dx), dx, 2e-5f, 1e-4f, "dinp");
        Approx.Equal(ScalarKernels.Plus(dw0, rb.Dw), dw, 2e-5f * n, 1e-4f, "dweight");
    }

    [Fact]
    public void RmsNorm_backward_matches_finite_differences()
    {
        const int n = 3, c = 21;
        var x = TestData.Uniform(25, n * c, -2f, 2f);
        var w = TestData.Uniform(26, c, 0.5f, 1.5f);
        var proj = TestData.Uniform(27, n * c);
        double Loss(float[] xx, float[] ww) => KernelTests.Dot(ScalarKernels.RmsNorm(xx, ww, n, c, Eps).Out, proj);
        var (_, rstd) = RmsNormForward(cpu, x, w, n, c);
        var (dx, dw) = RmsNormBackward(cpu, proj, x, w, rstd, new float[n * c], new float[c], n, c);
        FiniteDifference.AssertClose(FiniteDifference.Gradient(xx => Loss(xx, w), x, 1e-3f), dx, 2e-3, 2e-3, "dinp");
        FiniteDifference.AssertClose(FiniteDifference.Gradient(ww => Loss(x, ww), w, 1e-3f), dw, 2e-3, 2e-3, "dweight");
    }

    [Fact]
    public void Norm_backward_is_bitwise_identical_across_thread_counts()
    {
        const int n = 300, c = 100;
        var x = TestData.Uniform(30, n * c, -2f, 3f);
        var w = TestData.Uniform(31, c);
        var b = TestData.Uniform(32, c);
        var dy = TestData.Uniform(33, n * c);
        float[][]? first = null;
        foreach (var backend in TestData.ThreadVariants())
        {
            using (backend)
            {
                var (_, mean, rstd) = LayerNormForward(backend, x, w, b, n, c);
                var (dx, dw, db) = LayerNormBackward(backend, dy, x, w, mean, rstd, new float[n * c], new float[c], new float[c], n, c);
                var (_, rr) = RmsNormForward(backend, x, w, n, c);
                var (rdx, rdw) = RmsNormBackward(backend, dy, x, w, rr, new float[n * c], new float[c], n, c);
                float[][] now = [dx, dw, db, rdx, rdw];
                if (first is null)
                {
                    first = now;
                    continue;
                }

                for (int i = 0; i < now.Length; i++)
                {
                    Approx.BitEqual(first[i], now[i], $"output {i} on {backend.ThreadCount} threads");
                }
            }
        }
    }

    private static (float[] Out, float[] Mean, float[] Rstd) LayerNormForward(CpuBackend be, float[] x, float[] w, float[]? b, int n, int c)
    {
        var y = be.AllocateTensor(DType.F32, n, c);
        var mean = be.AllocateTensor(DType.F32, n);
        var rstd = be.AllocateTensor(DType.F32, n);
        be.LayerNormForward(y, mean, rstd, TestData.Upload(be, x, n, c), TestData.Upload(be, w, c), b is null ? default : TestData.Upload(be, b, c), Eps);
        return (TestData.Download(be, y), TestData.Download(be, mean), TestData.Download(be, rstd));
    }

    private static (float[] Dx, float[] Dw, float[] Db) LayerNormBackward(
        CpuBackend be, float[] dy, float[] x, float[] w, float[] mean, float[] rstd, float[] dx0, float[] dw0, float[] db0, int n, int c)
    {
        var dx = TestData.Upload(be, dx0, n, c);
        var dw = TestData.Upload(be, dw0, c);
        var db = TestData.Upload(be, db0, c);
        be.LayerNormBackward(
            dx, dw, db, TestData.Upload(be, dy, n, c), TestData.Upload(be, x, n, c), TestData.Upload(be, w, c),
            TestData.Upload(be, mean, n), TestData.Upload(be, rstd, n));
        return (TestData.Download(be, dx), TestData.Download(be, dw), TestData.Download(be, db));
    }

    private static (float[] Out, float[] Rstd) RmsNormForward(CpuBackend be, float[] x, float[] w, int n, int c)
    {
        var y = be.AllocateTensor(DType.F32, n, c);
        var rstd = be.AllocateTensor(DType.F32, n);
        be.RmsNormForward(y, rstd, TestData.Upload(be, x, n, c), TestData.Upload(be, w, c), Eps);
        return (TestData.Download(be, y), TestData.Download(be, rstd));
    }

    private static (float[] Dx, float[] Dw) RmsNormBackward(
        CpuBackend be, float[] dy, float[] x, float[] w, float[] rstd, float[] dx0, float[] dw0, int n, int c)
    {
        var dx = TestData.Upload(be, dx0, n, c);
        var dw = TestData.Upload(be, dw0, c);
        be.RmsNormBackward(dx, dw, TestData.Upload(be, dy, n, c), TestData.Upload(be, x, n, c), TestData.Upload(be, w, c), TestData.Upload(be, rstd, n));
        return (TestData.Download(be, dx), TestData.Download(be, dw));
    }
}
