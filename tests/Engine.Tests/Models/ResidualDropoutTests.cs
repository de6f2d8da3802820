using Engine.Core.Cpu;
using Engine.Models;
using Engine.Tests.Support;
using Xunit;

namespace Engine.Tests.Models;

public class ResidualDropoutTests
{
    public static TheoryData<string> Architectures => ["gpt2", "llama"];

    private static Transformer Create(string arch, CpuBackend backend)
    {
        var config = arch == "gpt2"
            ? TransformerConfig.Gpt2(vocabSize: 48, maxSequenceLength: 16, layers: 2, channels: 32, heads: 2)
            : TransformerConfig.Llama(vocabSize: 48, maxSequenceLength: 16, layers: 2, channels: 32, heads: 4, kvHeads: 2);
        var model = new Transformer(config, backend);
        model.InitializeWeights(3);
        return model;
    }

    private static float[] Gradients(CpuBackend backend, Transformer model)
    {
        var host = new float[model.Parameters.ElementCount];
        backend.CopyToHost<float>(model.Parameters.Gradients, host);
        return host;
    }

    [Theory]
    [MemberData(nameof(Architectures))]
    public void Masks_follow_the_seed_and_never_touch_inference(string arch)
    {
        using var backend = new CpuBackend(2);
        using var model = Create(arch, backend);
        int t = 12, v = model.Config.VocabSize;
        var tokens = TestData.Tokens(1, 2 * t, v);
        var targets = TestData.Tokens(2, 2 * t, v);
        double plain = model.ForwardBackward(tokens, targets, 2, t);
        var inference = new float[2 * t * v];
        model.ForwardLogits(tokens, 2, t, inference);

        model.ResidualDropout = 0.2f;
        model.DropoutSeed = 10;
        double a = model.ForwardBackward(tokens, targets, 2, t);
        double b = model.ForwardBackward(tokens, targets, 2, t);
        model.DropoutSeed = 11;
        double c = model.ForwardBackward(tokens, targets, 2, t);
        Assert.Equal(a, b);
        Assert.NotEqual(a, c);
        Assert.NotEqual(plain, a);

        var stillInference = new float[2 * t * v];
        model.ForwardLogits(tokens, 2, t, stillInference);
        Approx.BitEqual(inference, stillInference, "inference logits with dropout set");

        model.ResidualDropout = 0f;
        Assert.Equal(plain, model.ForwardBackward(tokens, targets, 2, t));
        Assert.Throws<ArgumentOutOfRangeException>(() => model.ResidualDropout = 1f);
    }

    [Theory]
    [MemberData(nameof(Architectures))]
    public void Gradients_with_dropout_match_a_directional_finite_difference(string arch)
    {
        using var backend = new CpuBackend(2);
        using var model = Create(arch, backend);
        int t = 8, v = model.Config.VocabSize;
        var tokens = TestData.Tokens(4, t, v);
        var targets = TestData.Tokens(5, t, v);
        model.ResidualDropout = 0.3f;
        model.DropoutSeed = 77;

        model.ZeroGradients();
        model.ForwardBackward(tokens, targets, 1, t);
        var gradient = Gradients(backend, model);

        var values = new float[model.Parameters.ElementCount];
        backend.CopyToHost<float>(model.Parameters.Values, values);
        var direction = TestData.Uniform(6, values.Length);
        double analytic = 0;
        for (int i = 0; i < values.Length; i++)
        {
            analytic += gradient[i] * direction[i];
        }

        double LossAt(float h)
        {
            var moved = new float[values.Length];
            for (int i = 0; i < values.Length; i++)
            {
                moved[i] = values[i] + (h * direction[i]);
            }

            backend.CopyFromHost<float>(model.Parameters.Values, moved);
            return model.ForwardBackward(tokens, targets, 1, t);
        }

        const float h = 1e-3f;
        double numeric = (LossAt(h) - LossAt(-h)) / (2 * h);
        Assert.True(Math.Abs(numeric - analytic) <= 0.02 * Math.Abs(analytic) + 1e-3, $"directional derivative: analytic {analytic}, finite difference {numeric}");
    }
}
