using Engine.Core.Cpu;
using Engine.Core.Numerics;
using Engine.Models;
using Engine.Models.Generation;
using Engine.Tests.Models;
using Engine.Tests.Support;
using Xunit;

namespace Engine.Tests.Generation;

public sealed class GenerationTests : IDisposable
{
    private readonly CpuBackend backend = new(2);

    public static TheoryData<string> Architectures => ["gpt2", "llama"];

    public void Dispose() => backend.Dispose();

    [Theory]
    [MemberData(nameof(Architectures))]
    public void Greedy_reproduces_the_argmax_continuation_of_ForwardLogits(string arch)
    {
        using var model = TransformerTests.Create(arch, backend);
        using var generator = new Generator(model);
        int[][] prompts = [[1, 2, 3], [4], [5, 6, 7, 8, 9]];
        var options = new GenerationOptions { Temperature = 0f, MaxNewTokens = 6 };
        var results = generator.Generate(prompts, options);
        for (int i = 0; i < prompts.Length; i++)
        {
            var sequence = prompts[i].ToList();
            var expected = new List<int>();
            for (int step = 0; step < 6; step++)
            {
                int token = Sampler.ArgMax(IncrementalForwardTests.FullLogits(model, sequence));
                expected.Add(token);
                sequence.Add(token);
            }

            Assert.Equal(expected, results[i].Tokens);
            Assert.Equal(FinishReason.MaxTokens, results[i].Reason);
        }
    }

    [Fact]
    public void Same_seed_gives_the_same_samples_and_another_seed_differs()
    {
        using var model = TransformerTests.Create("gpt2", backend);
        using var generator = new Generator(model);
        int[][] prompts = [[1, 2], [3, 4, 5]];
        var options = new GenerationOptions { Temperature = 1.5f, MaxNewTokens = 10, Seed = 42 };
        var a = generator.Generate(prompts, options);
        var b = generator.Generate(prompts, options);
        var c = generator.Generate(prompts, options with { Seed = 43 });
        for (int i = 0; i < prompts.Length; i++)
        {
            Assert.Equal(a[i].Tokens, b[i].Tokens);
        }

        Assert.False(a.Zip(c).All(x => x.First.Tokens.SequenceEqual(x.Second.Tokens)), "another seed gave the same samples");
    }

    [Theory]
    [MemberData(nameof(Architectures))]
    public void A_prompt_continues_the_same_alone_or_in_a_batch(string arch)
    {
        using var model = TransformerTests.Create(arch, backend);
        using var generator = new Generator(model);
        int[][] prompts = [[1, 2, 3, 4, 5, 6], [7], [8, 9, 10]];
        var options = new GenerationOptions { Temperature = 0.9f, TopP = 0.9f, MaxNewTokens = 7, Seed = 9 };
        var batch = generator.Generate(prompts, options);
        for (int i = 0; i < prompts.Length; i++)
        {
            // Alone, a prompt is sequence 0: give it the seed that makes its stream the one it had as sequence i.
            var alone = generator.Generate([prompts[i]], options with { Seed = Generator.SequenceSeed(options.Seed, i) });
            Assert.Equal(batch[i].Tokens, alone[0].Tokens);
        }
    }

    [Fact]
    public void Sampled_tokens_are_the_same_for_any_thread_count()
    {
        List<int>[]? reference = null;
        foreach (var threads in TestData.ThreadVariants())
        {
            using (threads)
            {
                using var model = TransformerTests.Create("llama", threads);
                using var generator = new Generator(model);
                var result = generator.Generate([[1, 2, 3], [4]], new GenerationOptions { MaxNewTokens = 8, Seed = 3 });
                var tokens = result.Select(r => r.Tokens.ToList()).ToArray();
                if (reference is null)
                {
                    reference = tokens;
                    continue;
                }

                Assert.Equal(reference[0], tokens[0]);
                Assert.Equal(reference[1], tokens[1]);
            }
        }
    }

    [Fact]
    public void Top_k_of_one_is_greedy()
    {
        using var model = TransformerTests.Create("llama", backend);
        using var generator = new Generator(model);
        int[][] prompts = [[1, 2], [3]];
        var greedy = generator.Generate(prompts, new GenerationOptions { Temperature = 0f, MaxNewTokens = 8 });
        var topOne = generator.Generate(prompts, new GenerationOptions { Temperature = 2f, TopK = 1, MaxNewTokens = 8, Seed = 5 });
        Assert.Equal(greedy[0].Tokens, topOne[0].Tokens);
        Assert.Equal(greedy[1].Tokens, topOne[1].Tokens);
    }

