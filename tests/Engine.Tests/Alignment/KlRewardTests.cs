using Engine.Core.Backends;
using Engine.Core.Cpu;
using Engine.Tests.Cpu;
using Engine.Tests.Reference;
using Engine.Tests.Support;
using Xunit;
using static Engine.Tests.Alignment.RlKernels;

namespace Engine.Tests.Alignment;

/// <summary>Per-token KL-shaped rewards with the sequence score on the last response token.</summary>
[Trait("Category", "Alignment")]
public sealed class KlRewardTests : IDisposable
{
    private readonly CpuBackend cpu = new(2);

    public void Dispose() => cpu.Dispose();

    [Fact]
    [Trait("Category", "Parity")]
    public void Matches_pytorch_fixture()
    {
        var f = RlFixture.Instance;
        var (rewards, stats) = KlRewards(
            cpu, f.Floats["kl.kl"], f.Floats["mask"], f.Floats["kl.scores"], f.Ints["kl.ended"], 6, 9,
            f.Cases.GetProperty("kl").GetProperty("beta").GetSingle(), f.Cases.GetProperty("kl").GetProperty("missing_eos_penalty").GetSingle());
        Approx.Equal(f.Floats["kl.rewards"], rewards, 1e-6f, 1e-5f, "rewards");
        float[] e = f.Floats["kl.stats"];
        Close(e[0], stats.MeanSequenceKl, 1e-6, 1e-5, "mean KL");
        Close(e[1], stats.MeanScore, 1e-6, 1e-5, "mean score");
        Close(e[2], stats.MissingEosFraction, 1e-7, 0, "missing EOS");
        Assert.Equal((int)e[3], stats.Sequences);
    }

    [Theory]
    [InlineData(1, 1, true)]
    [InlineData(5, 7, false)]
    [InlineData(64, 300, true)]
    public void Matches_reference_and_never_reads_padding(int b, int t, bool withFlags)
    {
        var m = RaggedMask(40, b, t);
        if (b * t == 1)
        {
            m[0] = 1f;
        }

        var kl = TestData.Uniform(41, b * t, -0.5f, 1f);
        var scores = TestData.Uniform(42, b, -5f, 5f);
        int[]? ended = withFlags ? TestData.Tokens(43, b, 2) : null;
        var (rewards, stats) = KlRewards(cpu, PoisonMasked(kl, m), m, scores, ended, b, t, 0.1f, -2f);
        var r = RlReference.KlRewards(kl, m, scores, ended, b, t, 0.1f, -2f);
        Approx.Equal(F(r.Rewards), rewards, 1e-6f, 1e-5f, "rewards");
        Close(r.MeanKl, stats.MeanSequenceKl, 1e-6, 1e-5, "mean KL");
        Close(r.MeanScore, stats.MeanScore, 1e-6, 1e-5, "mean score");
        Close(r.MissingFraction, stats.MissingEosFraction, 1e-7, 1e-6, "missing EOS");
        Assert.Equal(r.Sequences, stats.Sequences);
    }

    [Fact]
    public void Score_lands_on_the_last_response_token_with_the_penalty_when_eos_is_missing()
    {
        float[] kl = [9f, 1f, 2f, 9f, 9f, 9f, 4f, 9f];
        float[] m = [0f, 1f, 1f, 0f, 0f, 0f, 1f, 0f];
        var (rewards, stats) = KlRewards(cpu, kl, m, [10f, 20f], [0, 1], 2, 4, 0.5f, -3f);
        Assert.Equal([0f, -0.5f, -1f + 10f - 3f, 0f, 0f, 0f, -2f + 20f, 0f], rewards);
        Assert.Equal(new KlRewardStatistics(3.5f, 13.5f, 0.5f, 2), stats);
    }

    [Fact]
    public void Fully_masked_sequences_get_zero_rewards_and_are_left_out_of_the_statistics()
    {
        var (rewards, stats) = KlRewards(cpu, [1f, 2f, 3f, 4f], [0f, 0f, 0f, 1f], [5f, 6f], [1, 0], 2, 2, 1f, -1f);
        Assert.Equal([0f, 0f, 0f, -4f + 6f - 1f], rewards);
        Assert.Equal(new KlRewardStatistics(4f, 5f, 1f, 1), stats);
        (rewards, stats) = KlRewards(cpu, [1f, 2f, 3f, 4f], new float[4], [5f, 6f], null, 2, 2, 1f, -1f);
        Assert.All(rewards, r => Assert.Equal(0f, r));
        Assert.Equal(default, stats);
    }

    [Fact]
    public void Results_do_not_depend_on_the_thread_count()
    {
        const int b = 300, t = 200;
        var m = RaggedMask(44, b, t);
        var kl = TestData.Uniform(45, b * t);
        var scores = TestData.Uniform(46, b);
        var ended = TestData.Tokens(47, b, 2);
        float[]? r0 = null;
        KlRewardStatistics? s0 = null;
        foreach (var backend in TestData.ThreadVariants())
        {
            using var owned = backend;
            var (rewards, stats) = KlRewards(backend, kl, m, scores, ended, b, t, 0.05f, -1f);
            r0 ??= rewards;
            s0 ??= stats;
            Approx.BitEqual(r0, rewards, "rewards");
            Assert.Equal(s0, stats);
        }
    }

    [Fact]
    public void Arguments_are_validated()
    {
        var x = TestData.Upload(cpu, new float[6], 2, 3);
        Assert.Throws<ArgumentException>(() => cpu.KlShapedRewards(x, x, x, TestData.Upload(cpu, new float[3], 3), default, 0.1f));
        Assert.Throws<ArgumentException>(() => cpu.KlShapedRewards(x, x, x, TestData.Upload(cpu, new float[2], 2), TestData.Upload(cpu, new float[2], 2), 0.1f));
        Assert.Throws<ArgumentOutOfRangeException>(() => cpu.KlShapedRewards(x, x, x, TestData.Upload(cpu, new float[2], 2), default, float.NaN));
    }
}
