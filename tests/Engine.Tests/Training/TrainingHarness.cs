using System.Text.Json;
using Engine.Core.Cpu;
using Engine.Models;
using Engine.Training;
using Engine.Training.Data;
using Engine.Training.Objectives;

namespace Engine.Tests.Training;

/// <summary>Tiny models (GPT-2, C=32, L=2, V=64, T≤32), a character encoder and synthetic data for trainer tests.</summary>
internal static class TrainingHarness
{
    public const int Vocab = 64;
    public const int Eos = 1;

    /// <summary>Printable ASCII to ids 2..63 (case folded onto a small alphabet), no special tokens.</summary>
    public static readonly ITextEncoder Encoder = new FuncTextEncoder(
        text => [.. text.Select(c => 2 + (Math.Clamp(c, ' ', '~') - ' ') % (Vocab - 2))], bosTokenId: null, eosTokenId: Eos);

    public static Transformer Model(CpuBackend backend, ulong seed = 1)
    {
        var model = new Transformer(TransformerConfig.Gpt2(vocabSize: Vocab, maxSequenceLength: 32, layers: 2, channels: 32, heads: 2), backend);
        model.InitializeWeights(seed);
        return model;
    }

    /// <summary>Plain-text documents of pseudo-words, for pretraining.</summary>
    public static List<Example> Texts(int count, int seed)
    {
        var rng = new Random(seed);
        var words = new[] { "the", "cat", "sat", "on", "a", "mat", "and", "dog", "ran", "far" };
        return [.. Enumerable.Range(0, count).Select(i => (Example)new TextExample(string.Join(" ", Enumerable.Range(0, 4 + rng.Next(6)).Select(_ => words[rng.Next(words.Length)]))) { Line = i + 1 })];
    }

    /// <summary>Prompt/completion pairs: "say k:" → "k k k." for a letter k (copy and format, learnable by a tiny model).</summary>
    public static List<Example> Instructions(int count, int seed)
    {
        var rng = new Random(seed);
        return [.. Enumerable.Range(0, count).Select(i =>
        {
            char k = (char)('a' + rng.Next(8));
            string pad = new(' ', rng.Next(3));
            return (Example)new PromptCompletionExample(TextOrChat.FromText($"say{pad} {k}:"), TextOrChat.FromText($" {k} {k} {k}.")) { Line = i + 1 };
        })];
    }

    public static float[] Read(CpuBackend backend, Engine.Core.Tensors.Tensor t)
    {
        var host = new float[t.ElementCount];
        backend.CopyToHost<float>(t, host);
        return host;
    }

    /// <summary>metrics.jsonl without the wall-clock field.</summary>
    public static List<string> Metrics(string directory) =>
        [.. File.ReadAllLines(Path.Combine(directory, Trainer<SequenceBatch>.MetricsFile)).Select(line =>
        {
            var map = JsonSerializer.Deserialize<Dictionary<string, JsonElement>>(line)!;
            map.Remove("tokens_per_second");
            return JsonSerializer.Serialize(map);
        })];
}

/// <summary>An <see cref="IProgress{T}"/> that calls back on the training thread (Progress&lt;T&gt; posts elsewhere).</summary>
internal sealed class SyncProgress<T>(Action<T> report) : IProgress<T>
{
    public void Report(T value) => report(value);
}

/// <summary>A temporary directory removed on dispose.</summary>
internal sealed class TempDirectory : IDisposable
{
    public string Path { get; } = Directory.CreateTempSubdirectory("engine-trainer-").FullName;

    public string Sub(string name) => System.IO.Path.Combine(Path, name);

    public void Dispose()
    {
        try
        {
            Directory.Delete(Path, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}

/// <summary>The LM objective with a NaN injected at one call: into the loss, or into the gradients (so only the norm shows it).</summary>
internal sealed class PoisonedObjective(Transformer model, int poisonedCall, bool intoGradient) : ITrainingObjective<SequenceBatch>
{
    private readonly LanguageModelObjective inner = new(model);
    private int calls;

    public ObjectiveResult Step(SequenceBatch batch, float lossScale)
    {
        var r = inner.Step(batch, lossScale);
        if (++calls != poisonedCall)
        {
            return r;
        }

        if (intoGradient)
        {
            model.Backend.CopyFromHost<float>(model.Parameters.Gradients.Slice(5, 1), [float.NaN]);
            return r;
        }

        return r with { Loss = double.NaN };
    }

    public ObjectiveResult Evaluate(SequenceBatch batch) => inner.Evaluate(batch);

    public double Weight(SequenceBatch batch) => inner.Weight(batch);
}
