using Engine.Core.Cpu;
using Engine.Models;
using Engine.Training.Rl.Ppo;

namespace Engine.Tests.Rl;

/// <summary>
/// A tiny PPO problem: a GPT-2 policy over 16 tokens, prompts of 2–4 tokens, responses of up to 4, and a fixed reward
/// model that scores +1 when the sequence's last token is <see cref="Rewarded"/> and −1 otherwise (its layers are all
/// zero, so the score is the head on the final norm of the last token's embedding).
/// </summary>
internal static class PpoHarness
{
    public const int Vocab = 16;
    public const int Eos = 1;
    public const int Rewarded = 7;
    public const int Context = 12;

    public static TransformerConfig PolicyConfig => TransformerConfig.Gpt2(vocabSize: Vocab, maxSequenceLength: Context, layers: 2, channels: 32, heads: 2);

    public static Transformer Policy(CpuBackend backend, ulong seed = 11, bool trainable = true)
    {
        var model = new Transformer(PolicyConfig, backend, trainable);
        model.InitializeWeights(seed);
        return model;
    }

    public static Transformer Critic(CpuBackend backend, ulong seed = 12)
    {
        var model = new Transformer(PolicyConfig with { Head = HeadKind.Scalar }, backend);
        model.InitializeWeights(seed);
        return model;
    }

    /// <summary>The fixed reward model: +1 for a last token of <see cref="Rewarded"/>, −1 for any other.</summary>
    public static Transformer RewardModel(CpuBackend backend)
    {
        const int c = 8;
        var model = new Transformer(TransformerConfig.Gpt2(vocabSize: Vocab, maxSequenceLength: Context, layers: 1, channels: c, heads: 1) with { Head = HeadKind.Scalar }, backend, trainable: false);
        var u = Enumerable.Range(0, c).Select(i => i % 2 == 0 ? 1f : -1f).ToArray();
        var embedding = new float[Vocab * c];
        for (int t = 0; t < Vocab; t++)
        {
            for (int i = 0; i < c; i++)
            {
                embedding[(t * c) + i] = t == Rewarded ? u[i] : -u[i];
            }
        }

        backend.CopyFromHost<float>(model.Parameters.Value(Names.Embedding), embedding);
        backend.CopyFromHost<float>(model.Parameters.Value(Names.FinalNormWeight), Enumerable.Repeat(1f, c).ToArray());
        backend.CopyFromHost<float>(model.Parameters.Value(Names.ScoreWeight), u.Select(x => x / c).ToArray());
        return model;
    }

    public static List<int[]> Prompts(int count, int seed)
    {
        var rng = new Random(seed);
        return [.. Enumerable.Range(0, count).Select(_ => Enumerable.Range(0, 2 + rng.Next(3)).Select(_ => 2 + rng.Next(Vocab - 2)).ToArray())];
    }

    public static PpoOptions Options(string output, int steps) => new()
    {
        OutputDirectory = output,
        MaxSteps = steps,
        BatchSize = 16,
        NumMiniBatches = 2,
        NumPpoEpochs = 4,
        LearningRate = 3e-3,
        CriticLearningRate = 3e-3,
        Schedule = Engine.Training.Options.LearningRateSchedule.Constant,
        ResponseLength = 4,
        MaxLength = Context,
        Temperature = 1f,
        KlCoef = 0.1,
        VfCoef = 0.5f,
        Optimizer = new AdamWSettings { WeightDecay = 0f, MaxGradNorm = 1f },
        CheckpointInterval = 0,
        Seed = 5,
    };

    /// <summary>The four roles; the reference is a frozen copy of the policy's initial weights.</summary>
    public sealed class Roles : IDisposable
    {
        public Roles(CpuBackend backend)
        {
            Actor = Policy(backend);
            Reference = Policy(backend, trainable: false);
            Critic = Critic(backend);
            Reward = RewardModel(backend);
            Models = new PpoModels(Actor, Critic, Reward, PolicyReference.Resident(Reference));
        }

        public Transformer Actor { get; }

        public Transformer Reference { get; }

        public Transformer Critic { get; }

        public Transformer Reward { get; }

        public PpoModels Models { get; }

        public void Dispose()
        {
            Models.Reference.Dispose();
            Actor.Dispose();
            Reference.Dispose();
            Critic.Dispose();
            Reward.Dispose();
        }
    }
}
