using Engine.Core.Backends;
using Engine.Core.Cpu;
using Engine.Core.Tensors;
using Engine.Tests.Support;
using Xunit;

namespace Engine.Tests.Cpu;

public sealed class MatmulTests : IDisposable
{
    private readonly CpuBackend backend = new(2);

    public void Dispose() => backend.Dispose();

    public static TheoryData<int, int, int, bool, bool> Cases()
    {
        var data = new TheoryData<int, int, int, bool, bool>();
        foreach (var (n, c, oc) in new[] { (1, 1, 1), (5, 7, 3), (64, 33, 65), (17, 100, 129), (40, 300, 70), (1, 77, 130), (4, 64, 200), (3, 15, 64) })
        {
            foreach (bool outIn in new[] { true, false })
            {
                foreach (bool bias in new[] { true, false })
                {
                    data.Add(n, c, oc, outIn, bias);
                }
            }
        }

        return data;
    }

    /// <summary>W[o,i] whichever way it is stored.</summary>
    private static double W(float[] w, int o, int i, int c, int oc, bool outIn) => outIn ? w[(o * c) + i] : w[(i * oc) + o];

    private static float[] ForwardReference(float[] inp, float[] w, float[]? bias, int n, int c, int oc, bool outIn)
    {
        var outp = new float[n * oc];
        for (int r = 0; r < n; r++)
        {
            for (int o = 0; o < oc; o++)
            {
                double sum = bias?[o] ?? 0;
                for (int i = 0; i < c; i++)
                {
                    sum += inp[(r * c) + i] * W(w, o, i, c, oc, outIn);
                }

                outp[(r * oc) + o] = (float)sum;
            }
        }

        return outp;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Forward_matches_the_reference(int n, int c, int oc, bool outIn, bool withBias)
    {
        var layout = outIn ? WeightLayout.OutIn : WeightLayout.InOut;
        var inp = TestData.Uniform(1, n * c);
        var w = TestData.Uniform(2, oc * c);
        var bias = withBias ? TestData.Uniform(3, oc) : null;
        var tOut = TestData.Upload(backend, Enumerable.Repeat(float.NaN, n * oc).ToArray(), n, oc);
        backend.MatmulForward(
            tOut,
            TestData.Upload(backend, inp, n, c),
            TestData.Upload(backend, w, outIn ? [oc, c] : [c, oc]),
            bias is null ? default : TestData.Upload(backend, bias, oc),
            layout);
        Approx.Equal(ForwardReference(inp, w, bias, n, c, oc, outIn), TestData.Download(backend, tOut), atol: 1e-5f * (c + 4), what: $"{layout}");
    }

    [Fact]
    public void Forward_takes_a_3d_input()
    {
        const int b = 2, t = 3, c = 20, oc = 34;
        var inp = TestData.Uniform(4, b * t * c);
        var w = TestData.Uniform(5, oc * c);
        var tOut = backend.AllocateTensor(DType.F32, b, t, oc);
        backend.MatmulForward(tOut, TestData.Upload(backend, inp, b, t, c), TestData.Upload(backend, w, oc, c), default, WeightLayout.OutIn);
        Approx.Equal(ForwardReference(inp, w, null, b * t, c, oc, true), TestData.Download(backend, tOut), atol: 1e-4f);
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Backward_adds_the_reference_gradients(int n, int c, int oc, bool outIn, bool withBias)
    {
        var layout = outIn ? WeightLayout.OutIn : WeightLayout.InOut;
        var inp = TestData.Uniform(11, n * c);
        var w = TestData.Uniform(12, oc * c);
        var dout = TestData.Uniform(13, n * oc);
        var dinp0 = TestData.Uniform(14, n * c);
        var dw0 = TestData.Uniform(15, oc * c);
        var db0 = TestData.Uniform(16, oc);

        var dinp = (float[])dinp0.Clone();
        var dw = (float[])dw0.Clone();
        var db = (float[])db0.Clone();
        for (int r = 0; r < n; r++)
        {
            for (int i = 0; i < c; i++)
            {
                double sum = 0;
                for (int o = 0; o < oc; o++)
                {
                    sum += dout[(r * oc) + o] * W(w, o, i, c, oc, outIn);
                }

                dinp[(r * c) + i] += (float)sum;
            }
        }

        for (int o = 0; o < oc; o++)
        {
            double bsum = 0;
            for (int i = 0; i < c; i++)
            {
                double sum = 0;
                for (int r = 0; r < n; r++)
                {
                    sum += dout[(r * oc) + o] * (double)inp[(r * c) + i];
                }

                dw[outIn ? (o * c) + i : (i * oc) + o] += (float)sum;
            }

            for (int r = 0; r < n; r++)
            {
                bsum += dout[(r * oc) + o];
            }

            db[o] += (float)bsum;
        }

        var tInp = TestData.Upload(backend, inp, n, c);
        var tW = TestData.Upload(backend, w, outIn ? [oc, c] : [c, oc]);
        var tDout = TestData.Upload(backend, dout, n, oc);
        var tDinp = TestData.Upload(backend, dinp0, n, c);
        var tDw = TestData.Upload(backend, dw0, outIn ? [oc, c] : [c, oc]);
        var tDb = TestData.Upload(backend, db0, oc);
        backend.MatmulBackward(tDinp, tDw, withBias ? tDb : default, tDout, tInp, tW, layout);
        float atol = 1e-5f * (Math.Max(n, oc) + 4);
        Approx.Equal(dinp, TestData.Download(backend, tDinp), atol: atol, what: "dinp");
        Approx.Equal(dw, TestData.Download(backend, tDw), atol: atol, what: "dW");
        Approx.Equal(withBias ? db : db0, TestData.Download(backend, tDb), atol: atol, what: "dbias");
    }

    [Fact]
    public void Backward_skips_empty_gradients_and_accumulates_over_calls()
    {
        const int n = 9, c = 13, oc = 21;
        var inp = TestData.Upload(backend, TestData.Uniform(21, n * c), n, c);
        var w = TestData.Upload(backend, TestData.Uniform(22, oc * c), oc, c);
        var dout = TestData.Upload(backend, TestData.Uniform(23, n * oc), n, oc);

        var dwOnce = backend.AllocateTensor(DType.F32, oc, c);
        backend.MatmulBackward(default, dwOnce, default, dout, inp, w, WeightLayout.OutIn);
        var dbOnly = backend.AllocateTensor(DType.F32, oc);
        backend.MatmulBackward(default, default, dbOnly, dout, inp, w, WeightLayout.OutIn);
        var dinpOnly = backend.AllocateTensor(DType.F32, n, c);
        backend.MatmulBackward(dinpOnly, default, default, dout, inp, w, WeightLayout.OutIn);

        var dwTwice = backend.AllocateTensor(DType.F32, oc, c);
        backend.MatmulBackward(default, dwTwice, default, dout, inp, w, WeightLayout.OutIn);
        backend.MatmulBackward(default, dwTwice, default, dout, inp, w, WeightLayout.OutIn);
        var once = TestData.Download(backend, dwOnce);
        Approx.Equal(once.Select(x => 2 * x).ToArray(), TestData.Download(backend, dwTwice), atol: 1e-5f, what: "dW twice");
        Assert.Contains(TestData.Download(backend, dbOnly), x => x != 0);
        Assert.Contains(TestData.Download(backend, dinpOnly), x => x != 0);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void Backward_agrees_with_finite_differences(bool outIn)
    {
        const int n = 4, c = 6, oc = 5;
        var layout = outIn ? WeightLayout.OutIn : WeightLayout.InOut;
        long[] wDims = outIn ? [oc, c] : [c, oc];
        var inp = TestData.Uniform(31, n * c);
        var w = TestData.Uniform(32, oc * c);
        var bias = TestData.Uniform(33, oc);
        var probe = TestData.Uniform(34, n * oc);
        var tOut = backend.AllocateTensor(DType.F32, n, oc);

        // L = Σ out ⊙ probe, so dL/dout = probe.
        double Loss(float[] x, float[] wv, float[] bv)
        {
            backend.MatmulForward(tOut, TestData.Upload(backend, x, n, c), TestData.Upload(backend, wv, wDims), TestData.Upload(backend, bv, oc), layout);
            var o = TestData.Download(backend, tOut);
            return o.Select((v, i) => (double)v * probe[i]).Sum();
        }

        var dinp = backend.AllocateTensor(DType.F32, n, c);
        var dw = backend.AllocateTensor(DType.F32, wDims);
        var db = backend.AllocateTensor(DType.F32, oc);
        backend.MatmulBackward(
            dinp, dw, db, TestData.Upload(backend, probe, n, oc), TestData.Upload(backend, inp, n, c), TestData.Upload(backend, w, wDims), layout);

        FiniteDifference.AssertClose(
            FiniteDifference.Gradient(x => Loss(x, w, bias), inp), TestData.Download(backend, dinp), 2e-3, 2e-3, "dinp");
        FiniteDifference.AssertClose(
            FiniteDifference.Gradient(x => Loss(inp, x, bias), w), TestData.Download(backend, dw), 2e-3, 2e-3, "dW");
        FiniteDifference.AssertClose(
            FiniteDifference.Gradient(x => Loss(inp, w, x), bias), TestData.Download(backend, db), 2e-3, 2e-3, "dbias");
    }

    [Fact]
    public void Forward_and_backward_are_bitwise_identical_for_1_2_and_3_threads()
    {
        const int n = 70, c = 300, oc = 530;
        var inp = TestData.Uniform(41, n * c);
        var w = TestData.Uniform(42, oc * c);
        var bias = TestData.Uniform(43, oc);
        var dout = TestData.Uniform(44, n * oc);
        float[][]? first = null;
        foreach (var cpu in TestData.ThreadVariants())
        {
            using (cpu)
            {
                var tInp = TestData.Upload(cpu, inp, n, c);
                var tW = TestData.Upload(cpu, w, oc, c);
                var tOut = cpu.AllocateTensor(DType.F32, n, oc);
                cpu.MatmulForward(tOut, tInp, tW, TestData.Upload(cpu, bias, oc), WeightLayout.OutIn);
                var dinp = cpu.AllocateTensor(DType.F32, n, c);
                var dw = cpu.AllocateTensor(DType.F32, oc, c);
                var db = cpu.AllocateTensor(DType.F32, oc);
                cpu.MatmulBackward(dinp, dw, db, TestData.Upload(cpu, dout, n, oc), tInp, tW, WeightLayout.OutIn);
                float[][] results = [TestData.Download(cpu, tOut), TestData.Download(cpu, dinp), TestData.Download(cpu, dw), TestData.Download(cpu, db)];
                if (first is null)
                {
                    first = results;
                }
                else
                {
                    for (int i = 0; i < results.Length; i++)
                    {
                        Approx.BitEqual(first[i], results[i], $"result {i} with {cpu.ThreadCount} threads");
                    }
                }
            }
        }
    }
}
