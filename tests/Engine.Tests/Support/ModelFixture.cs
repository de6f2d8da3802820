using System.Text.Json;
using Engine.Models.Formats;

namespace Engine.Tests.Support;

/// <summary>
/// One reference model fixture (tests/fixtures/README.md): HF config, initial parameters, a batch, and the PyTorch
/// float64 logits, loss, gradients and AdamW trajectory, loaded through the library's safetensors reader.
/// </summary>
public sealed class ModelFixture
{
    /// <summary>Every committed fixture.</summary>
    public static readonly string[] Names = ["gpt2_tiny", "llama_tiny", "llama_tied"];

    private ModelFixture(string name, IReadOnlyDictionary<string, string> metadata)
    {
        Name = name;
        Metadata = metadata;
        ConfigJson = metadata["config"];
        OptimizerJson = metadata["optimizer"];
        using (var doc = JsonDocument.Parse(ConfigJson))
        {
            Config = doc.RootElement.Clone();
        }

        using (var doc = JsonDocument.Parse(OptimizerJson))
        {
            Optimizer = doc.RootElement.Clone();
        }
    }

    /// <summary>Folder the test project copies the fixtures to.</summary>
    public static string Directory => Path.Combine(AppContext.BaseDirectory, "Fixtures");

    /// <summary>Fixture name (file name without extension).</summary>
    public string Name { get; }

    /// <summary>The HF config.json text.</summary>
    public string ConfigJson { get; }

    /// <summary>The parsed HF config.</summary>
    public JsonElement Config { get; }

    /// <summary>The optimizer hyper-parameters and decay rule (JSON text).</summary>
    public string OptimizerJson { get; }

    /// <summary>The parsed optimizer settings.</summary>
    public JsonElement Optimizer { get; }

    /// <summary>The whole <c>__metadata__</c> map.</summary>
    public IReadOnlyDictionary<string, string> Metadata { get; }

    /// <summary>Every F32 tensor by name.</summary>
    public Dictionary<string, float[]> Floats { get; } = new(StringComparer.Ordinal);

    /// <summary>Every I32 tensor by name.</summary>
    public Dictionary<string, int[]> Ints { get; } = new(StringComparer.Ordinal);

    /// <summary>Every tensor's shape by name.</summary>
    public Dictionary<string, long[]> Shapes { get; } = new(StringComparer.Ordinal);

    /// <summary>HF parameter names, in file order (everything that is not a reference output or the batch).</summary>
    public IEnumerable<string> ParameterNames => Floats.Keys.Where(IsParameter);

    /// <summary>Config integer field.</summary>
    public int ConfigInt(string field) => Config.GetProperty(field).GetInt32();

    /// <summary>Loads <c>Fixtures/&lt;name&gt;.safetensors</c>.</summary>
    public static ModelFixture Load(string name)
    {
        string path = Path.Combine(Directory, name + ".safetensors");
        using var file = SafetensorsFile.Open(path);
        var fixture = new ModelFixture(name, file.Metadata);
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

    private static bool IsParameter(string name) =>
        name is not ("logits" or "loss")
        && !name.StartsWith("grad.", StringComparison.Ordinal)
        && !name.StartsWith("final.", StringComparison.Ordinal)
        && !name.StartsWith("trajectory.", StringComparison.Ordinal);
}
