using System.Text.Json;
using Engine.Core.Backends;
using Engine.Models;
using Engine.Models.Formats;
using Engine.Models.HuggingFace;
using Engine.Training.Data;
using Engine.Training.Objectives;

namespace Engine.Tests.Support;

/// <summary>
/// The objective fixture <c>Fixtures/objectives.safetensors</c> (tests/fixtures/README.md): a tiny GPT-2 policy and
/// reference, a tiny Qwen2 reward model, two preference datasets, and float64 PyTorch losses, metrics and gradients of
/// one DPO, reward-model and SFT step.
/// </summary>
public sealed class ObjectiveFixture
{
    private static readonly Lazy<ObjectiveFixture> Shared = new(() => Load("objectives"));

    private ObjectiveFixture(IReadOnlyDictionary<string, string> metadata)
    {
        Metadata = metadata;
        using var doc = JsonDocument.Parse(metadata["cases"]);
        Cases = doc.RootElement.Clone();
    }

    /// <summary>The fixture, loaded once per test run.</summary>
    public static ObjectiveFixture Instance => Shared.Value;

    /// <summary>The <c>__metadata__</c> map.</summary>
    public IReadOnlyDictionary<string, string> Metadata { get; }

    /// <summary>Hyper-parameters by objective and case.</summary>
    public JsonElement Cases { get; }

    /// <summary>Every F32 tensor by name.</summary>
    public Dictionary<string, float[]> Floats { get; } = new(StringComparer.Ordinal);

    /// <summary>Every I32 tensor by name.</summary>
    public Dictionary<string, int[]> Ints { get; } = new(StringComparer.Ordinal);

    /// <summary>Every tensor's shape by name.</summary>
    public Dictionary<string, long[]> Shapes { get; } = new(StringComparer.Ordinal);

    /// <summary>A model from the fixture's config <paramref name="configKey"/> with the weights stored under <paramref name="prefix"/>.</summary>
    public Transformer Model(Backend backend, string configKey, string prefix, bool trainable = true)
    {
        var model = new Transformer(HfConfig.Parse(Metadata[configKey], configKey), backend, trainable);
        model.LoadHuggingFaceWeights((name, _) => Floats.GetValueOrDefault($"{prefix}.{name}"));
        if (model.HasScalarHead)
        {
            model.ScoreBias = Floats[$"{prefix}.{Names.ScoreBias}"][0];
        }

        return model;
    }

    /// <summary>The rows of dataset <paramref name="name"/> as a collated batch (padding: token 0, no target).</summary>
    public SequenceBatch Sequences(string name)
    {
        var shape = Shapes[$"{name}.input_ids"];
        int rows = (int)shape[0], time = (int)shape[1];
        var tokens = Ints[$"{name}.input_ids"];
        var targets = Ints[$"{name}.targets"];
        var lengths = Ints[$"{name}.lengths"];
        var mask = targets.Select(t => t >= 0 ? 1f : 0f).ToArray();
        var documents = new int[rows * time];
        var positions = new int[rows * time];
        for (int r = 0; r < rows; r++)
        {
            for (int t = 0; t < time; t++)
            {
                documents[(r * time) + t] = t < lengths[r] ? 0 : -1;
                positions[(r * time) + t] = t < lengths[r] ? t : 0;
            }
        }

        return new SequenceBatch(rows, time, tokens, targets, mask, documents, positions, lengths);
    }

    /// <summary>Dataset <paramref name="name"/> as a preference batch, with or without its margins.</summary>
    public PreferenceBatch Batch(string name, bool margins) => new(
        Sequences(name), Ints[$"{name}.chosen"], Ints[$"{name}.rejected"], Floats[$"{name}.weights"],
        margins ? Floats[$"{name}.margins"] : null, Ints[$"{name}.groups"][0]);

    /// <summary>Reads <c>Fixtures/&lt;name&gt;.safetensors</c>, a fixture of the same layout (tensors, <c>cases</c> and model configs in its metadata).</summary>
    internal static ObjectiveFixture Load(string name)
    {
        using var file = SafetensorsFile.Open(Path.Combine(ModelFixture.Directory, name + ".safetensors"));
        var fixture = new ObjectiveFixture(file.Metadata);
        foreach (TensorInfo t in file.Tensors)
        {
            fixture.Shapes[t.Name] = [.. t.Shape];
            if (t.DType == SafetensorsDType.I32)
            {
                fixture.Ints[t.Name] = file.ReadI32(t.Name);
            }
            else
            {
                fixture.Floats[t.Name] = file.ReadF32(t.Name);
            }
        }

        return fixture;
    }
}
