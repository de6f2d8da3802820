using System.Text;
using Engine.Models.Chat;
using Engine.Training.Data;
using Xunit;

namespace Engine.Tests.Training;

public sealed class JsonlReaderTests
{
    private static List<Example> Read(string jsonl, DatasetOptions? options = null) => Read(Encoding.UTF8.GetBytes(jsonl), options);

    private static List<Example> Read(byte[] bytes, DatasetOptions? options = null)
    {
        using var reader = new JsonlReader(new MemoryStream(bytes), "data.jsonl", options);
        return [.. reader.Examples()];
    }

    private static DatasetException Fails(string jsonl, DatasetOptions? options = null) =>
        Assert.Throws<DatasetException>(() => Read(jsonl, options));

    [Fact]
    public void Text_lines_with_bom_crlf_and_blank_lines()
    {
        byte[] bytes = [.. "\uFEFF"u8, .. "{\"text\": \"héllo\"}\r\n\n   \n{\"text\": \"world\"}"u8];
        using var reader = new JsonlReader(new MemoryStream(bytes), "data.jsonl");
        var all = reader.Examples().ToList();
        Assert.Equal(["héllo", "world"], all.Cast<TextExample>().Select(e => e.Text));
        Assert.Equal([1L, 4L], all.Select(e => e.Line));
        Assert.All(all, e => Assert.Equal("data.jsonl", e.Source));
        Assert.Equal(DatasetFormat.Text, reader.Format);
        Assert.Equal(4, reader.LinesRead);
    }

    [Fact]
    public void Prompt_completion_as_text_and_as_messages()
    {
        var a = Assert.IsType<PromptCompletionExample>(Read("{\"prompt\": \"2+2=\", \"completion\": \"4\"}")[0]);
        Assert.Equal(TextOrChat.FromText("2+2="), a.Prompt);
        Assert.Equal("4", a.Completion.Text);
        var b = Assert.IsType<PromptCompletionExample>(Read(
            "{\"prompt\": [{\"role\": \"user\", \"content\": \"hi\"}], \"completion\": [{\"role\": \"assistant\", \"content\": \"yo\"}]}")[0]);
        Assert.Equal([new ChatMessage("user", "hi")], b.Prompt.Messages!);
        Assert.Equal([new ChatMessage("assistant", "yo")], b.Completion.Messages!);
        var e = Fails("{\"prompt\": \"hi\", \"completion\": [{\"role\": \"assistant\", \"content\": \"yo\"}]}");
        Assert.Equal("data.jsonl:1: field 'completion': expected a string like the other fields", e.Message);
    }

    [Fact]
    public void Alpaca_with_and_without_input()
    {
        var all = Read("{\"instruction\": \"Add\", \"input\": \"2, 2\", \"output\": \"4\"}\n{\"instruction\": \"Hi\", \"output\": \"Hello\"}\n{\"instruction\": \"Hi\", \"input\": null, \"output\": \"Hello\"}");
        Assert.Equal(new AlpacaExample("Add", "2, 2", "4") { Source = "data.jsonl", Line = 1 }, all[0]);
        Assert.Equal("", ((AlpacaExample)all[1]).Input);
        Assert.Equal("", ((AlpacaExample)all[2]).Input);
    }

    [Fact]
    public void Messages_and_prompt_only_detection()
    {
        var m = Assert.IsType<MessagesExample>(Read(
            "{\"messages\": [{\"role\": \"system\", \"content\": \"s\"}, {\"role\": \"user\", \"content\": \"u\"}, {\"role\": \"assistant\", \"content\": \"a\", \"extra\": 1}]}")[0]);
        Assert.Equal(3, m.Messages.Count);
        var p = Assert.IsType<PromptExample>(Read("{\"messages\": [{\"role\": \"user\", \"content\": \"u\"}]}")[0]);
        Assert.True(p.Prompt.IsChat);
        Assert.Equal("q", Assert.IsType<PromptExample>(Read("{\"prompt\": \"q\"}")[0]).Prompt.Text);

        var e = Fails("{\"messages\": [{\"role\": \"user\", \"content\": \"u\"}, {\"role\": \"assistant\", \"content\": \"a\"}]}", new DatasetOptions { Format = DatasetFormat.Prompt });
        Assert.Contains("field 'messages': the last message is the assistant's", e.Message, StringComparison.Ordinal);
        e = Fails("{\"messages\": [{\"role\": \"user\", \"content\": \"u\"}]}", new DatasetOptions { Format = DatasetFormat.Messages });
        Assert.Equal("data.jsonl:1: field 'messages': no assistant turn to train on", e.Message);
        e = Fails("{\"messages\": [{\"role\": \"function\", \"content\": \"u\"}, {\"role\": \"assistant\", \"content\": \"a\"}]}");
        Assert.Equal("data.jsonl:1: field 'messages[0].role': must be \"system\", \"user\", \"assistant\", \"tool\" or \"ipython\", got a string \"function\"", e.Message);
        e = Fails("{\"messages\": [{\"role\": \"user\", \"content\": [{\"type\": \"text\"}]}, {\"role\": \"assistant\", \"content\": \"a\"}]}");
        Assert.Equal("data.jsonl:1: field 'messages[0].content': must be a string, got a list of 1", e.Message);
    }

