using System.Text.Json;
using Engine.Tests.Tokenizers;
using Xunit;

namespace Engine.Tests.Cli;

/// <summary><c>engine tokenize</c> and <c>engine tokenizer train</c> end to end.</summary>
[Trait("Category", "Tokenizers")]
[Collection("Console")]
public class TokenizeCommandTests
{
    private static readonly string Gpt2 = TokenizerFixtures.PathOf("gpt2.json.gz");

    [Fact]
    public void Tokenize_prints_ids()
    {
        var (code, output, _) = Run("tokenize", "--tokenizer", Gpt2, "--text", "Hello world");
        Assert.Equal(0, code);
        Assert.Equal("15496 995", output.Trim());
    }

    [Fact]
    public void Tokenize_prints_json_with_tokens()
    {
        var (code, output, _) = Run("tokenize", "--tokenizer", Gpt2, "--text", "Hello world", "--json");
        Assert.Equal(0, code);
        using var doc = JsonDocument.Parse(output);
        Assert.Equal([15496, 995], doc.RootElement.GetProperty("ids").EnumerateArray().Select(e => e.GetInt32()));
        Assert.Equal(["Hello", "Ġworld"], doc.RootElement.GetProperty("tokens").EnumerateArray().Select(e => e.GetString()));
    }

    [Fact]
    public void Tokenize_decodes_ids_from_text_and_file()
    {
        var (code, output, _) = Run("tokenize", "--tokenizer", Gpt2, "--decode", "--text", "[15496, 995]");
        Assert.Equal(0, code);
        Assert.Equal("Hello world", output.TrimEnd('\n', '\r'));

        string file = Path.GetTempFileName();
        File.WriteAllText(file, "15496 50256 995");
        try
        {
            (code, output, _) = Run("tokenize", "--tokenizer", Gpt2, "--decode", "--file", file, "--no-special");
            Assert.Equal(0, code);
            Assert.Equal("Hello world", output.TrimEnd('\n', '\r'));
        }
        finally
        {
            File.Delete(file);
        }
    }

    [Theory]
    [InlineData("no input", "give exactly one of --text and --file")]
    [InlineData("bad id", "--decode: 'x' is not a token id")]
    [InlineData("id out of range", "token id 99999 is not in the vocabulary")]
    [InlineData("broken file", "is not valid JSON")]
    public void User_errors_are_one_line_and_exit_code_1(string what, string message)
    {
        string broken = Path.GetTempFileName();
        File.WriteAllText(broken, "{\"model\":");
        try
        {
            string[] args = what switch
            {
                "no input" => ["tokenize", "--tokenizer", Gpt2],
                "bad id" => ["tokenize", "--tokenizer", Gpt2, "--decode", "--text", "1 x"],
                "id out of range" => ["tokenize", "--tokenizer", Gpt2, "--decode", "--text", "99999"],
                _ => ["tokenize", "--tokenizer", broken, "--text", "hi"],
            };
            var (code, _, error) = Run(args);
            Assert.Equal(1, code);
            Assert.StartsWith("engine: error:", error.Trim(), StringComparison.Ordinal);
            Assert.Contains(message, error, StringComparison.Ordinal);
            Assert.DoesNotContain("\n", error.Trim(), StringComparison.Ordinal);
        }
        finally
        {
            File.Delete(broken);
        }
    }

    [Fact]
    public void Tokenizer_train_writes_a_loadable_file()
    {
        string dir = Path.Combine(Path.GetTempPath(), $"engine-train-{Guid.NewGuid():N}");
        Directory.CreateDirectory(dir);
        try
        {
            string corpus = Path.Combine(dir, "corpus.txt");
            File.WriteAllText(corpus, string.Concat(Enumerable.Repeat("the quick brown fox jumps over the lazy dog\n", 50)));
            // Into a directory that does not exist yet: it is created.
            string output = Path.Combine(dir, "tok", "tokenizer.json");
            var (code, _, error) = Run("tokenizer", "train", "--corpus", corpus, "--vocab-size", "300", "--out", output, "--special", "<|endoftext|>", "--special", "<|im_end|>");
            Assert.True(code == 0, error);
            var tokenizer = Engine.Models.Tokenizers.Tokenizer.FromFile(output);
            // The small corpus runs out of pairs seen twice before 300.
            Assert.InRange(tokenizer.VocabSize, 270, 300);
            Assert.Equal(257, tokenizer.TokenToId("<|im_end|>"));
            Assert.Equal("the lazy dog<|im_end|>", tokenizer.Decode(tokenizer.Encode("the lazy dog<|im_end|>")));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    private static (int Code, string Output, string Error) Run(params string[] args) => Engine.Tests.Support.CliRun.Engine(args);
}
