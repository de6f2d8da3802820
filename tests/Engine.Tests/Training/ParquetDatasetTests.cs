using System.Text;
using System.Text.Json;
using Engine.Core;
using Engine.Tests.Support;
using Engine.Training.Data;
using Engine.Training.Pipeline;
using Parquet;
using Parquet.Schema;
using Xunit;

namespace Engine.Tests.Training;

/// <summary>
/// Parquet datasets: files written by independent writers (tests/fixtures/parquet/generate.mjs: hyparquet-writer with
/// snappy, parquet-wasm with snappy and zstd) read back as the same examples as the same rows in JSONL; shards; malformed files.
/// </summary>
public sealed class ParquetDatasetTests : IDisposable
{
    private readonly TempDirectory dir = new();

    public static TheoryData<string> Fixtures => new("chat_pairs.snappy", "chats.zstd", "text_pairs.snappy");

    public void Dispose() => dir.Dispose();

    [Theory]
    [MemberData(nameof(Fixtures))]
    public void Parquet_rows_read_back_identically_to_the_same_rows_in_jsonl(string name)
    {
        var fromJsonl = JsonlReader.ReadAll(Fixture(name + ".jsonl")).ToList();
        using var reader = new ParquetDatasetReader(Fixture(name + ".parquet"));
        var fromParquet = reader.Examples().ToList();

        Assert.True(fromJsonl.Count >= 4, $"{fromJsonl.Count} rows");
        Assert.Equal(fromJsonl.Count, fromParquet.Count);
        Assert.Equal(fromJsonl.Count, reader.RowsRead);
        for (int i = 0; i < fromJsonl.Count; i++)
        {
            var (expected, actual) = (fromJsonl[i], fromParquet[i]);
            Assert.Equal(expected.GetType(), actual.GetType());
            Assert.Equal(Render(expected), Render(actual));
            Assert.Equal(expected.Line, actual.Line);
            Assert.Equal(Fixture(name + ".parquet"), actual.Source);
            Assert.NotEmpty(expected.Columns);
            Assert.Equal(expected.Columns.Keys, actual.Columns.Keys);
            Assert.All(expected.Columns, c => Assert.True(JsonElement.DeepEquals(c.Value, actual.Columns[c.Key]), $"row {i + 1} column {c.Key}: {c.Value} vs {actual.Columns[c.Key]}"));
        }
    }

