using Engine.Core.Backends;
using Engine.Core.Cpu;
using Engine.Core.Tensors;
using Engine.Tests.Reference;
using Engine.Tests.Support;
using Xunit;

namespace Engine.Tests.Alignment;

[Trait("Category", "Kernels")]
public sealed class TokenLogProbTests
{
    /// <summary>N, C, V, chunk rows (0 = default), vocabulary block (0 = default), τ: odd sizes, N below and above a chunk.</summary>
    public static TheoryData<int, int, int, int, int, float> Shapes() => new()
    {
        { 1, 1, 1, 0, 0, 1f },
        { 1, 3, 2, 0, 0, 0.7f },
        { 5, 7, 3, 2, 0, 1f },
        { 17, 16, 33, 0, 8, 1.3f },
        { 17, 16, 33, 4, 8, 0.7f },
        { 37, 24, 100, 12, 32, 1f },
        { 64, 32, 257, 24, 100, 0.5f },
        { 130, 20, 513, 0, 0, 1f },
        { 250, 12, 61, 0, 0, 1f },
    };

    [Theory]
    [MemberData(nameof(Shapes))]
    public void Head_matches_reference(int n, int c, int v, int chunkRows, int vocabBlock, float tau)
    {
        var p = LogProbCase.Random(n + c + v, n, c, v, tau);
        using var backend = LogProbBackends.Create(2, chunkRows, vocabBlock);
        var expected = p.ReferenceForward();
        var (dh, dw) = p.ReferenceHeadGrad();
        foreach (var path in new[] { LogProbKernels.Path.TwoPass, LogProbKernels.Path.Fused })
        {
            var run = LogProbKernels.Head(backend, p, path);
            AssertOutputs(expected, run, 2e-5f, $"{path}");
            Approx.Equal(LogProbKernels.F32(dh), run.HiddenGrad, 1e-5f, 1e-4f, $"{path} dh");
            Approx.Equal(LogProbKernels.F32(dw), run.WeightGrad, 1e-5f, 1e-4f, $"{path} dW");
            Approx.RelativeNorm(LogProbKernels.F32(dh), run.HiddenGrad, 1e-5, $"{path} dh");
            Approx.RelativeNorm(LogProbKernels.F32(dw), run.WeightGrad, 1e-5, $"{path} dW");
        }
    }

    [Theory]
    [MemberData(nameof(Shapes))]
    public void From_logits_matches_reference(int n, int c, int v, int chunkRows, int vocabBlock, float tau)
    {
        _ = (chunkRows, vocabBlock);
        var p = LogProbCase.Random(n + c + v + 1, n, c, v, tau);
        var logits = LogProbKernels.F32(p.Logits);
        var asF32 = Array.ConvertAll(logits, x => (double)x);
        var expected = AlignmentReference.Forward(asF32, p.Targets, p.Mask, p.Reference, n, v, tau);
        var dz = AlignmentReference.LogitsGrad(asF32, p.Targets, p.Mask, p.Reference, p.LogProbsGrad, p.EntropyGrad, p.KlGrad, n, v, tau);
        using var backend = new CpuBackend(2);
        var (run, grad) = LogProbKernels.FromLogits(backend, p, logits);
        AssertOutputs(expected, run, 1e-5f, "from logits");
        Approx.Equal(LogProbKernels.F32(dz), grad, 1e-6f, 1e-4f, "dlogits");
    }

    [Fact]
    public void Fused_gives_the_bits_of_forward_then_backward()
    {
        var p = LogProbCase.Random(11, 45, 24, 130, 0.8f);
        using var backend = LogProbBackends.Create(2, chunkRows: 12, vocabBlock: 40);
        var twoPass = LogProbKernels.Head(backend, p, LogProbKernels.Path.TwoPass);
        var fused = LogProbKernels.Head(backend, p, LogProbKernels.Path.Fused);
        AssertBitEqual(twoPass, fused, "fused vs two-pass");
    }

