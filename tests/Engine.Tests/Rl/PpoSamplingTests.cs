using Engine.Core.Cpu;
using Engine.Models;
using Engine.Models.Generation;
using Engine.Training.Data;
using Engine.Training.Rl.Sampling;
using Xunit;

namespace Engine.Tests.Rl;

/// <summary>The shared rollout pieces: response sampler, reward scorer, packing into [B,T].</summary>
public sealed class PpoSamplingTests : IDisposable
{
    private const int Vocab = 40;
    private const int Eos = 3;
    private readonly CpuBackend backend = new(2);

    public void Dispose() => backend.Dispose();

    [Fact]
    public void Samples_match_the_generator_and_do_not_depend_on_chunking()
    {
        using var policy = Policy(1);
        int[][] prompts = [[1, 2], [5, 6, 7], [8]];
        var options = new GenerationOptions { MaxNewTokens = 9, Temperature = 1.3f, Seed = 77, StopTokens = [Eos] };
        using var whole = new ResponseSampler(policy);
        using var chunked = new ResponseSampler(policy, maxBatch: 2);
        var a = whole.Sample(prompts, options, samplesPerPrompt: 2);
        var b = chunked.Sample(prompts, options, samplesPerPrompt: 2);
        Assert.Equal(6, a.Count);
        for (int i = 0; i < a.Count; i++)
        {
            Assert.Equal(prompts[i / 2], a[i].Prompt);
            Assert.Equal(a[i].Response, b[i].Response);
            Assert.Equal(a[i].EndedWithEos, b[i].EndedWithEos);
            Assert.Equal(a[i].EndedWithEos, a[i].Response.Length > 0 && a[i].Response[^1] == Eos);
        }

        // The same streams as the generator's own: sequence i of the call draws from SequenceSeed(seed, i).
        using var generator = new Generator(policy);
        var expected = generator.Generate([.. prompts.SelectMany(p => new[] { p, p })], options);
        for (int i = 0; i < a.Count; i++)
        {
            Assert.Equal(expected[i].Tokens, a[i].Response);
        }

        Assert.NotEqual(a[0].Response, a[1].Response);
    }

    [Fact]
    public void A_response_is_cut_to_fit_the_context()
    {
        using var policy = Policy(2);
        int context = policy.Config.MaxSequenceLength;
        using var sampler = new ResponseSampler(policy);
        var prompt = Enumerable.Range(0, context - 2).Select(i => 4 + (i % 30)).ToArray();
        var r = sampler.Sample([prompt], new GenerationOptions { MaxNewTokens = 10, Temperature = 1f, Seed = 3 })[0];
        Assert.True(r.Length <= context, $"prompt + response is {r.Length} tokens, context {context}");
        Assert.False(r.EndedWithEos);
        Assert.Throws<ArgumentException>(() => sampler.Sample([new int[context]], new GenerationOptions()));
    }

    [Fact]
    public void Packing_aligns_targets_and_mask_with_the_predicting_positions()
    {
        var rollouts = new[]
        {
            new Rollout([1, 2, 3], [7, 8, Eos], true),
            new Rollout([4], [9], false),
            new Rollout([5, 6], [], false),
        };
        var batch = RolloutBatch.Pack(rollouts, padTokenId: 0);
        Assert.Equal(3, batch.Batch);
        Assert.Equal(6, batch.Time);
        Assert.Equal([1, 2, 3, 7, 8, Eos, 4, 9, 0, 0, 0, 0, 5, 6, 0, 0, 0, 0], batch.Tokens);
        int x = CollatorOptions.IgnoreIndex;
        Assert.Equal([x, x, 7, 8, Eos, x, 9, x, x, x, x, x, x, x, x, x, x, x], batch.Targets);
        Assert.Equal([0f, 0, 1, 1, 1, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], batch.Mask);
        Assert.Equal([1, 0, 0], batch.EndedWithEos);
        Assert.Equal([4, 0, -1], Enumerable.Range(0, 3).Select(batch.LastResponsePosition));
        Assert.Equal(4, batch.ResponseTokens);

        var picked = batch.Select([1, 0]);
        Assert.Equal(6, picked.Time);
        Assert.Equal(batch.Tokens[6..12], picked.Tokens[..6]);
        Assert.Equal(batch.Mask[..6], picked.Mask[6..]);
        Assert.Equal(batch.Mask[6..12].Concat(batch.Mask[..6]), batch.GatherRows(batch.Mask, [1, 0]));
        Assert.Throws<ArgumentOutOfRangeException>(() => RolloutBatch.Pack(rollouts, 0, time: 5));
    }

    [Fact]
    public void Scores_are_the_head_at_the_last_token_normalised_and_clipped()
    {
        using var rm = RewardModel(5);
        var rollouts = new[]
        {
            new Rollout([1, 2, 3], [7, 8, Eos], true),
            new Rollout([4], [9], false),
            new Rollout([5, 6], [], false),
        };

        var raw = new RewardScorer(rm, new RewardScoringOptions { BatchSize = 2 }).Score(rollouts);
        for (int i = 0; i < rollouts.Length; i++)
        {
            int[] tokens = rollouts[i].Tokens();
            float alone = rm.Score(tokens, 1, tokens.Length, [tokens.Length - 1])[0];
            Assert.Equal(alone, raw.Raw[i], 5);
        }

        Assert.Equal(raw.Raw, raw.Rewards);
        Assert.Throws<ArgumentException>(() => new RewardScorer(rm, new RewardScoringOptions { Normalize = true }));

        rm.RewardStatistics = new RewardStatistics(0.25, 0.5, 10);
        var normalised = new RewardScorer(rm, new RewardScoringOptions { Normalize = true, Clip = 0.3f, BatchSize = 0 }).Score(rollouts);
        for (int i = 0; i < rollouts.Length; i++)
        {
            Assert.Equal(raw.Raw[i], normalised.Raw[i], 5);
            Assert.Equal((float)Math.Clamp((raw.Raw[i] - 0.25) / 0.5, -0.3, 0.3), normalised.Rewards[i], 5);
        }
    }

    private Transformer Policy(ulong seed)
    {
        var model = new Transformer(TransformerConfig.Gpt2(vocabSize: Vocab, maxSequenceLength: 16, layers: 1, channels: 16, heads: 2), backend);
        model.InitializeWeights(seed);
        return model;
    }

    private Transformer RewardModel(ulong seed)
    {
        var model = new Transformer(TransformerConfig.Gpt2(vocabSize: Vocab, maxSequenceLength: 16, layers: 1, channels: 16, heads: 2) with { Head = HeadKind.Scalar }, backend);
        model.InitializeWeights(seed);
        return model;
    }
}
