using Engine.Core.Backends;
using Engine.Core.Cpu;
using Engine.Tests.Cpu;
using Engine.Tests.Reference;
using Engine.Tests.Support;
using Xunit;
using static Engine.Tests.Alignment.RlKernels;

namespace Engine.Tests.Alignment;

/// <summary>The pairwise preference loss shared by reward models and DPO.</summary>
[Trait("Category", "Alignment")]
public sealed class PairwiseLossTests : IDisposable
{
    private readonly CpuBackend cpu = new(2);

    public static TheoryData<string> FixtureCases => new("sigmoid", "sigmoid_smooth", "robust", "hinge", "ipo", "ipo_margin", "sigmoid_center");

    public static TheoryData<PairwiseLossType, float> Types => new()
    {
        { PairwiseLossType.Sigmoid, 0f }, { PairwiseLossType.Sigmoid, 0.2f }, { PairwiseLossType.Robust, 0.1f },
        { PairwiseLossType.Hinge, 0f }, { PairwiseLossType.Ipo, 0f },
    };

    public void Dispose() => cpu.Dispose();

    [Theory]
    [Trait("Category", "Parity")]
    [MemberData(nameof(FixtureCases))]
    public void Matches_pytorch_fixture(string name)
    {
        var f = RlFixture.Instance;
        var c = f.Case("pair", name);
        var type = Enum.Parse<PairwiseLossType>(c.GetProperty("type").GetString()!, ignoreCase: true);
        var o = new PairwiseLossOptions(type, c.GetProperty("label_smoothing").GetSingle(), c.GetProperty("beta").GetSingle(), c.GetProperty("center").GetSingle());
        float[]? margins = c.GetProperty("margins").GetBoolean() ? f.Floats["pair.margins"] : null;
        float[] scores = f.Floats["pair.scores"];
        var (stats, grad) = Pairwise(cpu, scores, f.Ints["pair.chosen"], f.Ints["pair.rejected"], f.Floats["pair.weights"], margins, new float[scores.Length], o);
        float[] e = f.Floats[$"pair.{name}.stats"];
        Close(e[0], stats.Loss, 1e-6, 1e-6, "loss");
        Close(e[1], stats.CenterPenalty, 1e-6, 1e-6, "center");
        Close(e[2], stats.Accuracy, 1e-7, 1e-6, "accuracy");
        Close(e[3], stats.Margin, 1e-6, 1e-6, "margin");
        Close(e[4], stats.ChosenScore, 1e-6, 1e-6, "chosen");
        Close(e[5], stats.RejectedScore, 1e-6, 1e-6, "rejected");
        Close(e[6], stats.WeightSum, 1e-6, 1e-6, "weight sum");
        Approx.Equal(f.Floats[$"pair.{name}.grad"], grad!, 1e-6f, 1e-5f, "dscores");
    }

    [Theory]
    [MemberData(nameof(Types))]
    public void Matches_reference_and_adds_into_the_gradient(PairwiseLossType type, float eps)
    {
        var (s, c, l, w, mu) = RandomPairs(20, responses: 40);
        var o = new PairwiseLossOptions(type, eps, Beta: 0.3f, CenterCoefficient: 0.05f, GradScale: 0.5f);
        var grad0 = TestData.Uniform(21, s.Length);
        var (stats, grad) = Pairwise(cpu, s, c, l, w, mu, grad0, o);
        var r = RlReference.Pairwise(s, c, l, w, mu, o);
        Close(r.Loss, stats.Loss, 1e-6, 1e-6, "loss");
        Close(r.Center, stats.CenterPenalty, 1e-6, 1e-6, "center");
        Close(r.Accuracy, stats.Accuracy, 1e-7, 1e-6, "accuracy");
        Close(r.Margin, stats.Margin, 1e-6, 1e-6, "margin");
        Close(r.Chosen, stats.ChosenScore, 1e-6, 1e-6, "chosen");
        Close(r.Rejected, stats.RejectedScore, 1e-6, 1e-6, "rejected");
        Close(r.WeightSum, stats.WeightSum, 1e-6, 1e-6, "weights");
        Approx.Equal(Plus(grad0, r.Grad), grad!, 1e-6f, 1e-5f, "dscores");

        var (forwardOnly, _) = Pairwise(cpu, s, c, l, w, mu, null, o);
        Assert.Equal(stats, forwardOnly);
    }

