using Engine.Core.Tensors;
using Engine.Models.Formats;
using Engine.Models.HuggingFace;

namespace Engine.Models;

public sealed partial class Transformer
{
    private SafetensorsDType storageDType = SafetensorsDType.F32;

    /// <summary>
    /// The dtype the weights are stored in on disk when a save does not ask for one (<see cref="HfSaveOptions.DType"/>
    /// null): the dtype of the checkpoint <see cref="HfCheckpoint.Load"/> read them from (F32, BF16 or F16), F32 for a
    /// model created here. Compute, gradients and optimizer state are float32 whatever this says.
    /// </summary>
    public SafetensorsDType StorageDType
    {
        get => storageDType;
        set => storageDType = value.IsWeightStorage()
            ? value
            : throw new ArgumentOutOfRangeException(nameof(value), value, "weights are stored as F32, BF16 or F16");
    }

    /// <summary>
    /// Loads every parameter from Hugging Face-named tensors: <paramref name="read"/> gets an HF name and the shape
    /// expected and returns the values (or null when the checkpoint lacks it, which is an error naming the tensor).
    /// </summary>
    public void LoadHuggingFaceWeights(Func<string, Shape, float[]?> read)
    {
        ArgumentNullException.ThrowIfNull(read);
        foreach (var group in HfWeightMap.For(Config).GroupBy(m => m.EngineName))
        {
            var info = Parameters.Info(group.Key);
            var host = new float[info.ElementCount];
            foreach (var map in group)
            {
                var data = read(map.HfName, map.HfShape)
                    ?? throw new KeyNotFoundException($"checkpoint has no tensor '{map.HfName}' (expected shape {map.HfShape})");
                if (data.Length != map.HfShape.ElementCount)
                {
                    throw new ArgumentException($"tensor '{map.HfName}' has {data.Length} values, expected shape {map.HfShape}");
                }

                HfWeightMap.Import(map, data, host, info.Shape);
            }

            Backend.CopyFromHost<float>(Parameters.Value(info.Name), host);
        }
    }

    /// <summary>The values (or, with <paramref name="gradient"/>, the gradient) of one Hugging Face-named tensor, in HF layout.</summary>
    public float[] ReadHuggingFaceTensor(string hfName, bool gradient = false)
    {
        var map = HfWeightMap.For(Config).FirstOrDefault(m => m.HfName == hfName)
            ?? throw new KeyNotFoundException($"a {Config.Architecture} model has no Hugging Face tensor '{hfName}'");
        var info = Parameters.Info(map.EngineName);
        var host = new float[info.ElementCount];
        Backend.CopyToHost<float>(gradient ? Parameters.Gradient(info.Name) : Parameters.Value(info.Name), host);
        var result = new float[map.HfShape.ElementCount];
        HfWeightMap.Export(map, host, info.Shape, result);
        return result;
    }
}
