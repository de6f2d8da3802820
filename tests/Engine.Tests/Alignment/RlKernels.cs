using Engine.Core.Backends;
using Engine.Core.Cpu;
using Engine.Tests.Support;
using Xunit;

namespace Engine.Tests.Alignment;

/// <summary>Host-array wrappers around the alignment kernels and the random ragged inputs the tests share.</summary>
internal static class RlKernels
{
    /// <summary>
    /// A (B,T) 0/1 mask of prompt 0s, a contiguous response of 1s and padding 0s with random lengths; row 0 has no
    /// response and row 1 (when B &gt; 1) a single response token.
    /// </summary>
    public static float[] RaggedMask(int seed, int b, int t)
    {
        var rng = new Random(seed);
        var m = new float[b * t];
        for (int row = 1; row < b; row++)
        {
            int start = rng.Next(t);
            int length = row == 1 ? 1 : 1 + rng.Next(t - start);
            for (int k = start; k < start + length; k++)
            {
                m[(row * t) + k] = 1f;
            }
        }

        return m;
    }

    /// <summary>x with every masked-out position replaced by NaN: kernels must never read those.</summary>
    public static float[] PoisonMasked(float[] x, float[] mask) => [.. x.Select((v, i) => mask[i] == 0f ? float.NaN : v)];

    public static (float[] Advantages, float[] Returns) Gae(CpuBackend cpu, float[] r, float[] v, float[] m, int b, int t, float gamma, float lambda)
    {
        var adv = TestData.Upload(cpu, TestData.Uniform(99, b * t), b, t);
        var ret = TestData.Upload(cpu, TestData.Uniform(98, b * t), b, t);
        cpu.GeneralizedAdvantageEstimation(adv, ret, TestData.Upload(cpu, r, b, t), TestData.Upload(cpu, v, b, t), TestData.Upload(cpu, m, b, t), gamma, lambda);
        return (TestData.Download(cpu, adv), TestData.Download(cpu, ret));
    }

    public static (float[] Out, MaskedMoments Moments) Whiten(CpuBackend cpu, float[] x, float[] m, bool shiftMean)
    {
        var t = TestData.Upload(cpu, x, x.Length);
        var moments = cpu.MaskedWhiten(t, TestData.Upload(cpu, m, m.Length), shiftMean);
        return (TestData.Download(cpu, t), moments);
    }

    /// <summary>Runs the pairwise loss; with <paramref name="grad0"/> given, the gradient starts from it, else none is asked for.</summary>
    public static (PairwiseLossStatistics Stats, float[]? Grad) Pairwise(
        CpuBackend cpu, float[] s, int[] c, int[] l, float[]? w, float[]? mu, float[]? grad0, PairwiseLossOptions o)
    {
        var grad = grad0 is null ? default : TestData.Upload(cpu, grad0, grad0.Length);
        var stats = cpu.PairwiseLoss(
            TestData.Upload(cpu, s, s.Length), TestData.Upload(cpu, c, c.Length), TestData.Upload(cpu, l, l.Length),
            w is null ? default : TestData.Upload(cpu, w, w.Length), mu is null ? default : TestData.Upload(cpu, mu, mu.Length), grad, o);
        return (stats, grad0 is null ? null : TestData.Download(cpu, grad));
    }

    /// <summary>PPO inputs over N tokens; values, oldValues and returns are null together for a policy-only call.</summary>
    public sealed record PpoInputs(float[] LogProbs, float[] OldLogProbs, float[] Advantages, float[] Mask, float[]? Values, float[]? OldValues, float[]? Returns, float[]? Entropy);

    /// <summary>Runs the PPO losses; gradients start from dlogp0/dv0 when given (null = not wanted).</summary>
    public static (PpoStatistics Stats, float[]? LogProbsGrad, float[]? ValuesGrad) Ppo(
        CpuBackend cpu, PpoInputs x, float[]? dlogp0, float[]? dv0, PpoLossOptions o)
    {
        int n = x.LogProbs.Length;
        Engine.Core.Tensors.Tensor Up(float[]? a) => a is null ? default : TestData.Upload(cpu, a, n);
        var dlogp = Up(dlogp0);
        var dv = Up(dv0);
        var stats = cpu.PpoLosses(
            Up(x.LogProbs), Up(x.OldLogProbs), Up(x.Advantages), Up(x.Mask), Up(x.Values), Up(x.OldValues), Up(x.Returns), Up(x.Entropy), dlogp, dv, o);
        return (stats, dlogp0 is null ? null : TestData.Download(cpu, dlogp), dv0 is null ? null : TestData.Download(cpu, dv));
    }

    /// <summary>Random PPO inputs over a ragged (B,T) mask: log-probs in [−6, 0), log-ratios ~ ±0.4, values and returns ~ ±2.</summary>
    public static PpoInputs RandomPpo(int seed, int b, int t, bool withValues = true, bool withEntropy = true)
    {
        int n = b * t;
        var old = TestData.Uniform(seed, n, -6f, -0.05f);
        var delta = TestData.Uniform(seed + 1, n, -0.4f, 0.4f);
        var values = TestData.Uniform(seed + 3, n, -2f, 2f);
        var oldDelta = TestData.Uniform(seed + 4, n, -0.5f, 0.5f);
        return new PpoInputs(
            [.. old.Select((o, i) => o + delta[i])], old, TestData.Uniform(seed + 2, n, -2f, 2f), RaggedMask(seed + 5, b, t),
            withValues ? values : null, withValues ? [.. values.Select((v, i) => v + oldDelta[i])] : null,
            withValues ? TestData.Uniform(seed + 6, n, -2f, 2f) : null, withEntropy ? TestData.Uniform(seed + 7, n, 0f, 3f) : null);
    }

    public static (float[] Rewards, KlRewardStatistics Stats) KlRewards(
        CpuBackend cpu, float[] kl, float[] m, float[] scores, int[]? ended, int b, int t, float beta, float penalty)
    {
        var r = TestData.Upload(cpu, TestData.Uniform(97, b * t), b, t);
        var stats = cpu.KlShapedRewards(
            r, TestData.Upload(cpu, kl, b, t), TestData.Upload(cpu, m, b, t), TestData.Upload(cpu, scores, b),
            ended is null ? default : TestData.Upload(cpu, ended, b), beta, penalty);
        return (TestData.Download(cpu, r), stats);
    }

    /// <summary>Asserts a statistic within atol + rtol·|expected|.</summary>
    public static void Close(double expected, float actual, double atol, double rtol, string what)
    {
        Assert.True(float.IsFinite(actual), $"{what} is {actual}");
        Assert.True(Math.Abs(actual - expected) <= atol + (rtol * Math.Abs(expected)), $"{what}: {actual:R}, expected {expected:R}");
    }

    public static float[] F(double[] a) => [.. a.Select(v => (float)v)];

    public static float[] Plus(float[] a, double[] b) => [.. a.Select((v, i) => (float)(v + b[i]))];
}