    [Theory]
    [MemberData(nameof(Types))]
    public void Gradient_matches_finite_differences(PairwiseLossType type, float eps)
    {
        var (s, c, l, w, mu) = RandomPairs(22, responses: 12);
        var o = new PairwiseLossOptions(type, eps, Beta: 0.3f, CenterCoefficient: 0.05f);
        var (_, grad) = Pairwise(cpu, s, c, l, w, mu, new float[s.Length], o);
        var numeric = FiniteDifference.Gradient(ss => RlReference.Pairwise(ss, c, l, w, mu, o).Loss, s, 1e-3f);
        FiniteDifference.AssertClose(numeric, grad!, 1e-4, 1e-3, $"{type} dscores");
    }

    [Theory]
    [MemberData(nameof(Types))]
    public void Extreme_scores_stay_finite(PairwiseLossType type, float eps)
    {
        float[] s = [1e4f, -1e4f, 0f, 3f];
        int[] c = [0, 1, 2, 3];
        int[] l = [1, 0, 3, 2];
        var o = new PairwiseLossOptions(type, eps, Beta: 0.1f);
        var (stats, grad) = Pairwise(cpu, s, c, l, null, [0f, 0f, 1e4f, -1e4f], new float[4], o);
        var r = RlReference.Pairwise(s, c, l, null, [0f, 0f, 1e4f, -1e4f], o);
        Close(r.Loss, stats.Loss, 1e-3, 1e-6, "loss");
        Assert.All(grad!, g => Assert.True(float.IsFinite(g)));
        Approx.Equal(F(r.Grad), grad!, 1e-6f, 1e-5f, "dscores");
        if (type == PairwiseLossType.Sigmoid && eps == 0f)
        {
            // softplus(2e4) is 2e4 exactly in double; a naive log(1 + e^x) would be ∞.
            Close((2e4 + 10003.0) / 4, stats.Loss, 1e-3, 1e-6, "sigmoid loss");
        }
    }

    [Fact]
    public void K_wise_rankings_average_over_prompts()
    {
        // Two prompts: a K = 4 ranking (6 pairs of weight 1/6) and one plain pair. Each prompt counts once.
        float[] s = [2f, 1f, 0f, -1f, 0.5f, 1.5f];
        int[] c = [0, 0, 0, 1, 1, 2, 4];
        int[] l = [1, 2, 3, 2, 3, 3, 5];
        float[] w = [.. Enumerable.Repeat(1f / 6, 6), 1f];
        var (stats, _) = Pairwise(cpu, s, c, l, w, null, null, new PairwiseLossOptions(PairwiseLossType.Hinge));
        double group = (0 + 0 + 0 + 0 + 0 + 0) / 6.0, plain = 1 - (0.5 - 1.5);
        Close((group + plain) / 2, stats.Loss, 1e-6, 1e-6, "loss");
        Close(0.5, stats.Accuracy, 1e-7, 0, "accuracy");
    }

    [Fact]
    public void A_tie_is_not_counted_as_accurate()
    {
        var (stats, _) = Pairwise(cpu, [1f, 1f, 3f, 1f], [0, 2], [1, 3], null, [0f, 2f], null, new PairwiseLossOptions());
        Assert.Equal(0f, stats.Accuracy);
    }

    [Fact]
    public void Zero_total_weight_gives_zero_statistics_and_no_gradient()
    {
        var grad0 = TestData.Uniform(23, 3);
        var (stats, grad) = Pairwise(cpu, [1f, 2f, 3f], [0, 1], [1, 2], [0f, 0f], null, grad0, new PairwiseLossOptions());
        Assert.Equal(default, stats);
        Assert.Equal(grad0, grad);
    }

