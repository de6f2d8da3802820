using System.Text.Json;
using Engine.Core.Cpu;
using Engine.Models;
using Engine.Models.Lora;
using Engine.Tests.Training;
using Engine.Training;
using Engine.Training.Data;
using Engine.Training.Options;
using Engine.Training.Rl.Memory;
using Engine.Training.Rl.OnlineDpo;
using Xunit;
using Xunit.Abstractions;

namespace Engine.Tests.Rl;

/// <summary>
/// Online DPO on a tiny problem: a random GPT-2 policy over 8 tokens, and a fixed reward model that scores +2 when the
/// response's last token is <see cref="Rewarded"/> and −2 otherwise (its trunk passes the token embedding through, its
/// head reads one direction of it).
/// </summary>
[Trait("Category", "Training")]
public sealed class OnlineDpoTests(ITestOutputHelper output) : IDisposable
{
    private const int Vocab = 8;
    private const int Rewarded = 3;

    private static readonly TransformerConfig Config = TransformerConfig.Gpt2(Vocab, maxSequenceLength: 16, layers: 1, channels: 16, heads: 2);

    private readonly CpuBackend backend = new(2);
    private readonly TempDirectory dir = new();

    public void Dispose()
    {
        dir.Dispose();
        backend.Dispose();
    }

    [Fact]
    public void The_mean_reward_model_score_rises()
    {
        using var policy = Policy();
        using var reference = Policy(trainable: false);
        using var rm = RewardModel();
        var options = Options(dir.Sub("learn")) with { MaxSteps = 24 };
        using var trainer = new OnlineDpoTrainer(policy, reference, rm, Prompts(), Collator, options, []);
        var result = trainer.Run();
        Assert.Equal(TrainingStatus.Completed, result.Status);
        var scores = Lines(options.OutputDirectory).Select(l => l.GetProperty("objective/scores").GetDouble()).ToList();
        output.WriteLine(string.Join(" ", scores.Select(s => s.ToString("F2", System.Globalization.CultureInfo.InvariantCulture))));
        output.WriteLine(trainer.TimeSummary());
        double first = scores.Take(4).Average(), last = scores.TakeLast(4).Average();
        Assert.True(last > first + 1.0, $"mean score {first:F3} in the first rounds, {last:F3} in the last");
    }

    [Fact]
    public void A_run_cancelled_and_resumed_reaches_the_bits_of_an_uninterrupted_run()
    {
        // 16 prompts, 8 per round (4 per micro-batch × 2), 2 updates per round: 8 steps are 4 rounds over 2 epochs.
        var options = Options(dir.Sub("whole")) with { MaxSteps = 8, BatchSize = 4, GradientAccumulationSteps = 2, UpdatesPerRound = 2 };
        float[] whole;
        using (var policy = Policy())
        using (var reference = Policy(trainable: false))
        using (var rm = RewardModel())
        using (var trainer = new OnlineDpoTrainer(policy, reference, rm, Prompts(), Collator, options, []))
        {
            Assert.Equal(TrainingStatus.Completed, trainer.Run().Status);
            whole = TrainingHarness.Read(backend, policy.Parameters.Values);
        }

        // Cancelled during step 3, the run finishes its round (step 4) and checkpoints there; the resumed run samples the same pairs.
        var split = options with { OutputDirectory = dir.Sub("split") };
        using (var cts = new CancellationTokenSource())
        using (var policy = Policy())
        using (var reference = Policy(trainable: false))
        using (var rm = RewardModel())
        using (var trainer = new OnlineDpoTrainer(policy, reference, rm, Prompts(), Collator, split, []))
        {
            var result = trainer.Run(new SyncProgress<TrainingProgress>(p =>
            {
                if (p.Step == 3)
                {
                    cts.Cancel();
                }
            }), cts.Token);
            Assert.Equal(TrainingStatus.Cancelled, result.Status);
            Assert.Equal(4, result.Steps);
            Assert.EndsWith("checkpoint-4", result.LastCheckpoint, StringComparison.Ordinal);
        }

        using (var policy = Policy())
        using (var reference = Policy(trainable: false))
        using (var rm = RewardModel())
        using (var trainer = new OnlineDpoTrainer(policy, reference, rm, Prompts(), Collator, split with { Resume = true }, []))
        {
            var result = trainer.Run();
            Assert.Equal(TrainingStatus.Completed, result.Status);
            Assert.EndsWith("checkpoint-4", result.ResumedFrom, StringComparison.Ordinal);
            Assert.Equal(whole, TrainingHarness.Read(backend, policy.Parameters.Values));
        }

        Assert.Equal(Deterministic(options.OutputDirectory), Deterministic(split.OutputDirectory));
        Assert.Equal(8, Lines(split.OutputDirectory).Count);
    }