    [Fact]
    public void Results_do_not_depend_on_the_thread_count()
    {
        var p = LogProbCase.Random(12, 50, 40, 300, 0.9f);
        var logits = LogProbKernels.F32(p.Logits);
        LogProbRun? firstHead = null, firstFused = null, firstDefault = null;
        (LogProbRun Outputs, float[] LogitsGrad)? firstLogits = null;
        foreach (var backend in TestData.ThreadVariants())
        {
            using (backend)
            {
                backend.LogProbChunkRowsOverride = 16;
                backend.LogProbVocabBlockOverride = 128;
                var head = LogProbKernels.Head(backend, p, LogProbKernels.Path.TwoPass);
                var fused = LogProbKernels.Head(backend, p, LogProbKernels.Path.Fused);
                var fromLogits = LogProbKernels.FromLogits(backend, p, logits);
                backend.LogProbChunkRowsOverride = 0;
                backend.LogProbVocabBlockOverride = 0;
                var byDefault = LogProbKernels.Head(backend, p, LogProbKernels.Path.Fused);
                if (firstHead is null)
                {
                    (firstHead, firstFused, firstLogits, firstDefault) = (head, fused, fromLogits, byDefault);
                    continue;
                }

                string threads = $"{backend.ThreadCount} threads";
                AssertBitEqual(firstHead, head, threads + " two-pass");
                AssertBitEqual(firstFused!, fused, threads + " fused");
                AssertBitEqual(firstDefault!, byDefault, threads + " default chunks");
                AssertBitEqual(firstLogits!.Value.Outputs, fromLogits.Outputs, threads + " from logits");
                Approx.BitEqual(firstLogits.Value.LogitsGrad, fromLogits.LogitsGrad, threads + " dlogits");
            }
        }
    }

    [Fact]
    public void Backward_adds_into_the_gradients()
    {
        var p = LogProbCase.Random(13, 19, 10, 23, 1.1f);
        var dh0 = TestData.Uniform(90, p.N * p.C);
        var dw0 = TestData.Uniform(91, p.V * p.C);
        var (dh, dw) = p.ReferenceHeadGrad();
        using var backend = LogProbBackends.Create(2, chunkRows: 5, vocabBlock: 8);
        foreach (var path in new[] { LogProbKernels.Path.TwoPass, LogProbKernels.Path.Fused })
        {
            var run = LogProbKernels.Head(backend, p, path, hiddenGradInit: dh0, weightGradInit: dw0);
            Approx.Equal(Plus(dh0, dh), run.HiddenGrad, 1e-5f, 1e-4f, $"{path} dh");
            Approx.Equal(Plus(dw0, dw), run.WeightGrad, 1e-5f, 1e-4f, $"{path} dW");
        }

        var logits = LogProbKernels.F32(p.Logits);
        var dz0 = TestData.Uniform(92, p.N * p.V);
        var (_, grad) = LogProbKernels.FromLogits(backend, p, logits, dz0);
        Approx.Equal(Plus(dz0, p.ReferenceLogitsGrad()), grad, 1e-5f, 1e-4f, "dlogits");
    }

    [Fact]
    public void An_empty_gradient_is_skipped_and_the_other_still_added()
    {
        var p = LogProbCase.Random(14, 9, 6, 11);
        var (dh, dw) = p.ReferenceHeadGrad();
        using var backend = new CpuBackend(2);
        using var scope = new TensorScope(backend);
        var hidden = scope.Up(p.Hidden, p.N, p.C);
        var weight = scope.Up(p.Weight, p.V, p.C);
        var inputs = new TokenLogProbInputs(scope.Up(p.Targets, p.N), scope.Up(p.Mask!, p.N), scope.Up(p.Reference!, p.N), p.Temperature);
        var outputs = new TokenLogProbOutputs(scope.Zeros(p.N), scope.Zeros(p.N, 2), default, default);
        var grads = new TokenLogProbGrads(scope.Up(p.LogProbsGrad!, p.N), scope.Up(p.EntropyGrad!, p.N), scope.Up(p.KlGrad!, p.N, 3));
        backend.TokenLogProbsForward(outputs, hidden, weight, inputs);
        var onlyDw = scope.Zeros(p.V, p.C);
        backend.TokenLogProbsBackward(default, onlyDw, grads, hidden, weight, outputs.RowStats, inputs);
        Approx.Equal(LogProbKernels.F32(dw), TestData.Download(backend, onlyDw), 1e-5f, 1e-4f, "dW alone");
        var onlyDh = scope.Zeros(p.N, p.C);
        backend.TokenLogProbsForwardBackward(outputs, onlyDh, default, grads, hidden, weight, inputs);
        Approx.Equal(LogProbKernels.F32(dh), TestData.Download(backend, onlyDh), 1e-5f, 1e-4f, "dh alone");
    }

