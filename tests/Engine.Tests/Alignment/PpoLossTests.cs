using Engine.Core.Backends;
using Engine.Core.Cpu;
using Engine.Tests.Cpu;
using Engine.Tests.Reference;
using Engine.Tests.Support;
using Xunit;
using static Engine.Tests.Alignment.RlKernels;

namespace Engine.Tests.Alignment;

/// <summary>PPO clipped policy and value losses with their statistics.</summary>
[Trait("Category", "Alignment")]
public sealed class PpoLossTests : IDisposable
{
    private readonly CpuBackend cpu = new(2);

    public void Dispose() => cpu.Dispose();

    [Theory]
    [Trait("Category", "Parity")]
    [InlineData("a")]
    [InlineData("b")]
    public void Matches_pytorch_fixture(string name)
    {
        var f = RlFixture.Instance;
        float[] P(string k) => f.Floats[$"ppo.{name}.{k}"];
        var x = new PpoInputs(P("logp"), P("old_logp"), P("advantages"), f.Floats["mask"], P("values"), P("old_values"), P("returns"), P("entropy"));
        var o = new PpoLossOptions(f.Case("ppo", name, "clip_range"), f.Case("ppo", name, "value_clip_range"));
        int n = x.LogProbs.Length;
        var (stats, dlogp, dv) = Ppo(cpu, x, new float[n], new float[n], o);
        float[] e = P("stats");
        Close(e[0], stats.PolicyLoss, 1e-6, 1e-5, "policy loss");
        Close(e[1], stats.ValueLoss, 1e-6, 1e-5, "value loss");
        Close(e[2], stats.ClipFraction, 1e-7, 0, "clip fraction");
        Close(e[3], stats.ApproxKl, 1e-6, 1e-5, "approx KL");
        Close(e[4], stats.Entropy, 1e-6, 1e-5, "entropy");
        Close(e[5], stats.ExplainedVariance, 1e-6, 1e-5, "explained variance");
        Close(e[6], stats.ValueClipFraction, 1e-7, 0, "value clip fraction");
        Close(e[7], stats.RatioMean, 1e-6, 1e-5, "ratio mean");
        Close(e[8], stats.TokenCount, 0, 0, "tokens");
        Approx.Equal(P("dlogp"), dlogp!, 1e-7f, 1e-5f, "dlogp");
        Approx.Equal(P("dvalues"), dv!, 1e-7f, 1e-5f, "dvalues");
    }

    [Theory]
    [InlineData(1, 1, true, true)]
    [InlineData(4, 9, true, false)]
    [InlineData(8, 100, false, true)]
    [InlineData(30, 1000, true, true)]
    public void Matches_reference_and_adds_into_the_gradients(int b, int t, bool withValues, bool withEntropy)
    {
        var x = RandomPpo(30, b, t, withValues, withEntropy);
        if (b * t == 1)
        {
            x.Mask[0] = 1f;
        }

        var o = new PpoLossOptions(0.2f, 0.3f, PolicyGradScale: 0.5f, ValueGradScale: 0.25f);
        int n = b * t;
        var dlogp0 = TestData.Uniform(31, n);
        var dv0 = TestData.Uniform(32, n);
        var (stats, dlogp, dv) = Ppo(cpu, x, dlogp0, withValues ? dv0 : null, o);
        var r = RlReference.Ppo(x.LogProbs, x.OldLogProbs, x.Advantages, x.Mask, x.Values, x.OldValues, x.Returns, x.Entropy, o);
        AssertStats(r, stats);
        Approx.Equal(Plus(dlogp0, r.LogProbsGrad), dlogp!, 1e-6f, 1e-5f, "dlogp");
        if (withValues)
        {
            Approx.Equal(Plus(dv0, r.ValuesGrad), dv!, 1e-6f, 1e-5f, "dvalues");
        }

        var (forwardOnly, _, _) = Ppo(cpu, x, null, null, o);
        Assert.Equal(stats, forwardOnly);
    }

    [Fact]
    public void Gradients_match_finite_differences()
    {
        const int b = 3, t = 8;
        var x = RandomPpo(33, b, t);
        var o = new PpoLossOptions(0.1f, 0.2f);
        var (_, dlogp, dv) = Ppo(cpu, x, new float[b * t], new float[b * t], o);
        var numericPolicy = FiniteDifference.Gradient(
            lp => RlReference.Ppo(lp, x.OldLogProbs, x.Advantages, x.Mask, x.Values, x.OldValues, x.Returns, x.Entropy, o).PolicyLoss, x.LogProbs, 1e-3f);
        FiniteDifference.AssertClose(numericPolicy, dlogp!, 2e-4, 2e-3, "dlogp");
        var numericValue = FiniteDifference.Gradient(
            v => RlReference.Ppo(x.LogProbs, x.OldLogProbs, x.Advantages, x.Mask, v, x.OldValues, x.Returns, x.Entropy, o).ValueLoss, x.Values!, 1e-3f);
        FiniteDifference.AssertClose(numericValue, dv!, 2e-4, 2e-3, "dvalues");
    }