    [Fact]
    public void Preference_with_explicit_prompt_and_margin()
    {
        var p = Assert.IsType<PreferenceExample>(Read("{\"prompt\": \"Q: \", \"chosen\": \"good\", \"rejected\": \"bad\", \"margin\": 1.5}")[0]);
        Assert.Equal(("Q: ", "good", "bad", 1.5, false), (p.Prompt.Text, p.Chosen.Text, p.Rejected.Text, p.Margin, p.ImplicitPrompt));
        var e = Fails("{\"prompt\": \"Q\", \"chosen\": \"good\", \"rejected\": \"bad\", \"margin\": \"big\"}");
        Assert.Equal("data.jsonl:1: field 'margin': expected a finite number, got a string \"big\"", e.Message);
    }

    [Fact]
    public void Implicit_prompt_is_the_common_prefix_of_strings()
    {
        var p = Assert.IsType<PreferenceExample>(Read("{\"chosen\": \"Q: is it? A: yes\", \"rejected\": \"Q: is it? A: no\"}")[0]);
        Assert.True(p.ImplicitPrompt);
        // TRL's rule: the space before the divergence goes with the responses.
        Assert.Equal(("Q: is it? A:", " yes", " no"), (p.Prompt.Text, p.Chosen.Text, p.Rejected.Text));

        var (prompt, chosen, rejected) = CommonPrefix.Split(TextOrChat.FromText("ab😀x"), TextOrChat.FromText("ab😃y"));
        Assert.Equal("ab", prompt!.Text); // the emoji's shared high surrogate is not split off
        Assert.Equal("😀x", chosen!.Text);
        Assert.Equal("😃y", rejected!.Text);

        var e = Fails("{\"chosen\": \"same\", \"rejected\": \"same\"}");
        Assert.Contains("field 'chosen': nothing is left of it", e.Message, StringComparison.Ordinal);
        e = Fails("{\"chosen\": \"abc\", \"rejected\": \"xyz\"}");
        Assert.Contains("no common prefix", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Implicit_prompt_is_the_common_prefix_of_message_lists()
    {
        const string user = "{\"role\": \"user\", \"content\": \"hi\"}";
        var p = Assert.IsType<PreferenceExample>(Read(
            $"{{\"chosen\": [{user}, {{\"role\": \"assistant\", \"content\": \"hello\"}}], \"rejected\": [{user}, {{\"role\": \"assistant\", \"content\": \"go away\"}}]}}")[0]);
        Assert.Equal([new ChatMessage("user", "hi")], p.Prompt.Messages!);
        Assert.Equal([new ChatMessage("assistant", "hello")], p.Chosen.Messages!);
        Assert.Equal([new ChatMessage("assistant", "go away")], p.Rejected.Messages!);
    }

    [Fact]
    public void Ranking_is_validated_as_a_permutation_and_gives_all_pairs()
    {
        var r = Assert.IsType<RankingExample>(Read("{\"prompt\": \"p\", \"responses\": [\"a\", \"b\", \"c\"], \"ranking\": [2, 0, 1]}")[0]);
        Assert.Equal([(2, 0), (2, 1), (0, 1)], r.Pairs());
        Assert.Equal("data.jsonl:1: field 'ranking': index 0 appears twice; the ranking must be a permutation of 0..2",
            Fails("{\"prompt\": \"p\", \"responses\": [\"a\", \"b\", \"c\"], \"ranking\": [0, 0, 1]}").Message);
        Assert.Contains("ranks 2 of the 3 responses", Fails("{\"prompt\": \"p\", \"responses\": [\"a\", \"b\", \"c\"], \"ranking\": [0, 1]}").Message, StringComparison.Ordinal);
        Assert.Contains("3 is not an index", Fails("{\"prompt\": \"p\", \"responses\": [\"a\", \"b\", \"c\"], \"ranking\": [0, 1, 3]}").Message, StringComparison.Ordinal);
        Assert.Contains("field 'responses': expected a list of at least 2", Fails("{\"prompt\": \"p\", \"responses\": [\"a\"], \"ranking\": [0]}").Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Field_names_can_be_remapped_and_errors_use_the_file_names()
    {
        var options = new DatasetOptions { FieldNames = new Dictionary<string, string> { ["chosen"] = "good", ["rejected"] = "bad", ["prompt"] = "question" } };
        var p = Assert.IsType<PreferenceExample>(Read("{\"question\": \"q\", \"good\": \"a\", \"bad\": \"b\"}", options)[0]);
        Assert.Equal(("q", "a", "b"), (p.Prompt.Text, p.Chosen.Text, p.Rejected.Text));
        var e = Fails("{\"question\": \"q\", \"good\": 3, \"bad\": \"b\"}", options);
        Assert.Equal("data.jsonl:1: field 'good': expected a string or a list of messages, got a number 3", e.Message);
        Assert.Equal("good", e.Field);
        Assert.Equal(1, e.Line);
        Assert.Throws<ArgumentException>(() => Read("{}", new DatasetOptions { FieldNames = new Dictionary<string, string> { ["answer"] = "x" } }));
    }

    [Fact]
    public void Errors_name_file_line_and_field()
    {
        string good = "{\"prompt\": \"p\", \"chosen\": \"a\", \"rejected\": \"b\"}\n";
        string data = string.Concat(Enumerable.Repeat(good, 16)) + "{\"prompt\": \"p\", \"chosen\": 3, \"rejected\": \"b\"}\n";
        Assert.Equal("data.jsonl:17: field 'chosen': expected a string or a list of messages, got a number 3", Fails(data).Message);
        Assert.Equal("data.jsonl:2: field 'rejected': missing", Fails(good + "{\"prompt\": \"p\", \"chosen\": \"a\"}").Message);
        Assert.Equal("data.jsonl:2: field 'text': expected a string, got a list of 0", Fails("{\"text\": \"a\"}\n{\"text\": []}").Message);
        Assert.Equal("data.jsonl:1: expected a JSON object, got array", Fails("[1, 2]").Message);
        Assert.Contains("data.jsonl:1: cannot tell the dataset format from fields 'foo'", Fails("{\"foo\": 1}").Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Truncated_line_is_invalid_json_with_its_line_number()
    {
        var e = Fails("{\"text\": \"a\"}\n{\"text\": \"ab");
        Assert.StartsWith("data.jsonl:2: not valid JSON", e.Message, StringComparison.Ordinal);
        Assert.Null(e.Field);
    }

    [Fact]
    public void Invalid_utf8_is_located()
    {
        byte[] bytes = [.. "{\"text\": \"ok\"}\n{\"text\": \"a"u8, 0xC3, 0x28, .. "\"}\n"u8];
        var e = Assert.Throws<DatasetException>(() => Read(bytes));
        Assert.Equal("data.jsonl:2: invalid UTF-8 at byte 12 of the line", e.Message);
    }

    [Fact]
    public void Deeply_nested_json_is_refused()
    {
        string deep = "{\"text\": \"a\", \"x\": " + new string('[', 100_000) + new string(']', 100_000) + "}";
        var e = Fails(deep);
        Assert.StartsWith("data.jsonl:1: not valid JSON", e.Message, StringComparison.Ordinal);
        Assert.Contains("depth", e.Message, StringComparison.OrdinalIgnoreCase);
    }

    [Fact]
    public void A_100_MB_line_fails_fast_with_bounded_memory()
    {
        using var stream = new EndlessLineStream(100L << 20);
        using var reader = new JsonlReader(stream, "big.jsonl");
        var e = Assert.Throws<DatasetException>(() => reader.Examples().ToList());
        Assert.Equal($"big.jsonl:1: line is longer than the limit of {DatasetOptions.DefaultMaxLineBytes} bytes", e.Message);
        // It stopped reading just past the limit instead of buffering the whole line.
        Assert.InRange(stream.Position, DatasetOptions.DefaultMaxLineBytes, DatasetOptions.DefaultMaxLineBytes + (1 << 16));
    }

    [Fact]
    public void Long_lines_are_skipped_without_buffering_and_reading_continues()
    {
        var warnings = new List<DatasetException>();
        var options = new DatasetOptions { MaxLineBytes = 1000, SkipBadLines = true, OnSkippedLine = warnings.Add };
        string data = "{\"text\": \"a\"}\n{\"text\": \"" + new string('x', 5000) + "\"}\n{\"text\": \"b\"}\n";
        using var reader = new JsonlReader(new MemoryStream(Encoding.UTF8.GetBytes(data)), "data.jsonl", options);
        Assert.Equal(["a", "b"], reader.Examples().Cast<TextExample>().Select(e => e.Text));
        Assert.Equal(1, reader.SkippedLines);
        Assert.Equal(2, Assert.Single(warnings).Line);
    }

    [Fact]
    public void Skip_bad_lines_counts_and_warns()
    {
        string data = string.Join('\n',
            "{\"foo\": 1}",                                   // 1: format not recognisable (skipped before detection)
            "{\"prompt\": \"p\", \"completion\": \"c\"}",      // 2: decides the format
            "{\"prompt\": \"p\"}",                             // 3: missing completion
            "not json",                                        // 4
            "{\"prompt\": \"p\", \"completion\": 5}",          // 5
            "{\"prompt\": \"p2\", \"completion\": \"c2\"}");   // 6
        var warnings = new List<DatasetException>();
        using var reader = new JsonlReader(new MemoryStream(Encoding.UTF8.GetBytes(data)), "data.jsonl",
            new DatasetOptions { SkipBadLines = true, OnSkippedLine = warnings.Add });
        var all = reader.Examples().ToList();
        Assert.Equal([2L, 6L], all.Select(e => e.Line));
        Assert.Equal(4, reader.SkippedLines);
        Assert.Equal([1L, 3L, 4L, 5L], warnings.Select(w => w.Line));
        Assert.Equal("data.jsonl:3: field 'completion': missing", warnings[1].Message);
        Assert.Equal(DatasetFormat.PromptCompletion, reader.Format);
    }

    [Fact]
    public void Explicit_format_is_enforced_and_files_are_read_from_disk()
    {
        string path = Path.Combine(Path.GetTempPath(), $"engine-{Guid.NewGuid():N}.jsonl");
        File.WriteAllText(path, "{\"text\": \"t\", \"prompt\": \"p\", \"completion\": \"c\"}\n");
        try
        {
            Assert.IsType<TextExample>(JsonlReader.ReadAll(path, new DatasetOptions { Format = DatasetFormat.Text }).Single());
            Assert.IsType<PromptCompletionExample>(JsonlReader.ReadAll(path).Single());
            var e = Assert.Throws<DatasetException>(() => JsonlReader.ReadAll(path, new DatasetOptions { Format = DatasetFormat.Alpaca }).ToList());
            Assert.Equal($"{path}:1: field 'instruction': missing", e.Message);
        }
        finally
        {
            File.Delete(path);
        }
    }

    /// <summary>A stream of one endless line <c>{"text": "xxxx…</c>, generated on the fly.</summary>
    private sealed class EndlessLineStream(long length) : Stream
    {
        private static readonly byte[] Head = "{\"text\": \""u8.ToArray();
        private long position;

        public override bool CanRead => true;

        public override bool CanSeek => false;

        public override bool CanWrite => false;

        public override long Length => length;

        public override long Position { get => position; set => throw new NotSupportedException(); }

        public override int Read(byte[] buffer, int offset, int count)
        {
            int n = (int)Math.Min(count, length - position);
            for (int i = 0; i < n; i++)
            {
                long at = position + i;
                buffer[offset + i] = at < Head.Length ? Head[at] : (byte)'x';
            }

            position += n;
            return n;
        }

        public override void Flush()
        {
        }

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}