    /// <summary>Which upstream gradient is nonzero: each output's backward is checked on its own.</summary>
    public static TheoryData<string> GradientKinds() => ["logp", "entropy", "k1", "k2", "k3", "all"];

    [Theory]
    [MemberData(nameof(GradientKinds))]
    public void Head_backward_matches_finite_differences(string kind)
    {
        var p = Only(LogProbCase.Random(15, 6, 5, 7, 0.7f), kind);
        using var backend = new CpuBackend(1);
        var run = LogProbKernels.Head(backend, p, LogProbKernels.Path.TwoPass);
        var hidden = (float[])p.Hidden.Clone();
        double LossOfHidden(float[] h) => Loss(LogProbKernels.Head(backend, With(p, h, p.Weight), LogProbKernels.Path.TwoPass, backward: false), p);
        var numeric = FiniteDifference.Gradient(LossOfHidden, hidden);
        FiniteDifference.AssertClose(numeric, run.HiddenGrad, 2e-3, 2e-2, $"{kind} dh");

        var weight = (float[])p.Weight.Clone();
        double LossOfWeight(float[] w) => Loss(LogProbKernels.Head(backend, With(p, p.Hidden, w), LogProbKernels.Path.TwoPass, backward: false), p);
        numeric = FiniteDifference.Gradient(LossOfWeight, weight);
        FiniteDifference.AssertClose(numeric, run.WeightGrad, 2e-3, 2e-2, $"{kind} dW");
    }

    [Theory]
    [MemberData(nameof(GradientKinds))]
    public void From_logits_backward_matches_finite_differences(string kind)
    {
        var p = Only(LogProbCase.Random(16, 6, 4, 9, 1.4f), kind);
        using var backend = new CpuBackend(1);
        var logits = LogProbKernels.F32(p.Logits);
        var (_, grad) = LogProbKernels.FromLogits(backend, p, logits);
        double LossOfLogits(float[] z) => Loss(LogProbKernels.FromLogits(backend, p, z).Outputs, p);
        var numeric = FiniteDifference.Gradient(LossOfLogits, (float[])logits.Clone());
        FiniteDifference.AssertClose(numeric, grad, 2e-3, 2e-2, $"{kind} dlogits");
    }

