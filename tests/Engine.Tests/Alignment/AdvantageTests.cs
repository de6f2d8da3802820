using Engine.Core.Backends;
using Engine.Core.Cpu;
using Engine.Tests.Cpu;
using Engine.Tests.Reference;
using Engine.Tests.Support;
using Xunit;
using static Engine.Tests.Alignment.RlKernels;

namespace Engine.Tests.Alignment;

/// <summary>GAE and masked whitening.</summary>
[Trait("Category", "Alignment")]
public sealed class AdvantageTests : IDisposable
{
    private readonly CpuBackend cpu = new(2);

    public void Dispose() => cpu.Dispose();

    [Theory]
    [Trait("Category", "Parity")]
    [InlineData("a")]
    [InlineData("b")]
    [InlineData("c")]
    public void Gae_matches_pytorch_fixture(string name)
    {
        var f = RlFixture.Instance;
        var (adv, ret) = Gae(cpu, f.Floats["gae.rewards"], f.Floats["gae.values"], f.Floats["mask"], 6, 9, f.Case("gae", name, "gamma"), f.Case("gae", name, "lambda"));
        Approx.Equal(f.Floats[$"gae.{name}.advantages"], adv, 1e-5f, 1e-5f, "advantages");
        Approx.Equal(f.Floats[$"gae.{name}.returns"], ret, 1e-5f, 1e-5f, "returns");
    }

    [Theory]
    [Trait("Category", "Parity")]
    [InlineData(true)]
    [InlineData(false)]
    public void Whitening_matches_pytorch_fixture(bool shiftMean)
    {
        var f = RlFixture.Instance;
        var (y, moments) = Whiten(cpu, f.Floats["whiten.x"], f.Floats["mask"], shiftMean);
        Approx.Equal(f.Floats[shiftMean ? "whiten.shift" : "whiten.noshift"], y, 1e-5f, 1e-5f, "whitened");
        float[] stats = f.Floats["whiten.stats"];
        Close(stats[0], moments.Mean, 1e-6, 1e-6, "mean");
        Close(stats[1], moments.Variance, 1e-6, 1e-6, "variance");
        Close(stats[2], moments.Count, 0, 0, "count");
    }

    [Theory]
    [InlineData(1, 1)]
    [InlineData(2, 1)]
    [InlineData(3, 7)]
    [InlineData(8, 64)]
    [InlineData(5, 300)]
    public void Gae_matches_reference_on_ragged_batches(int b, int t)
    {
        var r = TestData.Uniform(1, b * t, -1f, 1f);
        var v = TestData.Uniform(2, b * t, -2f, 2f);
        var m = RaggedMask(3, b, t);
        var (adv, ret) = Gae(cpu, r, v, m, b, t, 0.99f, 0.95f);
        var expected = RlReference.Gae(r, v, m, b, t, 0.99f, 0.95f);
        Approx.Equal(F(expected.Advantages), adv, 1e-5f, 1e-5f, "advantages");
        Approx.Equal(F(expected.Returns), ret, 1e-5f, 1e-5f, "returns");
    }

    [Fact]
    public void Gae_never_reads_masked_positions_and_zeroes_them()
    {
        const int b = 6, t = 20;
        var m = RaggedMask(4, b, t);
        var r = TestData.Uniform(5, b * t);
        var v = TestData.Uniform(6, b * t);
        var (adv, ret) = Gae(cpu, PoisonMasked(r, m), PoisonMasked(v, m), m, b, t, 1f, 0.9f);
        var expected = RlReference.Gae(r, v, m, b, t, 1f, 0.9f);
        Approx.Equal(F(expected.Advantages), adv, 1e-5f, 1e-5f, "advantages");
        Approx.Equal(F(expected.Returns), ret, 1e-5f, 1e-5f, "returns");
        for (int i = 0; i < m.Length; i++)
        {
            if (m[i] == 0f)
            {
                Assert.Equal(0f, adv[i]);
                Assert.Equal(0f, ret[i]);
            }
        }
    }

    [Fact]
    public void Gae_rows_do_not_depend_on_their_neighbours()
    {
        // A row's result must not depend on which work item or batch it runs in.
        const int b = 9, t = 33;
        var r = TestData.Uniform(15, b * t);
        var v = TestData.Uniform(16, b * t);
        var m = RaggedMask(17, b, t);
        var (adv, ret) = Gae(cpu, r, v, m, b, t, 0.99f, 0.95f);
        for (int row = 0; row < b; row++)
        {
            float[] Row(float[] a) => a.AsSpan(row * t, t).ToArray();
            var (a1, r1) = Gae(cpu, Row(r), Row(v), Row(m), 1, t, 0.99f, 0.95f);
            Approx.BitEqual(a1, Row(adv), $"advantages of row {row}");
            Approx.BitEqual(r1, Row(ret), $"returns of row {row}");
        }
    }

