using Engine.Conformance;
using Engine.Core.Backends;
using Engine.Core.Numerics;
using Engine.Models;
using Engine.Models.Lora;
using Engine.Models.Parameters;

/// <summary>
/// Whole-model parity, the device against the CPU backend (itself checked against PyTorch fixtures in the tests): the same
/// randomly initialised model and batch on both, then the loss, every trained parameter's gradient, and the weights after
/// three AdamW steps. Covers what the per-op suite cannot: the host code's sequencing of ops, activation plans, chunked
/// heads, packed rows, recomputation, LoRA adapters and the KV-cached decode path, all on the real device.
/// </summary>
internal static class ModelParity
{
    private const double LossTolerance = 1e-5;
    private const double GradientTolerance = 1e-4;
    private const double WeightTolerance = 1e-4;

    /// <summary>The cases: label and the comparisons it made.</summary>
    public static IEnumerable<(string Label, Func<IReadOnlyList<ConformanceResult>> Run)> Cases(Backend cpu, Backend device, int seed)
    {
        var gpt2 = TransformerConfig.Gpt2(vocabSize: 300, maxSequenceLength: 80, layers: 2, channels: 64, heads: 4);
        var llama = TransformerConfig.Llama(vocabSize: 300, maxSequenceLength: 80, layers: 2, channels: 64, heads: 4, kvHeads: 2);
        yield return ("model gpt2 step", () => TrainSteps(cpu, device, gpt2, seed, Variant.Plain));
        yield return ("model llama-gqa step", () => TrainSteps(cpu, device, llama, seed, Variant.Plain));
        yield return ("model llama packed rows", () => TrainSteps(cpu, device, llama, seed, Variant.Packed));
        yield return ("model gpt2 recomputation", () => TrainSteps(cpu, device, gpt2, seed, Variant.Recompute));
        yield return ("model llama lora", () => TrainSteps(cpu, device, llama, seed, Variant.Lora));
        yield return ("model gpt2 lora", () => TrainSteps(cpu, device, gpt2, seed, Variant.Lora));
        yield return ("model llama kv-cache decode", () => Decode(cpu, device, llama, seed));
        yield return ("model gpt2 kv-cache decode", () => Decode(cpu, device, gpt2, seed));
    }

    private enum Variant
    {
        Plain,
        Packed,
        Recompute,
        Lora,
    }

    private static List<ConformanceResult> TrainSteps(Backend cpu, Backend device, TransformerConfig config, int seed, Variant variant)
    {
        const int batch = 3, time = 77;
        var (tokens, targets, positions) = Batch(config.VocabSize, batch, time, seed, packed: variant == Variant.Packed);
        using var reference = Build(cpu, config, seed, variant);
        using var candidate = Build(device, config, seed, variant);
        var results = new List<ConformanceResult>();
        var settings = new AdamWSettings();
        for (int step = 1; step <= 3; step++)
        {
            reference.ZeroGradients();
            candidate.ZeroGradients();
            double r = reference.ForwardBackward(tokens, targets, batch, time, positionIds: positions);
            double c = candidate.ForwardBackward(tokens, targets, batch, time, positionIds: positions);
            results.Add(new ConformanceResult($"step {step} loss", Math.Abs(c - r) / Math.Abs(r), LossTolerance));
            if (step == 1)
            {
                results.AddRange(EveryParameter(reference.TrainableParameters, candidate.TrainableParameters, gradients: true, GradientTolerance));
            }

            reference.OptimizerStep(1e-3f, step, settings);
            candidate.OptimizerStep(1e-3f, step, settings);
        }

        results.AddRange(EveryParameter(reference.TrainableParameters, candidate.TrainableParameters, gradients: false, WeightTolerance, config));
        return results;
    }

    private static Transformer Build(Backend backend, TransformerConfig config, int seed, Variant variant)
    {
        var model = new Transformer(config, backend, trainable: variant != Variant.Lora);
        model.InitializeWeights((ulong)seed);
        if (variant == Variant.Lora)
        {
            // Dropout 0: the two backends draw dropout masks from the same counter-based stream, but the per-op suite
            // checks that; here the adapters' algebra is what is compared.
            model.AddLora(new LoraConfig(Rank: 8, Alpha: 16, Dropout: 0), (ulong)seed + 1);
        }

        model.GradientCheckpointing = variant == Variant.Recompute;
        return model;
    }