    [Fact]
    public void Huge_logits_and_small_temperature_stay_finite()
    {
        // Logits of about ±1e4 at τ = 0.05 (z ≈ ±2e5): the targets sit at the smallest logit, so logp ≈ −4e5.
        int n = 12, c = 16, v = 70;
        var hidden = TestData.Uniform(20, n * c, -2500f, 2500f);
        var weight = TestData.Uniform(21, v * c, -1f, 1f);
        var basic = new LogProbCase { N = n, C = c, V = v, Hidden = hidden, Weight = weight, Targets = new int[n] };
        var logits = basic.Logits;
        var targets = new int[n];
        for (int i = 0; i < n; i++)
        {
            targets[i] = i % 2 == 0 ? ArgMin(logits, i, v) : ArgMax(logits, i, v);
        }

        var lp = AlignmentReference.Forward(logits, targets, null, null, n, v, 0.05).LogProbs;
        var p = new LogProbCase
        {
            N = n, C = c, V = v, Hidden = hidden, Weight = weight, Targets = targets, Temperature = 0.05f,
            Reference = Array.ConvertAll(lp, x => (float)(x + 0.5)),
            LogProbsGrad = TestData.Uniform(22, n), EntropyGrad = TestData.Uniform(23, n), KlGrad = TestData.Uniform(24, n * 3),
        };
        using var backend = LogProbBackends.Create(2, chunkRows: 5);
        var expected = p.ReferenceForward();
        foreach (var path in new[] { LogProbKernels.Path.TwoPass, LogProbKernels.Path.Fused })
        {
            var run = LogProbKernels.Head(backend, p, path);
            foreach (var (name, values) in new[] { ("logp", run.LogProbs), ("entropy", run.Entropy), ("kl", run.Kl), ("dh", run.HiddenGrad), ("dW", run.WeightGrad) })
            {
                Assert.True(values.All(float.IsFinite), $"{path} {name} has a non-finite value");
            }

            // The f32 logits carry ~1e-3 absolute error at this size, which the 1/τ = 20 magnifies.
            Approx.Equal(LogProbKernels.F32(expected.LogProbs), run.LogProbs, 0.5f, 1e-5f, $"{path} logp");
            Assert.All(run.Entropy, h => Assert.True(h >= 0f));
        }

        var huge = LogProbKernels.F32(logits);
        var (fromLogits, dz) = LogProbKernels.FromLogits(backend, p, huge);
        Assert.True(fromLogits.LogProbs.All(float.IsFinite) && fromLogits.Kl.All(float.IsFinite) && dz.All(float.IsFinite));
    }

    [Fact]
    public void Uniform_and_single_token_rows_are_exact()
    {
        // Equal logits: logp = −ln V and H = ln V; a one-token vocabulary: logp = 0, H = 0.
        using var backend = new CpuBackend(2);
        var uniform = new LogProbCase
        {
            N = 3, C = 4, V = 50, Hidden = new float[12], Weight = TestData.Uniform(30, 200), Targets = [0, 17, 49],
            LogProbsGrad = [1f, 1f, 1f],
        };
        var run = LogProbKernels.Head(backend, uniform, LogProbKernels.Path.Fused);
        Approx.Equal([-MathF.Log(50), -MathF.Log(50), -MathF.Log(50)], run.LogProbs, 1e-6f, 1e-6f, "uniform logp");
        Approx.Equal([MathF.Log(50), MathF.Log(50), MathF.Log(50)], run.Entropy, 1e-6f, 1e-6f, "uniform entropy");

        var single = new LogProbCase
        {
            N = 2, C = 3, V = 1, Hidden = TestData.Uniform(31, 6), Weight = TestData.Uniform(32, 3), Targets = [0, 0],
            LogProbsGrad = [1f, 1f], EntropyGrad = [1f, 1f],
        };
        run = LogProbKernels.Head(backend, single, LogProbKernels.Path.TwoPass);
        Assert.All(run.LogProbs, x => Assert.Equal(0f, x));
        Assert.All(run.Entropy, x => Assert.Equal(0f, x));
        Assert.All(run.HiddenGrad, x => Assert.Equal(0f, x));
    }

