using BenchmarkDotNet.Attributes;
using Engine.Core.Cpu;
using Engine.Core.Numerics;
using Engine.Models;

namespace Engine.Benchmarks;

/// <summary>
/// One full training step (zero grads, forward, backward, AdamW) of small GPT-2 and Llama models. The memory
/// diagnoser shows that a step allocates nothing in steady state.
/// </summary>
[MemoryDiagnoser]
public class TrainStepBenchmarks
{
    private CpuBackend backend = null!;
    private Transformer model = null!;
    private int[] tokens = [];
    private int[] targets = [];
    private int step;

    [Params("gpt2", "llama")]
    public string Arch { get; set; } = "gpt2";

    [GlobalSetup]
    public void Setup()
    {
        backend = new CpuBackend();
        var config = Arch == "gpt2"
            ? TransformerConfig.Gpt2(vocabSize: 8192, maxSequenceLength: 128, layers: 4, channels: 256, heads: 4)
            : TransformerConfig.Llama(vocabSize: 8192, maxSequenceLength: 128, layers: 4, channels: 256, heads: 4, kvHeads: 2);
        model = new Transformer(config, backend);
        model.InitializeWeights(1);
        var rng = new RandomStream(2);
        tokens = new int[4 * 128];
        targets = new int[4 * 128];
        for (int i = 0; i < tokens.Length; i++)
        {
            tokens[i] = rng.NextInt(8192);
            targets[i] = rng.NextInt(8192);
        }
    }

    [Benchmark]
    public double Step()
    {
        model.ZeroGradients();
        double loss = model.ForwardBackward(tokens, targets, 4, 128);
        model.OptimizerStep(3e-4f, ++step, Settings);
        return loss;
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        model.Dispose();
        backend.Dispose();
    }

    private static readonly AdamWSettings Settings = new();
}