    /// <summary>Every parameter's gradient (or value), one comparison each, named as the model names it.</summary>
    /// <para>
    /// After AdamW steps the key slice of a fused qkv bias is left out: its true gradient is 0 (softmax does not change
    /// when one constant is added to every score of a row), so each backend's gradient there is rounding noise, and Adam,
    /// which divides by the gradient's own magnitude, turns that noise into full-size updates of either sign.
    /// </para>
    private static IEnumerable<ConformanceResult> EveryParameter(
        ParameterSet reference, ParameterSet candidate, bool gradients, double tolerance, TransformerConfig? config = null)
    {
        foreach (var info in reference.Parameters)
        {
            var r = new float[info.ElementCount];
            var c = new float[info.ElementCount];
            reference.Backend.CopyToHost<float>(gradients ? reference.Gradient(info.Name) : reference.Value(info.Name), r);
            candidate.Backend.CopyToHost<float>(gradients ? candidate.Gradient(info.Name) : candidate.Value(info.Name), c);
            string note = "";
            if (!gradients && config is not null && info.Name.EndsWith(Names.QkvBias, StringComparison.Ordinal))
            {
                int q = config.Heads * config.HeadChannels, k = config.KvHeadCount * config.HeadChannels;
                r.AsSpan(q, k).Clear();
                c.AsSpan(q, k).Clear();
                note = " (key slice left out)";
            }

            yield return new ConformanceResult(
                $"{(gradients ? "grad" : "after 3 AdamW steps")} {info.Name}{note}", BackendPair.RelativeError(r, c), tolerance);
        }
    }

    /// <summary>
    /// Prefill of prompts of different lengths, then greedy-free decoding of fixed tokens: the logits of every Append
    /// on the device against the CPU's.
    /// </summary>
    private static List<ConformanceResult> Decode(Backend cpu, Backend device, TransformerConfig config, int seed)
    {
        const int batch = 3, prompt = 19, steps = 12;
        using var reference = new Transformer(config, cpu, trainable: false);
        using var candidate = new Transformer(config, device, trainable: false);
        reference.InitializeWeights((ulong)seed);
        candidate.InitializeWeights((ulong)seed);
        using var referenceCache = reference.CreateCache(batch, prompt + steps);
        using var candidateCache = candidate.CreateCache(batch, prompt + steps);
        var rng = new RandomStream((ulong)seed + 7);
        var tokens = new int[batch * prompt];
        for (int i = 0; i < tokens.Length; i++)
        {
            tokens[i] = rng.NextInt(config.VocabSize);
        }

        int[] counts = [prompt, prompt - 5, 1];
        var results = new List<ConformanceResult>();
        var r = new float[batch * config.VocabSize];
        var c = new float[batch * config.VocabSize];
        for (int step = 0; step <= steps; step++)
        {
            reference.Append(referenceCache, tokens, counts, r);
            candidate.Append(candidateCache, tokens, counts, c);
            results.Add(new ConformanceResult(step == 0 ? "prefill logits" : $"decode {step} logits", BackendPair.RelativeError(r, c), 1e-4));
            tokens = new int[batch];
            for (int b = 0; b < batch; b++)
            {
                tokens[b] = rng.NextInt(config.VocabSize);
            }

            counts = [1, 1, 1];
        }

        return results;
    }

    /// <summary>
    /// Random tokens and next-token targets (the last position of a row, and of a packed document, has none). Packed:
    /// each row holds documents of uneven lengths with positions restarting at each, the tail of the last row padding.
    /// </summary>
    private static (int[] Tokens, int[] Targets, int[] Positions) Batch(int vocab, int batch, int time, int seed, bool packed)
    {
        var rng = new RandomStream((ulong)seed + 3);
        int n = batch * time;
        var tokens = new int[n];
        var targets = new int[n];
        var positions = packed ? new int[n] : [];
        for (int i = 0; i < n; i++)
        {
            tokens[i] = rng.NextInt(vocab);
        }

        int[][] documents = packed ? [[5, 33, 1, 38], [40, 20, 17], [70]] : [[time], [time], [time]];
        for (int row = 0; row < batch; row++)
        {
            int at = row * time, used = 0;
            foreach (int length in documents[row])
            {
                for (int j = 0; j < length; j++)
                {
                    if (packed)
                    {
                        positions[at + used + j] = j;
                    }

                    targets[at + used + j] = j + 1 < length ? tokens[at + used + j + 1] : -100;
                }

                used += length;
            }

            for (int j = used; j < time; j++)
            {
                targets[at + j] = -100;
                if (packed)
                {
                    positions[at + j] = j - used;
                }
            }
        }

        return (tokens, targets, positions);
    }
}