    [Fact]
    public void Masked_rows_give_exact_zeros_even_with_extreme_inputs()
    {
        int n = 10, c = 6, v = 40;
        var hidden = TestData.Uniform(40, n * c, -1f, 1f);
        var mask = new float[n];
        var targets = TestData.Tokens(41, n, v);
        for (int i = 0; i < n; i++)
        {
            mask[i] = i is 2 or 3 or 7 ? 1f : 0f;
            if (mask[i] == 0f)
            {
                // Masked rows may hold anything, e.g. padding with huge activations.
                for (int j = 0; j < c; j++)
                {
                    hidden[(i * c) + j] *= 1e30f;
                }
            }
        }

        targets[3] = -100; // ignored even where the mask is 1
        var p = new LogProbCase
        {
            N = n, C = c, V = v, Hidden = hidden, Weight = TestData.Uniform(42, v * c), Targets = targets, Mask = mask,
            Reference = TestData.Uniform(43, n, -3f, -1f), Temperature = 0.9f,
            LogProbsGrad = TestData.Uniform(44, n), EntropyGrad = TestData.Uniform(45, n), KlGrad = TestData.Uniform(46, n * 3),
        };
        var dh0 = TestData.Uniform(47, n * c);
        using var backend = LogProbBackends.Create(2, chunkRows: 3);
        foreach (var path in new[] { LogProbKernels.Path.TwoPass, LogProbKernels.Path.Fused })
        {
            var run = LogProbKernels.Head(backend, p, path, hiddenGradInit: dh0);
            for (int i = 0; i < n; i++)
            {
                if (i is 2 or 7)
                {
                    continue;
                }

                Assert.Equal(0f, run.LogProbs[i]);
                Assert.Equal(0f, run.Entropy[i]);
                Assert.Equal([0f, 0f], run.RowStats.AsSpan(2 * i, 2).ToArray());
                Assert.Equal([0f, 0f, 0f], run.Kl.AsSpan(3 * i, 3).ToArray());
                Approx.BitEqual(dh0.AsSpan(i * c, c), run.HiddenGrad.AsSpan(i * c, c), $"{path} dh row {i}");
            }

            Assert.True(run.WeightGrad.All(float.IsFinite), $"{path} dW is not finite");
        }
    }

    [Fact]
    public void Fully_masked_batch_leaves_gradients_untouched()
    {
        var p = LogProbCase.Random(50, 8, 5, 9);
        var allMasked = new LogProbCase
        {
            N = p.N, C = p.C, V = p.V, Hidden = p.Hidden, Weight = p.Weight, Targets = p.Targets, Mask = new float[p.N],
            Reference = p.Reference, LogProbsGrad = p.LogProbsGrad, EntropyGrad = p.EntropyGrad, KlGrad = p.KlGrad,
        };
        var dh0 = TestData.Uniform(51, p.N * p.C);
        var dw0 = TestData.Uniform(52, p.V * p.C);
        using var backend = new CpuBackend(2);
        foreach (var path in new[] { LogProbKernels.Path.TwoPass, LogProbKernels.Path.Fused })
        {
            var run = LogProbKernels.Head(backend, allMasked, path, hiddenGradInit: dh0, weightGradInit: dw0);
            Assert.All(run.LogProbs, x => Assert.Equal(0f, x));
            Assert.All(run.Kl, x => Assert.Equal(0f, x));
            Approx.BitEqual(dh0, run.HiddenGrad, $"{path} dh");
            Approx.BitEqual(dw0, run.WeightGrad, $"{path} dW");
        }
    }

    [Fact]
    public void Fractional_mask_weights_scale_outputs_and_gradients()
    {
        var p = LogProbCase.Random(60, 7, 5, 13, 0.9f);
        var weights = new float[] { 0.5f, 2f, 0f, 1f, 0.25f, 3f, 1f };
        var weighted = new LogProbCase
        {
            N = p.N, C = p.C, V = p.V, Hidden = p.Hidden, Weight = p.Weight, Targets = p.Targets, Mask = weights,
            Reference = p.Reference, Temperature = p.Temperature, LogProbsGrad = p.LogProbsGrad, EntropyGrad = p.EntropyGrad, KlGrad = p.KlGrad,
        };
        using var backend = new CpuBackend(2);
        var run = LogProbKernels.Head(backend, weighted, LogProbKernels.Path.Fused);
        var expected = weighted.ReferenceForward();
        AssertOutputs(expected, run, 2e-5f, "weighted");
        var (dh, dw) = weighted.ReferenceHeadGrad();
        Approx.Equal(LogProbKernels.F32(dh), run.HiddenGrad, 1e-5f, 1e-4f, "weighted dh");
        Approx.Equal(LogProbKernels.F32(dw), run.WeightGrad, 1e-5f, 1e-4f, "weighted dW");
    }