    [Fact]
    public void Memory_plan_of_a_lora_policy_counts_a_separate_reference_in_full_and_trains_adapters_only()
    {
        // V = 8, context 16, L = 1, C = 16: wte 8·16 + wpe 16·16 + one layer of 3280 (see MemoryPlanTests) + ln_f 2·16.
        const long parameters = 3696;
        using var policy = Policy(trainable: false);
        long adapters = policy.AddLora(new LoraConfig(Rank: 2, Alpha: 4), 1).Parameters.ElementCount;
        using var reference = Policy(trainable: false);
        using var rm = RewardModel();
        using var separate = new OnlineDpoTrainer(policy, reference, rm, Prompts(), Collator, Options(dir.Sub("separate")), []);
        using var shared = new OnlineDpoTrainer(policy, policy, rm, Prompts(), Collator, Options(dir.Sub("shared")), []);
        RoleMemory Row(MemoryPlan plan, string role) => plan.Roles.Single(r => r.Role == role);

        Assert.Equal(parameters * 4, Row(separate.MemoryPlan, "reference").Weights);
        Assert.Equal(0, Row(shared.MemoryPlan, "reference").Weights);
        Assert.Equal(shared.MemoryPlan.Total + (parameters * 4), separate.MemoryPlan.Total);
        foreach (var plan in new[] { separate.MemoryPlan, shared.MemoryPlan })
        {
            Assert.Equal(adapters * 4, Row(plan, "policy").Gradients);
            Assert.Equal((parameters + adapters) * 4, Row(plan, "policy").Weights);
        }
    }

    [Fact]
    public void Metrics_follow_trl_names_and_the_memory_plan_has_the_three_roles()
    {
        using var policy = Policy();
        using var reference = Policy(trainable: false);
        using var rm = RewardModel();
        var options = Options(dir.Sub("metrics")) with { MaxSteps = 2 };
        using var trainer = new OnlineDpoTrainer(policy, reference, rm, Prompts(), Collator, options, [Rewarded]);
        Assert.Equal(["policy", "reference", "reward", "rollout", "workspace"], trainer.MemoryPlan.Roles.Select(r => r.Role));
        Assert.Equal(8 * 4, trainer.MemoryPlan.Shape.RolloutBatch);
        trainer.Run();
        var line = Lines(options.OutputDirectory)[^1];
        foreach (string key in new[]
        {
            "loss", "objective/scores", "objective/scores_margin", "objective/kl", "objective/rlhf_reward", "objective/non_score_reward",
            "objective/tied_prompts", "val/contain_eos_token", "val/response_length", "rewards/chosen", "rewards/rejected",
            "rewards/accuracies", "rewards/margins", "logps/chosen", "logps/rejected", "time/generating", "time/training",
        })
        {
            Assert.True(line.TryGetProperty(key, out var value) && double.IsFinite(value.GetDouble()), key);
        }

        // With the rewarded token as the stop token, every sample that ends early ends with it, so its score is the top one.
        Assert.InRange(line.GetProperty("val/contain_eos_token").GetDouble(), 0, 1);
        Assert.InRange(line.GetProperty("val/response_length").GetDouble(), 1, 4);
        Assert.InRange(line.GetProperty("objective/tied_prompts").GetDouble(), 0, 1);
        Assert.True(line.GetProperty("objective/scores_margin").GetDouble() > 0);
        Assert.True(trainer.GenerationTime > TimeSpan.Zero && trainer.TrainingTime > TimeSpan.Zero);
    }

