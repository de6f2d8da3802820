using System.Text.Json;
using Engine.Models.Formats;
using Engine.Models.HuggingFace;
using Engine.Models.Tokenizers;
using Engine.Tests.Training;
using Xunit;

namespace Engine.Tests.Cli;

/// <summary><c>--save-dtype</c> and the default of saving a model in the dtype its checkpoint came in.</summary>
[Collection("Console")]
public sealed class SaveDTypeCommandTests : IDisposable
{
    private readonly TempDirectory dir = new();

    public void Dispose() => dir.Dispose();

    [Fact]
    public void A_bf16_model_trains_into_a_bf16_final_and_save_dtype_overrides_while_checkpoints_stay_fp32()
    {
        string tok = dir.Sub("tok");
        Directory.CreateDirectory(tok);
        BpeTrainer.ByteLevel(["<|endoftext|>"]).Save(Path.Combine(tok, "tokenizer.json"));
        string model = dir.Sub("model");
        var (code, _, error) = CliHarness.Run(["init", "--arch", "gpt2", "--layers", "1", "--dim", "16", "--heads", "2", "--max-length", "32", "--tokenizer", tok, "--out", model, "--save-dtype", "bf16"]);
        Assert.True(code == 0, error);
        AssertStored(model, SafetensorsDType.BF16, "bfloat16");

        string data = dir.Sub("text.jsonl");
        File.WriteAllLines(data, Enumerable.Range(0, 4).Select(i => JsonSerializer.Serialize(new { text = $"document {i} with a few words" })));
        string[] train = ["--data", data, "--set", "max_steps=2", "--set", "checkpoint_interval=1", "--set", "batch_size=2", "--set", "max_length=16", "--threads", "2"];
        (code, _, error) = CliHarness.Run(["pretrain", "--model", model, "--out", dir.Sub("kept"), .. train]);
        Assert.True(code == 0, error);
        AssertStored(Path.Combine(dir.Sub("kept"), "final"), SafetensorsDType.BF16, "bfloat16");
        AssertStored(Path.Combine(dir.Sub("kept"), "checkpoint-1"), SafetensorsDType.F32, "float32");

        (code, _, error) = CliHarness.Run(["pretrain", "--model", model, "--out", dir.Sub("half"), "--save-dtype", "fp16", .. train]);
        Assert.True(code == 0, error);
        AssertStored(Path.Combine(dir.Sub("half"), "final"), SafetensorsDType.F16, "float16");

        (code, _, error) = CliHarness.Run(["pretrain", "--model", model, "--out", dir.Sub("bad"), "--save-dtype", "fp8", .. train]);
        Assert.Equal(1, code);
        Assert.Contains("--save-dtype", error, StringComparison.Ordinal);
    }

    private static void AssertStored(string directory, SafetensorsDType dtype, string torchDtype)
    {
        Assert.Equal(torchDtype, HfCheckpoint.ReadConfig(directory).TorchDtype);
        using var file = SafetensorsFile.Open(Path.Combine(directory, HfCheckpoint.WeightsFile));
        Assert.All(file.Tensors, t => Assert.Equal(dtype, t.DType));
    }
}