    [Fact]
    public void Kl_estimator_helpers_match_their_definitions()
    {
        var (k1, k2, k3) = KlEstimators.Values(-2.0, -2.5);
        Assert.Equal(0.5, k1, 12);
        Assert.Equal(0.125, k2, 12);
        Assert.Equal(Math.Exp(-0.5) + 0.5 - 1.0, k3, 12);
        var (d1, d2, d3) = KlEstimators.Derivatives(-2.0, -2.5);
        Assert.Equal((1.0, 0.5, 1.0 - Math.Exp(-0.5)), (d1, d2, d3));
        Assert.Equal(float.MaxValue, KlEstimators.Saturate(1e300));
        Assert.Equal(-float.MaxValue, KlEstimators.Saturate(double.NegativeInfinity));
    }

    [Fact]
    public void Invalid_arguments_are_rejected()
    {
        var p = LogProbCase.Random(70, 4, 3, 5);
        using var backend = new CpuBackend(1);
        using var scope = new TensorScope(backend);
        var hidden = scope.Up(p.Hidden, p.N, p.C);
        var weight = scope.Up(p.Weight, p.V, p.C);
        var targets = scope.Up(p.Targets, p.N);
        var outputs = new TokenLogProbOutputs(scope.Zeros(p.N), scope.Zeros(p.N, 2));
        var grads = new TokenLogProbGrads(scope.Up(p.LogProbsGrad!, p.N));

        var tooBig = scope.Up(new[] { 0, 1, 5, 2 }, p.N);
        Assert.Throws<ArgumentOutOfRangeException>(() => backend.TokenLogProbsForward(outputs, hidden, weight, new TokenLogProbInputs(tooBig)));
        Assert.Throws<ArgumentOutOfRangeException>(() => backend.TokenLogProbsForward(outputs, hidden, weight, new TokenLogProbInputs(targets, Temperature: 0f)));
        var withKl = outputs with { Kl = scope.Zeros(p.N, 3) };
        Assert.Throws<ArgumentException>(() => backend.TokenLogProbsForward(withKl, hidden, weight, new TokenLogProbInputs(targets)));
        Assert.Throws<ArgumentException>(() => backend.TokenLogProbsForward(outputs with { RowStats = default }, hidden, weight, new TokenLogProbInputs(targets)));
        Assert.Throws<ArgumentException>(() => backend.TokenLogProbsForward(outputs, hidden, scope.Zeros(p.V, p.C + 1), new TokenLogProbInputs(targets)));
        Assert.Throws<ArgumentException>(
            () => backend.TokenLogProbsBackward(scope.Zeros(p.N, p.C), default, default, hidden, weight, outputs.RowStats, new TokenLogProbInputs(targets)));
        Assert.Throws<ArgumentException>(
            () => backend.TokenLogProbsBackward(scope.Zeros(p.N + 1, p.C), default, grads, hidden, weight, outputs.RowStats, new TokenLogProbInputs(targets)));
        var floatTargets = scope.Zeros(p.N);
        Assert.Throws<ArgumentException>(() => backend.TokenLogProbsForward(outputs, hidden, weight, new TokenLogProbInputs(floatTargets)));
    }

    internal static void AssertOutputs(AlignmentReference.Outputs expected, LogProbRun run, float atol, string what)
    {
        Approx.Equal(LogProbKernels.F32(expected.LogProbs), run.LogProbs, atol, 1e-5f, what + " logp");
        Approx.Equal(LogProbKernels.F32(expected.Entropy), run.Entropy, atol, 1e-5f, what + " entropy");
        Approx.Equal(LogProbKernels.F32(expected.RowStats), run.RowStats, atol, 1e-5f, what + " rowStats");
        if (run.Kl.Length > 0)
        {
            Approx.Equal(LogProbKernels.F32(expected.Kl), run.Kl, atol, 1e-4f, what + " kl");
        }
    }