    [Theory]
    [InlineData("samples", "samples_per_prompt must be at least 2")]
    [InlineData("greedy", "temperature must be finite and > 0")]
    [InlineData("steps", "multiples of updates_per_round")]
    [InlineData("beta", "dpo: ")]
    [InlineData("gap", "min_score_gap")]
    public void Bad_options_name_their_key(string kind, string message)
    {
        var options = Options(dir.Sub("bad"));
        options = kind switch
        {
            "samples" => options with { SamplesPerPrompt = 1 },
            "greedy" => options with { Temperature = 0f },
            "steps" => options with { MaxSteps = 3, UpdatesPerRound = 2 },
            "beta" => options with { Dpo = new() { Beta = 0f } },
            _ => options with { MinScoreGap = -1f },
        };
        var e = Assert.ThrowsAny<ArgumentException>(options.Validate);
        Assert.Contains(message, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Bad_inputs_are_refused_before_any_sampling()
    {
        using var policy = Policy();
        using var reference = Policy(trainable: false);
        using var rm = RewardModel();
        var options = Options(dir.Sub("inputs"));
        var e = Assert.Throws<ArgumentException>(() => new OnlineDpoTrainer(policy, reference, rm, [new int[16]], Collator, options, []));
        Assert.Contains("prompt 0 has 16 tokens; it needs 1 to 15", e.Message, StringComparison.Ordinal);
        e = Assert.Throws<ArgumentException>(() => new OnlineDpoTrainer(policy, reference, reference, Prompts(), Collator, options, []));
        Assert.Contains("scalar head", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_reward_model_that_ties_everything_leaves_the_policy_as_it_was()
    {
        using var policy = Policy();
        using var reference = Policy(trainable: false);
        using var flat = new Transformer(Config with { Head = HeadKind.Scalar }, backend, trainable: false);
        var options = Options(dir.Sub("flat")) with { MaxSteps = 2 };
        var before = TrainingHarness.Read(backend, policy.Parameters.Values);
        using var trainer = new OnlineDpoTrainer(policy, reference, flat, Prompts(), Collator, options, []);
        var reports = new List<TrainingProgress>();
        var result = trainer.Run(new InlineProgress<TrainingProgress>(reports.Add));

        // Every round is sampled MaxAttempts times, gives no pair, and its step is skipped: no update, not even AdamW's momentum.
        Assert.Equal(TrainingStatus.Completed, result.Status);
        Assert.Equal(2, result.SkippedSteps);

        // Progress says so at each step: a skipped step has no loss (NaN, not 0) and counts in SkippedSteps.
        Assert.Equal([1, 2], reports.Select(r => r.SkippedSteps));
        Assert.All(reports, r => Assert.True(double.IsNaN(r.Loss), $"step {r.Step} reported loss {r.Loss}"));
        Assert.Equal(before, TrainingHarness.Read(backend, policy.Parameters.Values));
        Assert.Equal(2, Lines(options.OutputDirectory)[^1].GetProperty("skipped_steps").GetDouble());
        Assert.True(trainer.GenerationTime > TimeSpan.Zero);
    }

    [Fact]
    public void A_round_whose_prompts_all_tie_samples_other_prompts_instead_of_skipping()
    {
        // A policy that answers a prompt ending in token 0, 1 or 2 the same way every time, so those prompts tie, and one
        // ending in 3–7 with differing answers; 4 prompts of 16 are of the second kind, 4 prompts per round, 8 samples each.
        using var policy = PeakedPolicy(trainable: true);
        using var reference = PeakedPolicy(trainable: false);
        using var rm = RewardModel();
        var prompts = Enumerable.Range(0, 16).Select(i => new[] { 5, i % 4 == 3 ? 3 + (i % 5) : i % 3 }).ToList();
        var options = Options(dir.Sub("tied")) with { MaxSteps = 8, BatchSize = 4, SamplesPerPrompt = 8, LearningRate = 1e-5 };
        using var trainer = new OnlineDpoTrainer(policy, reference, rm, prompts, Collator, options, []);
        var result = trainer.Run();

        // Some rounds drew only prompts that tie; rather than sampling those again (and tying again), they went on to the
        // next prompts of the order, found a pair, and no step was skipped.
        var lines = Lines(options.OutputDirectory);
        output.WriteLine(string.Join("\n", lines.Select(l => $"attempts {l.GetProperty("val/sampling_attempts")} tied {l.GetProperty("objective/tied_prompts")} distinct {l.GetProperty("val/distinct_responses")} skipped {l.GetProperty("skipped_steps")}")));
        Assert.Contains(lines, l => l.GetProperty("val/sampling_attempts").GetDouble() > 1);
        Assert.Equal(0, result.SkippedSteps);
        // The prompts of the first kind give one answer 8 times out of 8, those of the second up to 8 different ones.
        Assert.All(lines, l => Assert.InRange(l.GetProperty("val/distinct_responses").GetDouble(), 1, 8));
        Assert.Contains(lines, l => l.GetProperty("val/distinct_responses").GetDouble() < 3);
    }

    [Fact]
    public void Pairs_are_the_best_and_the_worst_sample_and_ties_are_skipped()
    {
        float[] scores = [0.5f, 2f, -1f, 2f, 1f, 1f, 1f, 1f, 0f, 0.2f, 0.1f, 0.15f];
        Assert.Equal([(0, 1, 2), (2, 9, 8)], PreferencePairs.Select(scores, 4));
        Assert.Equal([(0, 1, 2)], PreferencePairs.Select(scores, 4, minGap: 0.2f));
        Assert.Equal([(0, 1, 0), (1, 3, 2), (4, 9, 8), (5, 11, 10)], PreferencePairs.Select(scores, 2).Where(p => p.Prompt != 2 && p.Prompt != 3));
        Assert.Throws<ArgumentException>(() => PreferencePairs.Select(scores, 5).ToList());
        Assert.Throws<ArgumentException>(() => PreferencePairs.Select([1f, float.NaN], 2).ToList());
    }

    // metrics.jsonl without the wall-clock fields.
    private static List<string> Deterministic(string directory) =>
        [.. Lines(directory).Select(l => JsonSerializer.Serialize(
            l.EnumerateObject().Where(p => p.Name != "tokens_per_second" && !p.Name.StartsWith("time/", StringComparison.Ordinal)).ToDictionary(p => p.Name, p => p.Value.GetDouble())))];

    private OnlineDpoOptions Options(string output) => new()
    {
        OutputDirectory = output, BatchSize = 8, SamplesPerPrompt = 4, MaxNewTokens = 4, Temperature = 1f, LearningRate = 1e-2,
        Schedule = LearningRateSchedule.Constant, LogInterval = 1, CheckpointInterval = 0, MaxLength = 16, Seed = 5,
    };

    private static SequenceCollator Collator => new(TrainingHarness.Encoder, new CollatorOptions { MaxLength = 16 });

    private static List<int[]> Prompts()
    {
        var rng = new Random(11);
        return [.. Enumerable.Range(0, 16).Select(_ => Enumerable.Range(0, 2 + rng.Next(3)).Select(_ => rng.Next(Vocab)).ToArray())];
    }

    private Transformer Policy(bool trainable = true)
    {
        var model = new Transformer(Config, backend, trainable);
        model.InitializeWeights(7);
        return model;
    }

    // Blocks of zeros, so the logits after a token depend on it alone: LN(e)·Eᵀ with the tied embedding E. Tokens 0–2 have
    // a large embedding along their own channel and follow themselves with probability ≈ 1 − 1e-13; tokens 3–7 a small
    // one, and go on to any of 3–7 (itself with 0.44, the others 0.13 each, 0–2 with 0.05 in all).
    private Transformer PeakedPolicy(bool trainable)
    {
        var model = new Transformer(Config, backend, trainable);
        var embedding = new float[Vocab * Config.Channels];
        for (int v = 0; v < Vocab; v++)
        {
            embedding[(v * Config.Channels) + v] = v < 3 ? 8f : 0.3f;
        }

        backend.CopyFromHost<float>(model.Parameters.Value(Names.Embedding), embedding);
        backend.CopyFromHost<float>(model.Parameters.Value(Names.FinalNormWeight), Enumerable.Repeat(1f, Config.Channels).ToArray());
        return model;
    }

    // Every layer's parameters are 0, so the blocks add nothing and the final norm sees the token embedding (positions 0):
    // LN([1, −1, 0, …]) = [2, −2, 0, …] for the rewarded token and its negative for the others; the head reads dimension 0.
    private Transformer RewardModel()
    {
        var model = new Transformer(Config with { Head = HeadKind.Scalar }, backend, trainable: false);
        var embedding = new float[Vocab * Config.Channels];
        for (int v = 0; v < Vocab; v++)
        {
            embedding[v * Config.Channels] = v == Rewarded ? 1f : -1f;
            embedding[(v * Config.Channels) + 1] = v == Rewarded ? -1f : 1f;
        }

        var gain = Enumerable.Repeat(1f, Config.Channels).ToArray();
        var head = new float[Config.Channels];
        head[0] = 1f;
        backend.CopyFromHost<float>(model.Parameters.Value(Names.Embedding), embedding);
        backend.CopyFromHost<float>(model.Parameters.Value(Names.FinalNormWeight), gain);
        backend.CopyFromHost<float>(model.Parameters.Value(Names.ScoreWeight), head);
        return model;
    }

    private static List<JsonElement> Lines(string directory) =>
        [.. File.ReadAllLines(Path.Combine(directory, Trainer<SequenceBatch>.MetricsFile)).Select(l => JsonDocument.Parse(l).RootElement)];
}