    [Fact]
    public void Gae_of_a_length_one_response_is_the_one_step_td_error()
    {
        float[] m = [0, 1, 0];
        var (adv, ret) = Gae(cpu, [5f, 2f, 7f], [3f, 0.5f, 9f], m, 1, 3, 0.99f, 0.95f);
        Assert.Equal([0f, 1.5f, 0f], adv);
        Assert.Equal([0f, 2f, 0f], ret);
    }

    [Fact]
    public void Fully_masked_batches_give_zeros_not_nan()
    {
        const int b = 3, t = 5;
        var m = new float[b * t];
        var (adv, ret) = Gae(cpu, TestData.Uniform(7, b * t), TestData.Uniform(8, b * t), m, b, t, 0.99f, 0.95f);
        Assert.All(adv, a => Assert.Equal(0f, a));
        Assert.All(ret, a => Assert.Equal(0f, a));
        foreach (bool shift in new[] { true, false })
        {
            var (y, moments) = Whiten(cpu, TestData.Uniform(9, b * t), m, shift);
            Assert.All(y, a => Assert.Equal(0f, a));
            Assert.Equal(default, moments);
        }
    }

    [Fact]
    public void Whitening_one_token_has_zero_variance_and_keeps_the_mean_when_asked()
    {
        float[] x = [4f, 2.5f, -1f];
        float[] m = [0f, 1f, 0f];
        var (y, moments) = Whiten(cpu, x, m, shiftMean: true);
        Assert.Equal([0f, 0f, 0f], y);
        Assert.Equal(new MaskedMoments(2.5f, 0f, 1f), moments);
        (y, _) = Whiten(cpu, x, m, shiftMean: false);
        Assert.Equal([0f, 2.5f, 0f], y);
    }

    [Theory]
    [InlineData(1, true)]
    [InlineData(17, false)]
    [InlineData(40000, true)]
    [InlineData(50001, false)]
    public void Whitening_matches_reference(int n, bool shiftMean)
    {
        var x = TestData.Uniform(10, n, 50f, 60f);
        float[] m = n == 1 ? [1f] : [.. TestData.Uniform(11, n).Select(u => u > -0.4f ? 1f : 0f)];

        var (y, moments) = Whiten(cpu, PoisonMasked(x, m), m, shiftMean);
        var expected = RlReference.Whiten(x, m, shiftMean);
        Approx.Equal(F(expected.Out), y, 2e-5f, 1e-5f, "whitened");
        Close(expected.Mean, moments.Mean, 0, 1e-6, "mean");
        Close(expected.Variance, moments.Variance, 1e-6, 1e-5, "variance");
        Close(expected.Count, moments.Count, 0, 0, "count");
    }

    [Fact]
    public void Results_do_not_depend_on_the_thread_count()
    {
        const int b = 37, t = 1000;
        var r = TestData.Uniform(12, b * t);
        var v = TestData.Uniform(13, b * t);
        var m = RaggedMask(14, b, t);
        float[]? adv0 = null, ret0 = null, y0 = null;
        MaskedMoments moments0 = default;
        foreach (var backend in TestData.ThreadVariants())
        {
            using var owned = backend;
            var (adv, ret) = Gae(backend, r, v, m, b, t, 0.99f, 0.95f);
            var (y, moments) = Whiten(backend, adv, m, shiftMean: true);
            if (adv0 is null)
            {
                (adv0, ret0, y0, moments0) = (adv, ret, y, moments);
                continue;
            }

            Approx.BitEqual(adv0, adv, "advantages");
            Approx.BitEqual(ret0!, ret, "returns");
            Approx.BitEqual(y0!, y, "whitened");
            Assert.Equal(moments0, moments);
        }
    }

    [Fact]
    public void Arguments_are_validated()
    {
        var x = TestData.Upload(cpu, new float[6], 2, 3);
        var wrong = TestData.Upload(cpu, new float[6], 3, 2);
        Assert.Throws<ArgumentException>(() => cpu.GeneralizedAdvantageEstimation(x, x, x, wrong, x, 0.9f, 0.9f));
        Assert.Throws<ArgumentOutOfRangeException>(() => cpu.GeneralizedAdvantageEstimation(x, x, x, x, x, 1.5f, 0.9f));
        Assert.Throws<ArgumentException>(() => cpu.MaskedWhiten(x, TestData.Upload(cpu, new float[5], 5)));
    }
}