    private static void AssertBitEqual(LogProbRun expected, LogProbRun actual, string what)
    {
        Approx.BitEqual(expected.LogProbs, actual.LogProbs, what + " logp");
        Approx.BitEqual(expected.RowStats, actual.RowStats, what + " rowStats");
        Approx.BitEqual(expected.Entropy, actual.Entropy, what + " entropy");
        Approx.BitEqual(expected.Kl, actual.Kl, what + " kl");
        Approx.BitEqual(expected.HiddenGrad, actual.HiddenGrad, what + " dh");
        Approx.BitEqual(expected.WeightGrad, actual.WeightGrad, what + " dW");
    }

    /// <summary>Σ gLogp·logp + gH·H + Σ gKl·kl over the kernel's (masked) outputs, in double.</summary>
    private static double Loss(LogProbRun run, LogProbCase p)
    {
        double loss = 0;
        for (int i = 0; i < p.N; i++)
        {
            loss += ((p.LogProbsGrad?[i] ?? 0) * (double)run.LogProbs[i]) + ((p.EntropyGrad?[i] ?? 0) * (double)run.Entropy[i]);
            for (int j = 0; j < 3 && p.KlGrad is not null; j++)
            {
                loss += p.KlGrad[(3 * i) + j] * (double)run.Kl[(3 * i) + j];
            }
        }

        return loss;
    }

    private static LogProbCase Only(LogProbCase p, string kind)
    {
        float[]? KlColumn(int column)
        {
            var g = new float[p.N * 3];
            for (int i = 0; i < p.N; i++)
            {
                g[(3 * i) + column] = p.KlGrad![(3 * i) + column];
            }

            return g;
        }

        return kind switch
        {
            "logp" => p.WithGrads(p.LogProbsGrad, null, null),
            "entropy" => p.WithGrads(null, p.EntropyGrad, null),
            "k1" => p.WithGrads(null, null, KlColumn(0)),
            "k2" => p.WithGrads(null, null, KlColumn(1)),
            "k3" => p.WithGrads(null, null, KlColumn(2)),
            _ => p,
        };
    }

    private static LogProbCase With(LogProbCase p, float[] hidden, float[] weight) => new()
    {
        N = p.N, C = p.C, V = p.V, Hidden = hidden, Weight = weight, Targets = p.Targets, Mask = p.Mask, Reference = p.Reference,
        Temperature = p.Temperature, LogProbsGrad = p.LogProbsGrad, EntropyGrad = p.EntropyGrad, KlGrad = p.KlGrad,
    };

    private static float[] Plus(float[] a, double[] b)
    {
        var r = new float[a.Length];
        for (int i = 0; i < a.Length; i++)
        {
            r[i] = (float)(a[i] + b[i]);
        }

        return r;
    }

    private static int ArgMin(double[] logits, int row, int v)
    {
        int best = 0;
        for (int j = 1; j < v; j++)
        {
            best = logits[(row * v) + j] < logits[(row * v) + best] ? j : best;
        }

        return best;
    }

    private static int ArgMax(double[] logits, int row, int v)
    {
        int best = 0;
        for (int j = 1; j < v; j++)
        {
            best = logits[(row * v) + j] > logits[(row * v) + best] ? j : best;
        }

        return best;
    }
}

/// <summary>Tensors uploaded for one test, freed together.</summary>
internal sealed class TensorScope(Backend backend) : IDisposable
{
    private readonly List<Tensor> owned = [];

    public Tensor Up(float[] data, params long[] dims) => Track(TestData.Upload(backend, data, dims));

    public Tensor Up(int[] data, params long[] dims) => Track(TestData.Upload(backend, data, dims));

    public Tensor Zeros(params long[] dims) => Track(backend.AllocateTensor(DType.F32, dims));

    public void Dispose()
    {
        foreach (var t in owned)
        {
            t.Buffer!.Dispose();
        }
    }

    private Tensor Track(Tensor t)
    {
        owned.Add(t);
        return t;
    }
}