    [Fact]
    public void Stop_tokens_end_only_their_sequence()
    {
        using var model = TransformerTests.Create("gpt2", backend);
        using var generator = new Generator(model);
        int[][] prompts = [[1, 2, 3], [7, 7]];
        var free = generator.Generate(prompts, new GenerationOptions { Temperature = 0f, MaxNewTokens = 6 });
        int stop = free[0].Tokens[2];
        Assert.DoesNotContain(stop, free[1].Tokens);
        var streamed = new List<GeneratedToken>();
        var stopped = generator.Generate(
            prompts, new GenerationOptions { Temperature = 0f, MaxNewTokens = 6, StopTokens = [stop] }, streamed.Add);
        int first = free[0].Tokens.ToList().IndexOf(stop);
        Assert.Equal(free[0].Tokens.Take(first + 1), stopped[0].Tokens);
        Assert.Equal(FinishReason.Stop, stopped[0].Reason);
        Assert.Equal(free[1].Tokens, stopped[1].Tokens);
        Assert.Equal(FinishReason.MaxTokens, stopped[1].Reason);
        Assert.Equal(stopped[0].Tokens, streamed.Where(s => s.Sequence == 0).Select(s => s.Token));
        Assert.Equal(stopped[1].Tokens, streamed.Where(s => s.Sequence == 1).Select(s => s.Token));
        Assert.True(streamed.Last(s => s.Sequence == 0).Final);
        Assert.Single(streamed, s => s.Sequence == 1 && s.Final);
    }

    [Fact]
    public void A_full_context_ends_generation()
    {
        using var model = TransformerTests.Create("gpt2", backend);
        using var generator = new Generator(model);
        var result = generator.Generate([[.. Enumerable.Range(1, 14)]], new GenerationOptions { Temperature = 0f, MaxNewTokens = 10 });
        Assert.Equal(FinishReason.ContextFull, result[0].Reason);
        Assert.Equal(3, result[0].Tokens.Count); // 16 positions: 14 + 2 forwarded, the third is picked but never fed back
    }

    [Fact]
    public void Top_p_keeps_the_smallest_set_reaching_p()
    {
        float[] logits = [MathF.Log(0.2f), MathF.Log(0.5f), MathF.Log(0.3f)];
        var rng = new RandomStream(1);
        Assert.All(Draw(new GenerationOptions { TopP = 0.45f }, logits, rng, 200), t => Assert.Equal(1, t));
        Assert.All(Draw(new GenerationOptions { TopP = 1e-6f }, logits, rng, 50), t => Assert.Equal(1, t));
        var two = Draw(new GenerationOptions { TopP = 0.75f }, logits, rng, 2000);
        Assert.DoesNotContain(0, two);
        Assert.InRange(two.Count(t => t == 2) / 2000.0, 0.3 / 0.8 - 0.05, 0.3 / 0.8 + 0.05);
        var all = Draw(new GenerationOptions { TopP = 1f }, logits, rng, 4000);
        Assert.InRange(all.Count(t => t == 0) / 4000.0, 0.17, 0.23);
    }

    [Fact]
    public void Top_k_keeps_the_k_most_likely_and_temperature_sharpens()
    {
        var logits = TestData.Uniform(3, 1000, -3f, 3f);
        var top = Enumerable.Range(0, 1000).OrderByDescending(i => logits[i]).Take(5).ToHashSet();
        var rng = new RandomStream(2);
        var drawn = Draw(new GenerationOptions { TopK = 5 }, logits, rng, 500);
        Assert.All(drawn, t => Assert.Contains(t, top));
        Assert.Equal(top.Count, drawn.Distinct().Count());
        var big = Draw(new GenerationOptions { TopK = 600, TopP = 0.9f }, logits, rng, 300);
        var top600 = Enumerable.Range(0, 1000).OrderByDescending(i => logits[i]).Take(600).ToHashSet();
        Assert.All(big, t => Assert.Contains(t, top600));
        var cold = Draw(new GenerationOptions { Temperature = 1e-3f }, logits, rng, 50);
        Assert.All(cold, t => Assert.Equal(Sampler.ArgMax(logits), t));
    }

    [Fact]
    public void Invalid_options_are_rejected()
    {
        Assert.Throws<ArgumentException>(() => new GenerationOptions { TopP = 0f }.Validate());
        Assert.Throws<ArgumentException>(() => new GenerationOptions { Temperature = -1f }.Validate());
        Assert.Throws<ArgumentException>(() => new GenerationOptions { TopK = -1 }.Validate());
        Assert.Throws<ArgumentException>(() => new GenerationOptions { MaxNewTokens = -1 }.Validate());
    }

    private static List<int> Draw(GenerationOptions options, float[] logits, RandomStream rng, int count)
    {
        var sampler = new Sampler(options, logits.Length);
        return [.. Enumerable.Range(0, count).Select(_ => sampler.Sample(logits, rng))];
    }
}
