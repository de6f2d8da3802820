using System.Diagnostics;
using System.Globalization;
using Engine.Core.Cpu;
using Engine.Models;

namespace Engine.Benchmarks;

/// <summary>
/// Prefill and KV-cached decode throughput of a GPT-2 124M-sized model with random weights, without BenchmarkDotNet:
/// <c>dotnet run -c Release --project bench/Engine.Benchmarks -- generate-probe [threads] [prompt] [steps] [batches…]</c>
/// (defaults 2, 64, 32, batches 1 and 32). For each batch size: one prefill of B prompts of the given length, then
/// decode steps of one token per sequence; prints tokens per second for both (best of two runs after a warm-up).
/// </summary>
internal static class GenerateProbe
{
    public static void Run(string[] args)
    {
        int Arg(int i, int fallback) => args.Length > i ? int.Parse(args[i], CultureInfo.InvariantCulture) : fallback;
        int threads = Arg(0, 2), prompt = Arg(1, 64), steps = Arg(2, 32);
        int[] batches = args.Length > 3 ? [.. args[3..].Select(a => int.Parse(a, CultureInfo.InvariantCulture))] : [1, 32];
        using var backend = new CpuBackend(threads);
        var config = TransformerConfig.Gpt2(50257, 1024, 12, 768, 12);
        using var model = new Transformer(config, backend, trainable: false);
        model.InitializeWeights(1);
        int v = config.VocabSize;
        Console.WriteLine($"{backend.Description}; GPT-2 124M shape (random weights), prompt {prompt}, {steps} decode steps");
        foreach (int b in batches)
        {
            using var cache = model.CreateCache(b, prompt + steps + 1);
            var tokens = new int[b * prompt];
            for (int i = 0; i < tokens.Length; i++)
            {
                tokens[i] = (i * 7919) % v;
            }

            var promptCounts = Enumerable.Repeat(prompt, b).ToArray();
            var ones = Enumerable.Repeat(1, b).ToArray();
            var next = new int[b];
            var logits = new float[b * v];
            double bestPrefill = double.MaxValue, bestDecode = double.MaxValue;
            for (int run = 0; run < 3; run++)
            {
                cache.Reset();
                var sw = Stopwatch.StartNew();
                model.Append(cache, tokens, promptCounts, logits);
                double prefill = sw.Elapsed.TotalSeconds;
                int decodeSteps = run == 0 ? 2 : steps;
                sw.Restart();
                for (int s = 0; s < decodeSteps; s++)
                {
                    for (int i = 0; i < b; i++)
                    {
                        next[i] = (s * 31 + i) % v;
                    }

                    model.Append(cache, next, ones, logits);
                }

                double decode = sw.Elapsed.TotalSeconds;
                if (run > 0)
                {
                    bestPrefill = Math.Min(bestPrefill, prefill);
                    bestDecode = Math.Min(bestDecode, decode / steps);
                }
            }

            Console.WriteLine(
                $"B={b,3}: prefill {b * prompt / bestPrefill,8:F0} tok/s ({bestPrefill * 1000,7:F0} ms for {b}×{prompt}); "
                + $"decode {b / bestDecode,7:F1} tok/s ({bestDecode * 1000,6:F1} ms/step); KV cache {cache.CacheBytes / 1048576.0:F0} MiB");
        }

        // Where one B=1 decode step goes, per op kind.
        using (var cache = model.CreateCache(1, prompt + 12))
        {
            var logits = new float[v];
            model.Append(cache, new int[prompt], [prompt], logits);
            model.Profiler.Enabled = true;
            model.Profiler.Reset();
            for (int s = 0; s < 10; s++)
            {
                model.Append(cache, [s], [1], logits);
            }

            model.Profiler.Enabled = false;
            Console.WriteLine("B=1 decode, ms per step by op: " + string.Join(", ", model.Profiler.Rows().Select(r => $"{r.Op} {r.Milliseconds / 10:F1}")));
        }

        // The same last step without a cache: a full forward over prompt + steps tokens for one sequence.
        int t = prompt + steps;
        var sequence = Enumerable.Range(0, t).Select(i => (i * 7919) % v).ToArray();
        var all = new float[t * v];
        model.ForwardLogits(sequence, 1, t, all);
        var watch = Stopwatch.StartNew();
        model.ForwardLogits(sequence, 1, t, all);
        Console.WriteLine($"no cache, B=1: one step recomputing {t} tokens takes {watch.Elapsed.TotalMilliseconds:F0} ms");
    }
}
