using Engine.Core.Backends;
using Engine.Core.Cpu;
using Engine.Cuda;
using Engine.Models;
using Engine.Tests.Cuda;
using Engine.Tests.Support;
using Xunit;

namespace Engine.Tests.Models;

/// <summary>
/// Activation recomputation: the gradients are bit-identical to the pass that keeps every activation (residual dropout
/// on, so the recomputed masks must be the forward's), plain and packed rows, and the plan keeps only each layer's input.
/// </summary>
public class GradientCheckpointingTests
{
    public static TheoryData<string, float> Cases => new() { { "gpt2", 0f }, { "gpt2", 0.2f }, { "llama", 0f }, { "llama", 0.2f } };

    [Theory]
    [MemberData(nameof(Cases))]
    public void Gradients_are_bit_identical_with_and_without_recomputation(string arch, float dropout)
    {
        using var backend = new CpuBackend(2);
        Check(backend, arch, dropout);
    }

    [EmulatorTheory]
    [Trait("Category", "CudaEmulated")]
    [InlineData("gpt2")]
    [InlineData("llama")]
    public void Gradients_are_bit_identical_on_the_emulated_cuda_device(string arch)
    {
        using var cuda = CudaBackend.CreateEmulated();
        Check(cuda, arch, 0.2f);
    }

    [Theory]
    [InlineData("gpt2")]
    [InlineData("llama")]
    public void The_plan_keeps_one_layer_of_activations(string arch)
    {
        using var backend = new CpuBackend(1);
        var config = PackedParity.Config(arch) with { Layers = 4 };
        using var model = new Transformer(config, backend);
        long full = Transformer.ActivationBytesFor(config, 2, 16, training: true);
        long recomputed = Transformer.ActivationBytesFor(config, 2, 16, training: true, gradientCheckpointing: true);
        long oneLayer = Transformer.ActivationBytesFor(config with { Layers = 1 }, 2, 16, training: true);
        long twoLayers = Transformer.ActivationBytesFor(config with { Layers = 2 }, 2, 16, training: true);
        long perLayer = twoLayers - oneLayer;
        long residual = 2L * 16 * config.Channels * 4;

        // Every layer beyond the first keeps only its input (one [B,T,C] residual) instead of all its activations.
        Assert.Equal(full - (3 * (perLayer - residual)), recomputed);
        Assert.Equal(recomputed, TrainingMemory.For(config, 2, 16, gradientCheckpointing: true).Activations);
        model.GradientCheckpointing = true;
        model.ForwardBackward(new int[32], new int[32], 2, 16);
        Assert.Equal(recomputed, model.ActivationBytes);
        model.GradientCheckpointing = false;
        model.ForwardBackward(new int[32], new int[32], 2, 16);
        Assert.Equal(full, model.ActivationBytes);
    }

    private static void Check(Backend backend, string arch, float dropout)
    {
        using var model = new Transformer(PackedParity.Config(arch) with { Layers = 3 }, backend);
        model.InitializeWeights(9);
        model.ResidualDropout = dropout;
        model.DropoutSeed = 1234;
        int t = 24, v = model.Config.VocabSize;
        var tokens = TestData.Tokens(3, 2 * t, v);
        var targets = TestData.Tokens(4, 2 * t, v);
        var packed = Enumerable.Range(0, 2 * t).Select(i => i % t < 10 ? i % t : (i % t) - 10).ToArray();
        foreach (var positions in new[] { Array.Empty<int>(), packed })
        {
            var runs = new List<(double Loss, float[] Gradients)>();
            foreach (bool recompute in new[] { false, true })
            {
                model.GradientCheckpointing = recompute;
                model.ZeroGradients();
                double loss = model.ForwardBackward(tokens, targets, 2, t, positionIds: positions);
                runs.Add((loss, TestData.Download(backend, model.Parameters.Gradients)));
            }

            Assert.Equal(runs[0].Loss, runs[1].Loss);
            Approx.BitEqual(runs[0].Gradients, runs[1].Gradients, $"gradients, {(positions.Length == 0 ? "plain" : "packed")} rows");
        }
    }
}
