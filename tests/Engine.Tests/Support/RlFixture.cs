using System.Text.Json;
using Engine.Models.Formats;

namespace Engine.Tests.Support;

/// <summary>
/// The alignment-kernel fixture <c>Fixtures/kernels_rl.safetensors</c> (tests/fixtures/README.md): inputs, float64
/// PyTorch outputs, statistics and gradients, with the per-case hyper-parameters in the <c>cases</c> metadata (JSON).
/// </summary>
public sealed class RlFixture
{
    private static readonly Lazy<RlFixture> Shared = new(() => Load("kernels_rl"));

    private RlFixture(JsonElement cases) => Cases = cases;

    /// <summary>The fixture, loaded once per test run.</summary>
    public static RlFixture Instance => Shared.Value;

    /// <summary>The parsed <c>cases</c> metadata: hyper-parameters by kernel and case name.</summary>
    public JsonElement Cases { get; }

    /// <summary>Every F32 tensor by name.</summary>
    public Dictionary<string, float[]> Floats { get; } = new(StringComparer.Ordinal);

    /// <summary>Every I32 tensor by name.</summary>
    public Dictionary<string, int[]> Ints { get; } = new(StringComparer.Ordinal);

    /// <summary>Every tensor's shape by name.</summary>
    public Dictionary<string, long[]> Shapes { get; } = new(StringComparer.Ordinal);

    /// <summary>A float hyper-parameter of a case, e.g. Case("gae", "a", "gamma").</summary>
    public float Case(string kernel, string name, string field) => Cases.GetProperty(kernel).GetProperty(name).GetProperty(field).GetSingle();

    /// <summary>The hyper-parameters of one case.</summary>
    public JsonElement Case(string kernel, string name) => Cases.GetProperty(kernel).GetProperty(name);

    private static RlFixture Load(string name)
    {
        using var file = SafetensorsFile.Open(Path.Combine(ModelFixture.Directory, name + ".safetensors"));
        JsonElement cases;
        using (var doc = JsonDocument.Parse(file.Metadata["cases"]))
        {
            cases = doc.RootElement.Clone();
        }

        var fixture = new RlFixture(cases);
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