    [Fact]
    public void Bad_indices_and_options_throw_before_anything_is_written()
    {
        var grad0 = TestData.Uniform(24, 3);
        var g = TestData.Upload(cpu, grad0, 3);
        var s = TestData.Upload(cpu, [1f, 2f, 3f], 3);
        Assert.Throws<ArgumentOutOfRangeException>(() => cpu.PairwiseLoss(
            s, TestData.Upload(cpu, [0, 1], 2), TestData.Upload(cpu, [1, 3], 2), default, default, g, new PairwiseLossOptions()));
        Assert.Equal(grad0, TestData.Download(cpu, g));
        Assert.Throws<ArgumentOutOfRangeException>(() => cpu.PairwiseLoss(
            s, TestData.Upload(cpu, [0], 1), TestData.Upload(cpu, [-1], 1), default, default, g, new PairwiseLossOptions()));
        Assert.Throws<ArgumentOutOfRangeException>(() => cpu.PairwiseLoss(
            s, TestData.Upload(cpu, [0], 1), TestData.Upload(cpu, [1], 1), default, default, g, new PairwiseLossOptions(PairwiseLossType.Robust, 0.5f)));
        Assert.Throws<ArgumentOutOfRangeException>(() => cpu.PairwiseLoss(
            s, TestData.Upload(cpu, [0], 1), TestData.Upload(cpu, [1], 1), default, default, g, new PairwiseLossOptions(PairwiseLossType.Ipo, Beta: 0f)));
        Assert.Throws<ArgumentException>(() => cpu.PairwiseLoss(
            s, TestData.Upload(cpu, [0], 1), TestData.Upload(cpu, [1, 2], 2), default, default, g, new PairwiseLossOptions()));
    }

    [Fact]
    public void Results_do_not_depend_on_the_thread_count()
    {
        var (s, c, l, w, mu) = RandomPairs(25, responses: 3000);
        PairwiseLossStatistics? stats0 = null;
        float[]? grad0 = null;
        foreach (var backend in TestData.ThreadVariants())
        {
            using var owned = backend;
            var (stats, grad) = Pairwise(backend, s, c, l, w, mu, new float[s.Length], new PairwiseLossOptions(CenterCoefficient: 0.01f));
            stats0 ??= stats;
            grad0 ??= grad;
            Assert.Equal(stats0, stats);
            Approx.BitEqual(grad0!, grad!, "dscores");
        }
    }

    // K = 4 rankings (weight 1/6 per pair) for the first half of the responses, plain pairs (weight 1) for the rest,
    // shuffled together; margins in [0, 1).
    private static (float[] S, int[] C, int[] L, float[] W, float[] Mu) RandomPairs(int seed, int responses)
    {
        var rng = new Random(seed);
        var s = TestData.Uniform(seed, responses, -3f, 3f);
        var pairs = new List<(int C, int L, float W)>();
        int r = 0;
        for (; r + 4 <= responses / 2; r += 4)
        {
            int[] order = [.. Enumerable.Range(r, 4).OrderBy(_ => rng.Next())];
            for (int i = 0; i < 4; i++)
            {
                for (int j = i + 1; j < 4; j++)
                {
                    pairs.Add((order[i], order[j], 1f / 6));
                }
            }
        }

        for (; r + 2 <= responses; r += 2)
        {
            pairs.Add(rng.Next(2) == 0 ? (r, r + 1, 1f) : (r + 1, r, 1f));
        }

        var shuffled = pairs.OrderBy(_ => rng.Next()).ToArray();
        var mu = TestData.Uniform(seed + 1, shuffled.Length, 0f, 1f);
        return (s, [.. shuffled.Select(p => p.C)], [.. shuffled.Select(p => p.L)], [.. shuffled.Select(p => p.W)], mu);
    }
}
