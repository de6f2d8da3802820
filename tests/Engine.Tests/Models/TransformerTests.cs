using Engine.Core.Cpu;
using Engine.Models;
using Engine.Tests.Support;
using Xunit;

namespace Engine.Tests.Models;

public class TransformerTests
{
    public static TheoryData<string> Architectures => ["gpt2", "llama"];

    [Theory]
    [MemberData(nameof(Architectures))]
    public void Training_is_bit_identical_for_any_thread_count(string arch)
    {
        float[]? reference = null;
        double[]? referenceLosses = null;
        foreach (var backend in TestData.ThreadVariants())
        {
            using (backend)
            {
                var (losses, weights) = Train(arch, backend, steps: 3);
                if (reference is null)
                {
                    reference = weights;
                    referenceLosses = losses;
                    continue;
                }

                Assert.Equal(referenceLosses, losses);
                Approx.BitEqual(reference, weights, $"{arch} weights with {backend.ThreadCount} threads");
            }
        }
    }

    [Theory]
    [MemberData(nameof(Architectures))]
    public void A_token_never_influences_earlier_logits(string arch)
    {
        using var backend = new CpuBackend(2);
        using var model = Create(arch, backend);
        int t = 9, v = model.Config.VocabSize;
        var tokens = TestData.Tokens(3, t, v);
        var before = new float[t * v];
        model.ForwardLogits(tokens, 1, t, before);
        tokens[6] = (tokens[6] + 1) % v;
        var after = new float[t * v];
        model.ForwardLogits(tokens, 1, t, after);
        Approx.BitEqual(before.AsSpan(0, 6 * v), after.AsSpan(0, 6 * v), "positions before the change");
        Assert.NotEqual(before[6 * v], after[6 * v]);
    }

    [Theory]
    [MemberData(nameof(Architectures))]
    public void Gradients_accumulate_over_micro_batches(string arch)
    {
        using var backend = new CpuBackend(2);
        using var model = Create(arch, backend);
        int t = 8, v = model.Config.VocabSize;
        var tokens = TestData.Tokens(5, 2 * t, v);
        var targets = TestData.Tokens(6, 2 * t, v);
        model.ZeroGradients();
        model.ForwardBackward(tokens, targets, 2, t);
        var whole = TestData.Download(backend, model.Parameters.Gradients);

        model.ZeroGradients();
        model.ForwardBackward(tokens.AsSpan(0, t), targets.AsSpan(0, t), 1, t, lossScale: 0.5f);
        model.ForwardBackward(tokens.AsSpan(t, t), targets.AsSpan(t, t), 1, t, lossScale: 0.5f);
        var accumulated = TestData.Download(backend, model.Parameters.Gradients);
        Approx.RelativeNorm(whole, accumulated, 1e-5, "accumulated gradients");
    }

    [Theory]
    [MemberData(nameof(Architectures))]
    public void A_caller_loss_through_the_hidden_gradient_matches_the_built_in_LM_loss(string arch)
    {
        using var backend = new CpuBackend(2);
        using var model = Create(arch, backend);
        int b = 2, t = 7, v = model.Config.VocabSize, n = b * t;
        var tokens = TestData.Tokens(8, n, v);
        var targets = TestData.Tokens(9, n, v);
        model.ZeroGradients();
        double builtIn = model.ForwardBackward(tokens, targets, b, t);
        var expected = TestData.Download(backend, model.Parameters.Gradients);

        model.ZeroGradients();
        var hidden = model.ForwardTraining(tokens, b, t);
        var logits = backend.AllocateTensor(Engine.Core.Tensors.DType.F32, n, v);
        var losses = backend.AllocateTensor(Engine.Core.Tensors.DType.F32, n);
        var targetTensor = TestData.Upload(backend, targets, n);
        backend.MatmulForward(logits, hidden, model.HeadWeight, default, Engine.Core.Backends.WeightLayout.OutIn);
        backend.CrossEntropyForwardBackward(losses, logits, targetTensor, 1f / n);
        backend.MatmulBackward(model.HiddenGradient, model.HeadGradient, default, logits, hidden, model.HeadWeight, Engine.Core.Backends.WeightLayout.OutIn);
        model.BackwardFromHidden();

        Assert.Equal(builtIn, TestData.Download(backend, losses).Average(x => (double)x), 5);
        Approx.RelativeNorm(expected, TestData.Download(backend, model.Parameters.Gradients), 1e-6, "gradients");
    }

    [Fact]
    public void Ignored_targets_do_not_count_and_an_all_ignored_batch_gives_zero_loss_and_gradient()
    {
        using var backend = new CpuBackend(2);
        using var model = Create("gpt2", backend);
        int t = 6, v = model.Config.VocabSize;
        var tokens = TestData.Tokens(7, t, v);
        var targets = Enumerable.Repeat(-100, t).ToArray();
        model.ZeroGradients();
        Assert.Equal(0.0, model.ForwardBackward(tokens, targets, 1, t));
        Assert.All(TestData.Download(backend, model.Parameters.Gradients), g => Assert.Equal(0f, g));
    }

    [Fact]
    public void Out_of_range_tokens_and_lengths_are_clear_errors()
    {
        using var backend = new CpuBackend(1);
        using var model = Create("llama", backend);
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => model.Forward([1, 2, 500], 1, 3));
        Assert.Contains("token id 500 at position 2", e.Message);
        var tooLong = new int[model.Config.MaxSequenceLength + 1];
        e = Assert.Throws<ArgumentOutOfRangeException>(() => model.Forward(tooLong, 1, tooLong.Length));
        Assert.Contains("exceeds the model's maximum", e.Message);
        Assert.Throws<ArgumentException>(() => model.Forward([1, 2, 3], 2, 2));
    }

    internal static Transformer Create(string arch, CpuBackend backend)
    {
        var config = arch == "gpt2"
            ? TransformerConfig.Gpt2(vocabSize: 53, maxSequenceLength: 16, layers: 2, channels: 32, heads: 4)
            : TransformerConfig.Llama(vocabSize: 53, maxSequenceLength: 16, layers: 2, channels: 48, heads: 6, kvHeads: 2, hiddenChannels: 72) with
            {
                AttentionBias = true, TiedEmbeddings = false,
            };
        var model = new Transformer(config, backend);
        model.InitializeWeights(11);
        return model;
    }

    private static (double[] Losses, float[] Weights) Train(string arch, CpuBackend backend, int steps)
    {
        using var model = Create(arch, backend);
        int b = 3, t = 13, v = model.Config.VocabSize;
        var tokens = TestData.Tokens(1, b * t, v);
        var targets = TestData.Tokens(2, b * t, v);
        targets[4] = -100;
        var losses = new double[steps];
        var settings = new AdamWSettings();
        for (int s = 0; s < steps; s++)
        {
            model.ZeroGradients();
            losses[s] = model.ForwardBackward(tokens, targets, b, t);
            model.OptimizerStep(1e-2f, s + 1, settings);
        }

        return (losses, TestData.Download(backend, model.Parameters.Values));
    }
}
