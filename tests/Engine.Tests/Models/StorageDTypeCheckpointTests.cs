using System.Runtime.InteropServices;
using Engine.Core.Cpu;
using Engine.Models;
using Engine.Models.Formats;
using Engine.Models.HuggingFace;
using Engine.Tests.Support;
using Xunit;

namespace Engine.Tests.Models;

/// <summary>Checkpoints keep the dtype they came in: bf16 in, bf16 out, bit for bit when nothing was trained.</summary>
[Trait("Category", "Formats")]
public sealed class StorageDTypeCheckpointTests : IDisposable
{
    private readonly string dir = Directory.CreateTempSubdirectory("engine-storage-").FullName;
    private readonly CpuBackend backend = new(2);

    public void Dispose()
    {
        backend.Dispose();
        Directory.Delete(dir, recursive: true);
    }

    [Theory]
    [InlineData(SafetensorsDType.BF16, "bfloat16")]
    [InlineData(SafetensorsDType.F16, "float16")]
    [InlineData(SafetensorsDType.F32, "float32")]
    public void A_checkpoint_saves_back_in_its_own_dtype_bit_identically(SafetensorsDType dtype, string torchDtype)
    {
        string first = Path.Combine(dir, "in"), second = Path.Combine(dir, "out");
        SaveFixtureModel("llama_tiny", first, dtype);

        using var model = HfCheckpoint.Load(first, backend);
        Assert.Equal(dtype, model.StorageDType);
        HfCheckpoint.Save(model, second);

        Assert.Equal(torchDtype, HfCheckpoint.ReadConfig(second).TorchDtype);
        using var a = SafetensorsFile.Open(Path.Combine(first, HfCheckpoint.WeightsFile));
        using var b = SafetensorsFile.Open(Path.Combine(second, HfCheckpoint.WeightsFile));
        Assert.Equal(a.Names.Order(StringComparer.Ordinal), b.Names.Order(StringComparer.Ordinal));
        foreach (var info in a.Tensors)
        {
            Assert.Equal(dtype, b.GetTensor(info.Name).DType);
            Assert.True(Bytes(a, info.Name).AsSpan().SequenceEqual(Bytes(b, info.Name)), $"tensor {info.Name} changed");
        }
    }

    [Fact]
    public void The_asked_dtype_wins_and_is_named_in_config_json()
    {
        string first = Path.Combine(dir, "in"), second = Path.Combine(dir, "out");
        SaveFixtureModel("gpt2_tiny", first, SafetensorsDType.BF16);
        using var model = HfCheckpoint.Load(first, backend);
        HfCheckpoint.Save(model, second, new HfSaveOptions { DType = SafetensorsDType.F16 });

        Assert.Equal("float16", HfCheckpoint.ReadConfig(second).TorchDtype);
        using var file = SafetensorsFile.Open(Path.Combine(second, HfCheckpoint.WeightsFile));
        Assert.All(file.Tensors, t => Assert.Equal(SafetensorsDType.F16, t.DType));
        using var back = HfCheckpoint.Load(second, backend);
        Assert.Equal(SafetensorsDType.F16, back.StorageDType);

        foreach (var map in HfWeightMap.For(model.Config))
        {
            Assert.Equal(model.ReadHuggingFaceTensor(map.HfName).Select(x => (float)(Half)x), back.ReadHuggingFaceTensor(map.HfName));
        }
    }

    [Fact]
    public void A_checkpoint_mixing_dtypes_saves_as_float32_and_loading_weights_keeps_the_models_dtype()
    {
        string bf16 = Path.Combine(dir, "bf16"), mixed = Path.Combine(dir, "mixed");
        SaveFixtureModel("gpt2_tiny", bf16, SafetensorsDType.BF16);
        Directory.CreateDirectory(mixed);
        File.Copy(Path.Combine(bf16, HfCheckpoint.ConfigFile), Path.Combine(mixed, HfCheckpoint.ConfigFile));
        using (var file = SafetensorsFile.Open(Path.Combine(bf16, HfCheckpoint.WeightsFile)))
        {
            var writer = new SafetensorsWriter();
            foreach (var (info, i) in file.Tensors.Select((t, i) => (t, i)))
            {
                long[] shape = [.. info.Shape];
                if (i == 0)
                {
                    writer.AddF32(info.Name, file.ReadF32(info.Name), shape);
                }
                else
                {
                    var bits = new ushort[info.ElementCount];
                    file.ReadBytes(info.Name, MemoryMarshal.AsBytes(bits.AsSpan()));
                    writer.AddBf16Bits(info.Name, bits, shape);
                }
            }

            writer.Save(Path.Combine(mixed, HfCheckpoint.WeightsFile));
        }

        using var model = HfCheckpoint.Load(mixed, backend);
        Assert.Equal(SafetensorsDType.F32, model.StorageDType);

        // A resume reads float32 checkpoint weights into the model; it still saves in the dtype it was loaded in.
        using var resumed = HfCheckpoint.Load(bf16, backend);
        HfCheckpoint.LoadWeights(resumed, mixed);
        Assert.Equal(SafetensorsDType.BF16, resumed.StorageDType);
    }

    private void SaveFixtureModel(string name, string directory, SafetensorsDType dtype)
    {
        using var model = new Transformer(HfConfig.Parse(ModelFixture.Load(name).ConfigJson, name), backend);
        model.InitializeWeights(seed: 9);
        HfCheckpoint.Save(model, directory, new HfSaveOptions { DType = dtype });
    }

    private static byte[] Bytes(SafetensorsFile file, string name)
    {
        var bytes = new byte[file.GetTensor(name).ByteLength];
        file.ReadBytes(name, bytes);
        return bytes;
    }
}
