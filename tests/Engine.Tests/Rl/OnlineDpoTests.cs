using System.Text.Json;
using Engine.Core.Cpu;
using Engine.Models;
using Engine.Tests.Training;
using Engine.Training;
using Engine.Training.Data;
using Engine.Training.Options;
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
