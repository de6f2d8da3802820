using System.Diagnostics;
using System.Text;
using Engine.Core;
using Engine.Models.Chat;
using Engine.Tests.Cli;
using Engine.Tests.Training;
using Engine.Training.Data;
using Engine.Training.Options;
using Xunit;

namespace Engine.Tests.Reliability;

/// <summary>
/// Hostile configs, datasets and tokenizer configs end in one error naming the file, line and field, with memory
/// linear in the input: nothing here may expand aliases, recurse without bound or read a file before checking its size.
/// </summary>
[Trait("Category", "Reliability")]
[Collection("Console")]
public sealed class BoundedParserTests : IDisposable
{
    private readonly TempDirectory dir = new();

    public void Dispose() => dir.Dispose();

    [Fact]
    public void Yaml_self_referencing_alias_is_refused_naming_file_line_and_key()
    {
        var e = Assert.Throws<OptionsException>(() => OptionsReader.Parse<SftOptions>("max_steps: 3\nschedule: &loop [*loop]\n", "evil.yaml", OptionsFormat.Yaml));
        Assert.Equal("evil.yaml:2: key 'schedule': anchors (&loop) are not supported; write the value out", e.Message);
    }

    [Fact]
    public void Yaml_billion_laughs_is_refused_before_any_expansion()
    {
        // Nine levels of ten aliases each: 10^9 strings once expanded (4 GB and out of memory before).
        var yaml = new StringBuilder("a0: &a0 lol\n");
        for (int level = 1; level <= 9; level++)
        {
            yaml.Append($"a{level}: &a{level} [{string.Join(", ", Enumerable.Repeat($"*a{level - 1}", 10))}]\n");
        }

        long before = GC.GetAllocatedBytesForCurrentThread();
        var e = Assert.Throws<OptionsException>(() => OptionsReader.Parse<SftOptions>(yaml.ToString(), "laughs.yaml", OptionsFormat.Yaml));
        Assert.True(GC.GetAllocatedBytesForCurrentThread() - before < (1 << 20));
        Assert.StartsWith("laughs.yaml:1: key 'a0': anchors (&a0) are not supported", e.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(OptionsFormat.Yaml, "nested deeper than 32 levels")]
    [InlineData(OptionsFormat.Json, "depth")]
    public void Deep_nesting_stops_at_the_depth_limit(OptionsFormat format, string expected)
    {
        // 200,000 open brackets overflowed the stack before (the process died with no error line).
        string text = format == OptionsFormat.Yaml ? "schedule: " + new string('[', 200_000) : "{\"schedule\": " + new string('[', 200_000);
        var e = Assert.Throws<OptionsException>(() => OptionsReader.Parse<SftOptions>(text, "deep", format));
        Assert.StartsWith("deep:1: ", e.Message, StringComparison.Ordinal);
        Assert.Contains(expected, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Deep_block_nesting_names_the_line_and_dotted_key()
    {
        string yaml = string.Concat(Enumerable.Range(0, 100).Select(i => $"{new string(' ', i)}k{i}:\n")) + new string(' ', 100) + "v\n";
        var e = Assert.Throws<OptionsException>(() => OptionsReader.Parse<SftOptions>(yaml, "block.yaml", OptionsFormat.Yaml));
        Assert.StartsWith("block.yaml:33: key 'k0.k1.k2.", e.Message, StringComparison.Ordinal);
        Assert.EndsWith(".k30.k31': nested deeper than 32 levels", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Config_files_are_refused_over_the_size_limit_and_when_not_regular()
    {
        string big = dir.Sub("big.yaml");
        File.WriteAllText(big, "# " + new string('x', (int)OptionsReader.MaxFileBytes) + "\nmax_steps: 3\n");
        var e = Assert.Throws<InputException>(() => OptionsReader.ReadFile<SftOptions>(big));
        Assert.Contains("over the limit of 1,048,576", e.Message, StringComparison.Ordinal);

        string fifo = MakeFifo("config.json");
        await RefusedWithoutHanging(() => OptionsReader.ReadFile<SftOptions>(fifo));
    }

    [Fact]
    public void Jsonl_lone_surrogate_names_file_line_and_field_and_is_skippable()
    {
        string path = dir.Sub("data.jsonl");
        File.WriteAllLines(path,
        [
            """{"prompt": "a", "completion": "b"}""",
            """{"prompt": "\ud800", "completion": "b"}""",
            """{"prompt": "q", "completion": "\udfff!"}""",
            """{"prompt": "c", "completion": "d"}""",
        ]);
        var e = Assert.Throws<DatasetException>(() => JsonlReader.ReadAll(path).ToList());
        Assert.Equal($"{path}:2: field 'prompt': not valid Unicode text (an escaped lone surrogate such as \\ud800)", e.Message);

        var skipped = new List<DatasetException>();
        var examples = JsonlReader.ReadAll(path, new DatasetOptions { SkipBadLines = true, OnSkippedLine = skipped.Add }).ToList();
        Assert.Equal(2, examples.Count);
        Assert.Equal([2L, 3L], skipped.Select(s => s.Line));
        Assert.Equal(["prompt", "completion"], skipped.Select(s => s.Field));

        File.WriteAllText(path, """{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "\udfff!"}]}""" + "\n");
        Assert.Equal("messages[1].content", Assert.Throws<DatasetException>(() => JsonlReader.ReadAll(path).ToList()).Field);
    }

    [Fact]
    public void Ranking_with_too_many_responses_is_refused_naming_the_field()
    {
        // 30,000 responses once meant 450 million pairs and 20 GB before the first step.
        string path = dir.Sub("ranking.jsonl");
        File.WriteAllText(path, RankingLine(30_000) + "\n");
        long before = GC.GetAllocatedBytesForCurrentThread();
        var e = Assert.Throws<DatasetException>(() => JsonlReader.ReadAll(path).ToList());
        Assert.True(GC.GetAllocatedBytesForCurrentThread() - before < (16 << 20));
        Assert.Equal("responses", e.Field);
        Assert.Equal(1, e.Line);
        Assert.Contains("30000 responses, over the limit of 32 per ranking", e.Message, StringComparison.Ordinal);
        Assert.Single(JsonlReader.ReadAll(dir.Sub("ranking.jsonl"), new DatasetOptions { MaxRankingResponses = 30_000 }));
    }

    [Fact]
    public void Conversation_with_too_many_messages_is_refused_naming_the_field()
    {
        string path = dir.Sub("chat.jsonl");
        string turns = string.Join(",", Enumerable.Repeat("""{"role": "user", "content": "q"}""", 5000));
        File.WriteAllText(path, $$"""{"messages": [{{turns}}, {"role": "assistant", "content": "a"}]}""" + "\n");
        var e = Assert.Throws<DatasetException>(() => JsonlReader.ReadAll(path).ToList());
        Assert.Equal($"{path}:1: field 'messages': 5001 messages, over the limit of 4096 per conversation", e.Message);
    }

    [Fact]
    public async Task Jsonl_fifo_is_refused_without_hanging()
    {
        string fifo = MakeFifo("data.jsonl");
        await RefusedWithoutHanging(() => JsonlReader.ReadAll(fifo).ToList());
    }

    [Fact]
    public void Huge_tokenizer_config_is_refused_before_it_is_read()
    {
        // 300 MB once cost 2.1 GB; now the size is checked first and nothing is read.
        using (var stream = File.Create(dir.Sub("tokenizer_config.json")))
        {
            stream.SetLength(ChatTemplate.MaxTokenizerFileBytes + 1);
        }

        long before = GC.GetAllocatedBytesForCurrentThread();
        var e = Assert.Throws<InputException>(() => ChatTemplate.FromTokenizerDirectory(dir.Path));
        Assert.True(GC.GetAllocatedBytesForCurrentThread() - before < (1 << 20));
        Assert.Equal($"{dir.Sub("tokenizer_config.json")}: the tokenizer config is 16,777,217 bytes, over the limit of 16,777,216", e.Message);
    }

    [Fact]
    public void Tokenizer_config_lone_surrogate_is_a_format_error()
    {
        var e = Assert.Throws<Engine.Core.InputException>(() => ChatTemplate.FromTokenizerConfig("""{"chat_template": "\ud800<|im_start|>"}""", "tc.json"));
        Assert.Equal("tc.json: field 'chat_template': not valid Unicode text (an escaped lone surrogate)", e.Message);
    }

    [Fact]
    public void Cli_prints_one_line_for_a_hostile_config()
    {
        string config = dir.Sub("evil.yaml");
        File.WriteAllText(config, "x: &a\n  - *a\n");
        var (code, _, error) = CliHarness.Run(["sft", "--config", config, "--model", dir.Sub("none"), "--data", dir.Sub("none.jsonl"), "--out", dir.Sub("out")]);
        Assert.Equal(1, code);
        Assert.Equal($"engine: error: {config}:1: key 'x': anchors (&a) are not supported; write the value out", error.Trim());
    }

    [Fact]
    public void Cli_prints_one_line_for_a_hostile_dataset()
    {
        CliHarness.SaveTinyModel(dir.Sub("model"));
        File.WriteAllText(dir.Sub("ranking.jsonl"), RankingLine(1000) + "\n");
        var (code, _, error) = CliHarness.Run(["rm", "--model", dir.Sub("model"), "--data", dir.Sub("ranking.jsonl"), "--out", dir.Sub("out"), "--threads", "1"]);
        Assert.Equal(1, code);
        Assert.Single(error.Trim().Split('\n'));
        Assert.StartsWith($"engine: error: {dir.Sub("ranking.jsonl")}:1: field 'responses': 1000 responses, over the limit of 32", error.Trim(), StringComparison.Ordinal);
    }

    private static string RankingLine(int responses) =>
        $$"""{"prompt": "p", "responses": [{{string.Join(",", Enumerable.Range(0, responses).Select(i => $"\"r{i}\""))}}], "ranking": [{{string.Join(",", Enumerable.Range(0, responses))}}]}""";

    private static async Task RefusedWithoutHanging(Func<object> read)
    {
        var reading = Task.Run(read);
        Assert.Same(reading, await Task.WhenAny(reading, Task.Delay(TimeSpan.FromSeconds(10))));
        var e = await Assert.ThrowsAsync<InputException>(() => reading);
        Assert.Contains("is not a regular file (a FIFO)", e.Message, StringComparison.Ordinal);
    }

    private string MakeFifo(string name)
    {
        string path = dir.Sub(name);
        using var mkfifo = Process.Start(new ProcessStartInfo("mkfifo") { ArgumentList = { path }, UseShellExecute = false })!;
        mkfifo.WaitForExit();
        Assert.Equal(0, mkfifo.ExitCode);
        return path;
    }
}
