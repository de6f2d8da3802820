using Engine.Core.Cpu;
using Engine.Tests.Reference;
using Engine.Tests.Support;
using Xunit;

namespace Engine.Tests.Alignment;

[Trait("Category", "Kernels")]
public sealed class SequenceSumTests
{
    /// <summary>B, T: a single element, odd lengths and rows longer than one work item's share.</summary>
    public static TheoryData<int, int> Shapes() => new() { { 1, 1 }, { 3, 7 }, { 5, 33 }, { 2, 1000 }, { 40, 513 } };

    [Theory]
    [MemberData(nameof(Shapes))]
    public void Matches_reference_with_and_without_mask(int b, int t)
    {
        var values = TestData.Uniform(b + t, b * t, -3f, 3f);
        var mask = RaggedMask(b, t);
        var g = TestData.Uniform(b + t + 1, b);
        var init = TestData.Uniform(b + t + 2, b * t);
        using var backend = new CpuBackend(2);
        foreach (bool mean in new[] { false, true })
        {
            foreach (var m in new[] { mask, null })
            {
                var (output, grad) = LogProbKernels.SequenceSum(backend, values, m, g, b, t, mean, init);
                string what = $"mean={mean} mask={m is not null}";
                Approx.Equal(LogProbKernels.F32(AlignmentReference.SequenceSum(values, m, b, t, mean)), output, 1e-5f, 1e-5f, what + " out");
                var dv = AlignmentReference.SequenceSumBackward(g, m, b, t, mean);
                var expected = new float[b * t];
                for (int i = 0; i < expected.Length; i++)
                {
                    expected[i] = (float)(init[i] + dv[i]);
                }

                Approx.Equal(expected, grad, 1e-6f, 1e-6f, what + " dvalues (added)");
            }
        }
    }

    [Fact]
    public void Fully_masked_sequences_give_zero_not_nan()
    {
        int b = 3, t = 6;
        var values = TestData.Uniform(1, b * t);
        values[(1 * t) + 2] = float.NaN; // padding may hold anything; masked positions are never read into the sum
        var mask = new float[b * t];
        for (int i = 0; i < t; i++)
        {
            mask[i] = 1f;
            mask[(2 * t) + i] = i < 2 ? 1f : 0f;
        }

        using var backend = new CpuBackend(2);
        foreach (bool mean in new[] { false, true })
        {
            var (output, grad) = LogProbKernels.SequenceSum(backend, values, mask, [1f, 1f, 1f], b, t, mean);
            Assert.Equal(0f, output[1]);
            Assert.True(output.All(float.IsFinite));
            Assert.All(grad.AsSpan(t, t).ToArray(), x => Assert.Equal(0f, x));
            Assert.True(grad.All(float.IsFinite));
        }

        var (sums, _) = LogProbKernels.SequenceSum(backend, values, new float[b * t], [1f, 1f, 1f], b, t, mean: true);
        Assert.All(sums, x => Assert.Equal(0f, x));
    }

    [Fact]
    public void Backward_matches_finite_differences()
    {
        int b = 3, t = 5;
        var values = TestData.Uniform(2, b * t);
        var mask = RaggedMask(b, t);
        var g = new float[] { 0.7f, -1.3f, 2f };
        using var backend = new CpuBackend(1);
        foreach (bool mean in new[] { false, true })
        {
            var (_, grad) = LogProbKernels.SequenceSum(backend, values, mask, g, b, t, mean);
            double Loss(float[] v)
            {
                var (o, _) = LogProbKernels.SequenceSum(backend, v, mask, g, b, t, mean);
                return (g[0] * (double)o[0]) + (g[1] * (double)o[1]) + (g[2] * (double)o[2]);
            }

            var numeric = FiniteDifference.Gradient(Loss, (float[])values.Clone());
            FiniteDifference.AssertClose(numeric, grad, 1e-4, 1e-3, $"mean={mean}");
        }
    }

    [Fact]
    public void Results_do_not_depend_on_the_thread_count()
    {
        int b = 37, t = 700;
        var values = TestData.Uniform(3, b * t);
        var mask = RaggedMask(b, t);
        var g = TestData.Uniform(4, b);
        (float[] Output, float[] Grad)? first = null;
        foreach (var backend in TestData.ThreadVariants())
        {
            using (backend)
            {
                var run = LogProbKernels.SequenceSum(backend, values, mask, g, b, t, mean: true);
                first ??= run;
                Approx.BitEqual(first.Value.Output, run.Output, $"{backend.ThreadCount} threads out");
                Approx.BitEqual(first.Value.Grad, run.ValuesGrad, $"{backend.ThreadCount} threads dvalues");
            }
        }
    }

    /// <summary>Sequence s keeps positions [s mod 3, T − s mod 4): a prompt cut at the start, padding at the end (empty when T is short).</summary>
    private static float[] RaggedMask(int b, int t)
    {
        var mask = new float[b * t];
        for (int s = 0; s < b; s++)
        {
            for (int i = s % 3; i < t - (s % 4); i++)
            {
                mask[(s * t) + i] = 1f;
            }
        }

        return mask;
    }
}
