using System.Diagnostics;
using System.Text.Json;
using Engine.Models.Tokenizers;
using Engine.Tests.Cli;
using Engine.Tests.Training;
using Xunit;

namespace Engine.Tests.Reliability;

/// <summary>
/// Regexes and normalizers from a tokenizer file are bounded: a catastrophic pattern times out as one error naming the
/// file and the field, a chain of growing replacements stops at the output budget, and huge words cost memory linear
/// in their length with a small constant.
/// </summary>
[Trait("Category", "Reliability")]
[Collection("Console")]
public sealed class TokenizerRegexTests : IDisposable
{
    private const string Catastrophic = "(a+)+$";

    private readonly TempDirectory dir = new();

    public void Dispose() => dir.Dispose();

    [Fact]
    public void Catastrophic_split_pattern_times_out_naming_file_and_field()
    {
        string file = Write("split.json", normalizer: null, preTokenizer: new
        {
            type = "Sequence",
            pretokenizers = new object[] { new { type = "WhitespaceSplit" }, Split(Catastrophic) },
        });
        var tokenizer = Tokenizer.FromFile(file);
        var clock = Stopwatch.StartNew();
        var e = Assert.Throws<TokenizerFormatException>(() => tokenizer.Encode(new string('a', 40) + "!"));
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(10), $"took {clock.Elapsed}");
        Assert.Equal("pre_tokenizer.pretokenizers[1].pattern.Regex", e.JsonPath);
        Assert.Equal(file, e.Path);
        Assert.Contains("the regex \"(a+)+$\" ran for more than 1 s", e.Message, StringComparison.Ordinal);
        Assert.IsType<System.Text.RegularExpressions.RegexMatchTimeoutException>(e.InnerException);
    }

    [Fact]
    public void Catastrophic_replace_pattern_times_out_naming_file_and_field()
    {
        string file = Write("replace.json", normalizer: Replace(Catastrophic, "b", regex: true), preTokenizer: null);
        var e = Assert.Throws<TokenizerFormatException>(() => Tokenizer.FromFile(file).Encode(new string('a', 40) + "!"));
        Assert.Equal("normalizer.pattern.Regex", e.JsonPath);
    }

    [Fact]
    public void Replace_chain_stops_at_the_output_budget()
    {
        // Twenty Replace("a", "aa") steps double the text each time: 1,000 characters became a billion (3.2 GB) before.
        string file = Write("chain.json", new { type = "Sequence", normalizers = Enumerable.Repeat(Replace("a", "aa", regex: false), 20).ToArray() }, preTokenizer: null);
        var tokenizer = Tokenizer.FromFile(file);
        long before = GC.GetAllocatedBytesForCurrentThread();
        var e = Assert.Throws<TokenizerFormatException>(() => tokenizer.Encode(new string('a', 1000)));
        Assert.True(GC.GetAllocatedBytesForCurrentThread() - before < (1 << 20));
        Assert.Equal("normalizer.normalizers[3]", e.JsonPath);
        Assert.Contains("over the limit of 9024 (8 times the input plus 1024)", e.Message, StringComparison.Ordinal);
        Assert.Equal(8 * 50, Tokenizer.FromFile(Write("ok.json", new { type = "Sequence", normalizers = Enumerable.Repeat(Replace("a", "aa", regex: false), 3).ToArray() }, null)).Encode(new string('a', 50)).Length);
    }

    [Fact]
    public void Too_many_normalizers_and_too_long_patterns_are_refused_at_load()
    {
        string many = Write("many.json", new { type = "Sequence", normalizers = Enumerable.Repeat(new { type = "Lowercase" }, 65).ToArray() }, null);
        Assert.Equal("normalizer.normalizers[63]", Assert.Throws<TokenizerFormatException>(() => Tokenizer.FromFile(many)).JsonPath);

        string longPattern = Write("long.json", null, Split("(?:" + string.Join("|", Enumerable.Range(0, 3000).Select(i => $"w{i}")) + ")"));
        var e = Assert.Throws<TokenizerFormatException>(() => Tokenizer.FromFile(longPattern));
        Assert.Equal("pre_tokenizer.pattern.Regex", e.JsonPath);
        Assert.Contains("over the limit of 16384", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Huge_word_costs_memory_linear_in_its_length_with_a_small_constant()
    {
        // A 60 MB line of one word allocated 62 bytes per character (scratch sized for 3 UTF-8 bytes per character in
        // five buffers, growing lists copied twice); now 17. Measured here on 4 M characters so the test stays fast.
        CliHarness.SaveTinyModel(dir.Sub("model"));
        var tokenizer = Tokenizer.FromFile(dir.Sub("model/tokenizer.json"));
        string word = new('a', 4_000_000);
        tokenizer.Encode("warm up");
        long before = GC.GetAllocatedBytesForCurrentThread();
        int[] ids = tokenizer.Encode(word);
        long perChar = (GC.GetAllocatedBytesForCurrentThread() - before) / word.Length;
        Assert.Equal(word.Length, ids.Length);
        Assert.True(perChar <= 24, $"{perChar} bytes allocated per character");
    }

    [Fact]
    public void Cli_prints_one_line_for_a_catastrophic_pattern()
    {
        string file = Write("evil.json", null, Split(Catastrophic));
        var (code, _, error) = CliHarness.Run(["tokenize", "--tokenizer", file, "--text", new string('a', 40) + "!"]);
        Assert.Equal(1, code);
        Assert.Single(error.Trim().Split('\n'));
        Assert.StartsWith($"engine: error: tokenizer file '{file}': pre_tokenizer.pattern.Regex: the regex", error.Trim(), StringComparison.Ordinal);
    }

    private static object Split(string regex) => new { type = "Split", pattern = new { Regex = regex }, behavior = "Isolated", invert = false };

    private static object Replace(string pattern, string content, bool regex) =>
        new { type = "Replace", pattern = regex ? (object)new { Regex = pattern } : new { String = pattern }, content };

    private string Write(string name, object? normalizer, object? preTokenizer)
    {
        var vocab = new Dictionary<string, int> { ["a"] = 0, ["b"] = 1, ["!"] = 2, ["w"] = 3 };
        string path = dir.Sub(name);
        File.WriteAllText(path, JsonSerializer.Serialize(new
        {
            added_tokens = Array.Empty<object>(),
            normalizer,
            pre_tokenizer = preTokenizer,
            post_processor = (object?)null,
            decoder = (object?)null,
            model = new { type = "BPE", vocab, merges = Array.Empty<string>() },
        }));
        return path;
    }
}
