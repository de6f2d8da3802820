using Engine.Core;
using Engine.Core.Cpu;
using Engine.Models;
using Engine.Models.HuggingFace;
using Engine.Tests.Support;
using Engine.Tests.Training;
using Engine.Training.Rl.Rewards;
using Engine.Training.Rl.Sampling;
using Xunit;
using static Engine.Tests.Rl.Rewards.RewardSamples;

namespace Engine.Tests.Rl.Rewards;

public sealed class ModelRewardTests : IDisposable
{
    private const int Vocab = 40;
    private readonly CpuBackend backend = new(1);
    private readonly TempDirectory dir = new();

    public void Dispose()
    {
        dir.Dispose();
        backend.Dispose();
    }

    private static RewardSample[] Samples() =>
    [
        new(Row(), "Q?", [1, 2, 3], "a", [7, 8, 3], true),
        new(Row(), "Q?", [4], "b", [9], false),
        new(Row(), "Q?", [5, 6], "", [], false),
    ];

    [Fact]
    public void Scores_are_the_reward_scorers_on_prompt_plus_completion_normalised_when_statistics_are_stored()
    {
        using var rm = RewardModel(HeadKind.Scalar);
        var rollouts = Samples().Select(s => new Rollout(s.PromptIds, s.CompletionIds, s.EndedWithEos)).ToList();
        var raw = new RewardScorer(rm).Score(rollouts).Raw;
        Assert.Equal(raw, Scores(new ModelReward(rm), Samples()));
        Approx.Equal(raw, Scores(new ModelReward(rm, batchSize: 2), Samples()), atol: 1e-5f, rtol: 0f);
        Assert.NotEqual(raw[0], raw[1]);

        rm.RewardStatistics = new RewardStatistics(0.25, 0.5, 10);
        var normalised = new RewardScorer(rm, new RewardScoringOptions { Normalize = true }).Score(rollouts).Rewards;
        Assert.Equal(normalised, Scores(new ModelReward(rm), Samples()));
        Assert.Equal((raw[0] - 0.25) / 0.5, normalised[0], 5);
    }

    [Fact]
    public void The_model_spec_loads_a_checkpoint_and_scores_as_the_scorer_does()
    {
        using var rm = RewardModel(HeadKind.Scalar);
        rm.RewardStatistics = new RewardStatistics(-0.5, 2, 10);
        HfCheckpoint.Save(rm, dir.Sub("rm"));
        var expected = new RewardScorer(rm, new RewardScoringOptions { Normalize = true })
            .Score([.. Samples().Select(s => new Rollout(s.PromptIds, s.CompletionIds, s.EndedWithEos))]).Rewards;

        using var reward = Assert.IsType<ModelReward>(RewardSpecs.Parse("model:" + dir.Sub("rm"), new RewardSpecContext(backend, 8) { VocabularySize = Vocab }));
        Assert.Equal("model", reward.Name);
        Assert.True(reward.Scorer.Options.Normalize);
        Assert.Equal(expected, Scores(reward, Samples()));

        var outside = new RewardSample(Row(line: 9), "Q?", [1], "x", [Vocab], true);
        var e = Assert.Throws<RewardFunctionException>(() => new RewardSet([reward]).Score([outside]));
        Assert.Equal($"prompts.jsonl:9: reward function 'model': ArgumentException: completion 0 holds a token id outside the reward model's vocabulary of {Vocab}", e.Message);
    }

    [Fact]
    public void A_directory_that_is_no_reward_model_is_a_one_line_error_naming_the_flag_and_the_directory()
    {
        using (var lm = RewardModel(HeadKind.LanguageModel))
        {
            HfCheckpoint.Save(lm, dir.Sub("lm"));
        }

        using (var rm = RewardModel(HeadKind.Scalar))
        {
            HfCheckpoint.Save(rm, dir.Sub("rm"));
        }

        string missing = dir.Sub("missing");
        Assert.Equal($"--reward: 'model:{missing}': {missing}: no such directory; a reward model is a checkpoint directory (engine rm writes one)", Error("model:" + missing, 0));
        Assert.Equal($"--reward: 'model:{dir.Path}': {dir.Path}: no config.json in this directory; a Hugging Face checkpoint needs one", Error("model:" + dir.Path, 0));
        Assert.Equal($"--reward: 'model:{dir.Sub("lm")}': {dir.Sub("lm")}: has no scalar (reward) head; train one with engine rm", Error("model:" + dir.Sub("lm"), 0));
        Assert.Equal(
            $"--reward: 'model:{dir.Sub("rm")}': {dir.Sub("rm")}: the reward model reads {Vocab} token ids, the policy writes 50257; a reward model must share the policy's tokenizer",
            Error("model:" + dir.Sub("rm"), 50257));
    }

    private string Error(string spec, int vocabulary) =>
        Assert.Throws<InputException>(() => RewardSpecs.Parse(spec, new RewardSpecContext(backend, 8) { VocabularySize = vocabulary })).Message;

    private Transformer RewardModel(HeadKind head)
    {
        var model = new Transformer(TransformerConfig.Gpt2(vocabSize: Vocab, maxSequenceLength: 16, layers: 1, channels: 16, heads: 2) with { Head = head }, backend);
        model.InitializeWeights(5);
        return model;
    }
}