    [Fact]
    public void A_directory_of_shards_reads_in_name_order_as_one_dataset()
    {
        string shards = dir.Sub("data");
        Directory.CreateDirectory(shards);
        File.Copy(Fixture("chats.zstd.parquet"), Path.Combine(shards, "train-00001-of-00002.parquet"));
        File.Copy(Fixture("chats.zstd.parquet"), Path.Combine(shards, "train-00000-of-00002.parquet"));
        File.WriteAllText(Path.Combine(shards, "README.md"), "not a shard");

        var all = DatasetFiles.ReadAll(shards).ToList();
        int perShard = JsonlReader.ReadAll(Fixture("chats.zstd.jsonl")).Count();
        Assert.Equal(2 * perShard, all.Count);
        Assert.All(all.Take(perShard), e => Assert.EndsWith("train-00000-of-00002.parquet", e.Source, StringComparison.Ordinal));
        Assert.All(all.Skip(perShard), e => Assert.EndsWith("train-00001-of-00002.parquet", e.Source, StringComparison.Ordinal));
        Assert.All(all, e => Assert.IsType<MessagesExample>(e));

        Directory.CreateDirectory(dir.Sub("empty"));
        Assert.Contains("no .parquet files", Assert.Throws<InputException>(() => DatasetFiles.ReadAll(dir.Sub("empty")).ToList()).Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Files_that_are_not_parquet_or_whose_footer_lies_fail_with_one_line_naming_the_file()
    {
        byte[] good = File.ReadAllBytes(Fixture("chat_pairs.snappy.parquet"));
        Assert.Contains("not a Parquet file", Fails(Encoding.UTF8.GetBytes("{\"text\": \"jsonl in disguise\"}\n")), StringComparison.Ordinal);
        Assert.Contains("not a Parquet file", Fails(good[..(good.Length / 2)]), StringComparison.Ordinal);

        byte[] hugeFooter = [.. good];
        BitConverter.GetBytes(0x7FFF_FFF0).CopyTo(hugeFooter, hugeFooter.Length - 8);
        Assert.Contains("more than the file holds", Fails(hugeFooter), StringComparison.Ordinal);

        // Metadata whose list of schema elements claims 2^30 entries: refused before Parquet.Net sizes a list from it.
        byte[] claim = [0x15, 0x02, 0x19, 0xFC, 0x80, 0x80, 0x80, 0x80, 0x04, 0x00];
        byte[] hugeList = [.. "PAR1"u8, .. claim, .. BitConverter.GetBytes(claim.Length), .. "PAR1"u8];
        Assert.Contains("a list of 1,073,741,824 elements", Fails(hugeList), StringComparison.Ordinal);

        byte[] garbledFooter = [.. good];
        int footer = BitConverter.ToInt32(good, good.Length - 8);
        garbledFooter.AsSpan(good.Length - 8 - footer, footer).Fill(0xFF);
        Assert.Contains("metadata is damaged", Fails(garbledFooter), StringComparison.Ordinal);
    }

    [Fact]
    public void A_column_in_a_form_the_reader_does_not_implement_is_named_with_its_row_group()
    {
        string path = Fixture("chat_pairs.hyparquet-v2.parquet");
        var e = Assert.Throws<InputException>(() => ParquetDatasetReader.ReadAll(path).ToList());
        Assert.StartsWith($"{path}: field 'prompt[].role': row group 0: ", e.Message, StringComparison.Ordinal);
        Assert.Contains("v2 data pages", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_row_group_larger_than_the_limit_is_refused_before_it_is_read()
    {
        var e = Assert.Throws<InputException>(() => ParquetDatasetReader.ReadAll(Fixture("chats.zstd.parquet"), new DatasetOptions { MaxRowGroupBytes = 100 }).ToList());
        Assert.Contains("row group 0 takes", e.Message, StringComparison.Ordinal);
        Assert.Contains("over the limit of 100", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_damaged_column_names_the_file_the_row_group_and_the_column()
    {
        string path = dir.Sub("damaged.parquet");
        byte[] bytes = File.ReadAllBytes(Fixture("chat_pairs.snappy.parquet"));
        long offset;
        using (var stream = new MemoryStream(bytes))
        {
            await using var reader = await ParquetReader.CreateAsync(stream);
            var chunk = reader.Metadata!.RowGroups[1].Columns.Single(c => string.Join('.', c.MetaData!.PathInSchema) == "chosen.list.item.content").MetaData!;
            offset = chunk.DataPageOffset;
        }

        byte[] garbled = [.. bytes];
        garbled.AsSpan((int)offset, 12).Fill(0xFF);
        File.WriteAllBytes(path, garbled);
        var e = Assert.Throws<InputException>(() => ParquetDatasetReader.ReadAll(path).ToList());
        Assert.StartsWith($"{path}: field 'chosen[].content': row group 1: the page header at offset {offset} is damaged", e.Message, StringComparison.Ordinal);

        // A page header claiming 2^30 bytes (type DATA_PAGE, both sizes 2^30): refused before a buffer is sized from it.
        byte[] hugePage = [.. bytes];
        byte[] header = [0x15, 0x00, 0x15, 0x80, 0x80, 0x80, 0x80, 0x08, 0x15, 0x80, 0x80, 0x80, 0x80, 0x08, 0x00];
        header.CopyTo(hugePage, (int)offset);
        File.WriteAllBytes(path, hugePage);
        e = Assert.Throws<InputException>(() => ParquetDatasetReader.ReadAll(path).ToList());
        Assert.StartsWith($"{path}: field 'chosen[].content': row group 1: a page at offset {offset} claims 1,073,741,824 bytes", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_row_that_is_no_example_names_its_row_and_row_group_and_can_be_skipped()
    {
        string path = dir.Sub("typed.parquet");
        var prompt = new DataField<string>("prompt");
        var chosen = new DataField<string>("chosen");
        var rejected = new DataField<int>("rejected");
        await using (var file = File.Create(path))
        {
            await using var writer = await ParquetWriter.CreateAsync(new ParquetSchema(prompt, chosen, rejected), file);
            using var group = writer.CreateRowGroup();
            await group.WriteAsync(prompt, new[] { "p1", "p2" });
            await group.WriteAsync(chosen, new[] { "c1", "c2" });
            await group.WriteAsync<int>(rejected, new[] { 5, 6 }.AsMemory());
        }

        var e = Assert.Throws<DatasetException>(() => ParquetDatasetReader.ReadAll(path).ToList());
        Assert.Equal($"{path}:1: field 'rejected': expected a string or a list of messages, got a number 5 (row 1, row group 0)", e.Message);

        var skipped = new List<DatasetException>();
        var read = ParquetDatasetReader.ReadAll(path, new DatasetOptions { SkipBadLines = true, OnSkippedLine = skipped.Add }).ToList();
        Assert.Empty(read);
        Assert.Equal(2, skipped.Count);
    }

    private static string Fixture(string name) => Path.Combine(ModelFixture.Directory, "parquet", name);

    private static string Render(Example example)
    {
        using var stream = new MemoryStream();
        ExampleJsonlWriter.Write(stream, [example]);
        return Encoding.UTF8.GetString(stream.ToArray());
    }

    private string Fails(byte[] bytes)
    {
        string path = dir.Sub($"bad-{Guid.NewGuid():N}.parquet");
        File.WriteAllBytes(path, bytes);
        var e = Assert.Throws<InputException>(() => ParquetDatasetReader.ReadAll(path).ToList());
        Assert.StartsWith($"{path}: ", e.Message, StringComparison.Ordinal);
        Assert.DoesNotContain('\n', e.Message);
        return e.Message;
    }
}
