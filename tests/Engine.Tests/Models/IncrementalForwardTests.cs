using Engine.Core.Cpu;
using Engine.Models;
using Engine.Tests.Support;
using Xunit;

namespace Engine.Tests.Models;

public class IncrementalForwardTests
{
    public static TheoryData<string> Architectures => ["gpt2", "llama"];

    /// <summary>
    /// A batch of prompts of different lengths prefilled in one right-padded call, then decoded one token per step:
    /// the logits of each prompt's last token and of every decode step equal ForwardLogits over the whole sequence.
    /// </summary>
    [Theory]
    [MemberData(nameof(Architectures))]
    public void Prefill_and_decode_match_full_forward(string arch)
    {
        using var backend = new CpuBackend(2);
        using var model = TransformerTests.Create(arch, backend);
        int v = model.Config.VocabSize, steps = 5;
        int[][] prompts = [TestData.Tokens(1, 4, v), TestData.Tokens(2, 9, v), TestData.Tokens(3, 1, v)];
        int b = prompts.Length, tq = prompts.Max(p => p.Length);
        using var cache = model.CreateCache(b, 16);

        var tokens = new int[b * tq];
        for (int i = 0; i < b; i++)
        {
            prompts[i].CopyTo(tokens, i * tq);
        }

        var logits = new float[b * v];
        model.Append(cache, tokens, [.. prompts.Select(p => p.Length)], logits);
        var sequences = prompts.Select(p => p.ToList()).ToArray();
        for (int step = 0; ; step++)
        {
            for (int i = 0; i < b; i++)
            {
                var full = FullLogits(model, sequences[i]);
                Approx.Equal(full, logits.AsSpan(i * v, v), 1e-4f, 1e-4f, $"{arch} sequence {i} step {step}");
            }

            if (step == steps)
            {
                break;
            }

            var next = new int[b];
            for (int i = 0; i < b; i++)
            {
                next[i] = (sequences[i].Count * 7 + i) % v;
                sequences[i].Add(next[i]);
            }

            model.Append(cache, next, [1, 1, 1], logits);
        }

        Assert.Equal([9, 14, 6], cache.Lengths.ToArray());
    }

    [Theory]
    [MemberData(nameof(Architectures))]
    public void Idle_sequences_keep_their_cache(string arch)
    {
        using var backend = new CpuBackend(2);
        using var model = TransformerTests.Create(arch, backend);
        int v = model.Config.VocabSize;
        using var cache = model.CreateCache(2, 16);
        var logits = new float[2 * v];
        model.Append(cache, [3, 4, 5, 6], [2, 2], logits);
        model.Append(cache, [7, 8], [1, 0], logits);
        model.Append(cache, [9, 10], [1, 1], logits);
        Assert.Equal([4, 3], cache.Lengths.ToArray());
        Approx.Equal(FullLogits(model, [3, 4, 7, 9]), logits.AsSpan(0, v), 1e-4f, 1e-4f, "active");
        Approx.Equal(FullLogits(model, [5, 6, 10]), logits.AsSpan(v, v), 1e-4f, 1e-4f, "resumed");
    }

    [Theory]
    [MemberData(nameof(Architectures))]
    public void A_prompt_prefilled_in_chunks_matches_full_forward(string arch)
    {
        using var backend = new CpuBackend(2);
        using var model = TransformerTests.Create(arch, backend);
        int v = model.Config.VocabSize;
        using var cache = model.CreateCache(2, 16);
        var logits = new float[2 * v];
        model.Append(cache, [1, 2, 3, 4, 5, 6], [3, 2], logits);      // fresh chunk: tiled attention + cache write
        model.Append(cache, [7, 8, 9, 10, 11, 12, 13, 14], [4, 1], logits); // later chunk: attention against the cache
        Approx.Equal(FullLogits(model, [1, 2, 3, 7, 8, 9, 10]), logits.AsSpan(0, v), 1e-4f, 1e-4f, "sequence 0");
        Approx.Equal(FullLogits(model, [4, 5, 11]), logits.AsSpan(v, v), 1e-4f, 1e-4f, "sequence 1");
    }

    [Fact]
    public void Overflow_is_rejected()
    {
        using var backend = new CpuBackend(2);
        using var model = TransformerTests.Create("gpt2", backend);
        using var cache = model.CreateCache(1, 3);
        var logits = new float[model.Config.VocabSize];
        model.Append(cache, [1, 2, 3], [3], logits);
        Assert.Throws<ArgumentOutOfRangeException>(() => model.Append(cache, [4], [1], logits));
        Assert.Throws<ArgumentOutOfRangeException>(() => model.CreateCache(1, 17));
    }

    internal static float[] FullLogits(Transformer model, IReadOnlyList<int> sequence)
    {
        int v = model.Config.VocabSize, t = sequence.Count;
        var all = new float[t * v];
        model.ForwardLogits(sequence.ToArray(), 1, t, all);
        return all[((t - 1) * v)..];
    }
}