    [Fact]
    public void Clipping_selects_the_pessimistic_branch()
    {
        // Token 0: ρ = e^20 with A > 0 → clipped (flat); token 1: ρ = e^20 with A < 0 → unclipped (gradient −A·ρ);
        // token 2: ρ = e^−20 with A < 0 → clipped; token 3: ρ = 1 → unclipped.
        float[] old = [-21f, -25f, -1f, -3f];
        float[] logp = [-1f, -5f, -21f, -3f];
        float[] adv = [0.7f, -0.4f, -1.3f, 2f];
        var x = new PpoInputs(logp, old, adv, [1f, 1f, 1f, 1f], null, null, null, null);
        var (stats, dlogp, _) = Ppo(cpu, x, new float[4], null, new PpoLossOptions(0.2f));
        Assert.Equal(0.5f, stats.ClipFraction);
        Assert.Equal(0f, dlogp![0]);
        Assert.Equal(0f, dlogp[2]);
        Close(0.4 * Math.Exp(20) / 4, dlogp[1], 0, 1e-6, "dlogp[1]");
        Close(-2.0 / 4, dlogp[3], 0, 1e-6, "dlogp[3]");
    }

    [Fact]
    public void Extreme_inputs_and_garbage_padding_stay_finite()
    {
        const int b = 4, t = 16;
        var x = RandomPpo(34, b, t);
        var rng = new Random(35);
        for (int i = 0; i < b * t; i++)
        {
            x.OldLogProbs[i] = -100f + (float)rng.NextDouble();
            x.LogProbs[i] = x.OldLogProbs[i] + ((i % 4) switch { 0 => 80f, 1 => -80f, 2 => 20f, _ => -20f });
            x.Advantages[i] = i % 8 < 4 ? 1f : -1e-3f;
        }

        var poisoned = x with
        {
            LogProbs = PoisonMasked(x.LogProbs, x.Mask), OldLogProbs = PoisonMasked(x.OldLogProbs, x.Mask), Advantages = PoisonMasked(x.Advantages, x.Mask),
            Values = PoisonMasked(x.Values!, x.Mask), OldValues = PoisonMasked(x.OldValues!, x.Mask), Returns = PoisonMasked(x.Returns!, x.Mask),
            Entropy = PoisonMasked(x.Entropy!, x.Mask),
        };
        var o = new PpoLossOptions();
        var (stats, dlogp, dv) = Ppo(cpu, poisoned, new float[b * t], new float[b * t], o);
        var r = RlReference.Ppo(x.LogProbs, x.OldLogProbs, x.Advantages, x.Mask, x.Values, x.OldValues, x.Returns, x.Entropy, o);
        AssertStats(r, stats);
        Approx.Equal(F(r.LogProbsGrad), dlogp!, 1e-6f, 1e-5f, "dlogp");
        Approx.Equal(F(r.ValuesGrad), dv!, 1e-6f, 1e-5f, "dvalues");
    }

    [Fact]
    public void A_fully_masked_batch_gives_zero_statistics_and_leaves_gradients_alone()
    {
        var x = RandomPpo(36, 3, 5) with { Mask = new float[15] };
        var dlogp0 = TestData.Uniform(37, 15);
        var dv0 = TestData.Uniform(38, 15);
        var (stats, dlogp, dv) = Ppo(cpu, x, dlogp0, dv0, new PpoLossOptions());
        Assert.Equal(default, stats);
        Assert.Equal(dlogp0, dlogp);
        Assert.Equal(dv0, dv);
    }

    [Fact]
    public void Results_do_not_depend_on_the_thread_count()
    {
        var x = RandomPpo(39, 50, 1000);
        PpoStatistics? stats0 = null;
        float[]? dlogp0 = null, dv0 = null;
        foreach (var backend in TestData.ThreadVariants())
        {
            using var owned = backend;
            var (stats, dlogp, dv) = Ppo(backend, x, new float[50_000], new float[50_000], new PpoLossOptions());
            stats0 ??= stats;
            dlogp0 ??= dlogp;
            dv0 ??= dv;
            Assert.Equal(stats0, stats);
            Approx.BitEqual(dlogp0!, dlogp!, "dlogp");
            Approx.BitEqual(dv0!, dv!, "dvalues");
        }
    }

    [Fact]
    public void Arguments_are_validated()
    {
        var a = TestData.Upload(cpu, new float[4], 4);
        var shorter = TestData.Upload(cpu, new float[3], 3);
        var o = new PpoLossOptions();
        Assert.Throws<ArgumentException>(() => cpu.PpoLosses(a, a, a, shorter, default, default, default, default, default, default, o));
        Assert.Throws<ArgumentException>(() => cpu.PpoLosses(a, a, a, a, a, a, default, default, default, default, o));
        Assert.Throws<ArgumentException>(() => cpu.PpoLosses(a, a, a, a, default, default, default, default, default, a, o));
        Assert.Throws<ArgumentOutOfRangeException>(() => cpu.PpoLosses(a, a, a, a, default, default, default, default, default, default, o with { ClipRange = -1f }));
    }

    private static void AssertStats(RlReference.PpoResult r, PpoStatistics stats)
    {
        Close(r.PolicyLoss, stats.PolicyLoss, 1e-6, 1e-5, "policy loss");
        Close(r.ValueLoss, stats.ValueLoss, 1e-6, 1e-5, "value loss");
        Close(r.ClipFraction, stats.ClipFraction, 1e-7, 1e-6, "clip fraction");
        Close(r.ApproxKl, stats.ApproxKl, 1e-6, 1e-5, "approx KL");
        Close(r.Entropy, stats.Entropy, 1e-6, 1e-5, "entropy");
        Close(r.ExplainedVariance, stats.ExplainedVariance, 1e-6, 1e-5, "explained variance");
        Close(r.ValueClipFraction, stats.ValueClipFraction, 1e-7, 1e-6, "value clip fraction");
        Close(r.RatioMean, stats.RatioMean, 1e-6, 1e-5, "ratio mean");
        Close(r.TokenCount, stats.TokenCount, 0, 0, "tokens");
    }
}
