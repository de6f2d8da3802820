using Engine.Models.Tokenizers;
using Engine.Tests.Support;
using Engine.Tests.Training;
using Xunit;

namespace Engine.Tests.Cli;

/// <summary>Training commands take Parquet files and directories of shards for --data and --eval-data.</summary>
[Collection("Console")]
public sealed class ParquetDataCommandTests : IDisposable
{
    private readonly TempDirectory dir = new();

    public void Dispose() => dir.Dispose();

    [Fact]
    public void Sft_reads_a_directory_of_shards_and_dpo_a_parquet_file_of_chat_pairs()
    {
        string tok = dir.Sub("tokenizer");
        Directory.CreateDirectory(tok);
        BpeTrainer.ByteLevel(["<|endoftext|>", "<|im_start|>", "<|im_end|>"]).Save(Path.Combine(tok, "tokenizer.json"));
        string model = dir.Sub("model");
        var (code, _, error) = CliHarness.Run(["init", "--preset", "tiny", "--tokenizer", tok, "--out", model]);
        Assert.True(code == 0, error);

        string shards = dir.Sub("chats");
        Directory.CreateDirectory(shards);
        File.Copy(Fixture("chats.zstd.parquet"), Path.Combine(shards, "train-00000-of-00002.parquet"));
        File.Copy(Fixture("chats.zstd.parquet"), Path.Combine(shards, "train-00001-of-00002.parquet"));
        string[] common = ["--chat-template", "chatml", "--set", "max_steps=1", "--set", "batch_size=2", "--set", "max_length=64", "--threads", "2"];
        (code, _, error) = CliHarness.Run(["sft", "--model", model, "--data", shards, "--eval-data", Fixture("chats.zstd.parquet"), "--out", dir.Sub("sft"), .. common]);
        Assert.True(code == 0, error);

        (code, _, error) = CliHarness.Run(["dpo", "--model", model, "--data", Fixture("chat_pairs.snappy.parquet"), "--out", dir.Sub("dpo"), .. common]);
        Assert.True(code == 0, error);

        (code, _, error) = CliHarness.Run(["dpo", "--model", model, "--data", Fixture("chat_pairs.hyparquet-v2.parquet"), "--out", dir.Sub("bad"), .. common]);
        Assert.Equal(1, code);
        Assert.Contains("chat_pairs.hyparquet-v2.parquet: field 'prompt[].role': row group 0:", error, StringComparison.Ordinal);
    }

    private static string Fixture(string name) => Path.Combine(ModelFixture.Directory, "parquet", name);
}
