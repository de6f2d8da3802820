using System.IO.Compression;
using System.Text;
using Engine.Models.Tokenizers;
using Xunit;

namespace Engine.Tests.Tokenizers;

/// <summary>Broken and hostile tokenizer.json files fail with one clear error naming the file and the field, quickly.</summary>
[Trait("Category", "Tokenizers")]
public class HostileFileTests
{
    private const string Valid = """
        {"added_tokens":[{"id":3,"content":"<s>","special":true}],
         "normalizer":null,"pre_tokenizer":{"type":"ByteLevel","add_prefix_space":false,"use_regex":true},
         "post_processor":null,"decoder":{"type":"ByteLevel"},
         "model":{"type":"BPE","vocab":{"a":0,"b":1,"ab":2,"<s>":3},"merges":["a b"]}}
        """;

    [Fact]
    public void The_valid_base_file_loads()
    {
        var tokenizer = Load(Valid);
        Assert.Equal([2, 3, 0], tokenizer.Encode("ab<s>a"));
    }

    public static TheoryData<string, string, string> Broken => new()
    {
        { "truncated", Valid[..(Valid.Length / 2)], "is not valid JSON" },
        { "not an object", "[1,2,3]", "expected an object" },
        { "deep nesting", new string('[', 100_000), "is not valid JSON" },
        { "no model", """{"added_tokens":[]}""", "model: is missing" },
        { "vocab is an array", Valid.Replace("""{"a":0,"b":1,"ab":2,"<s>":3}""", "[1,2]", StringComparison.Ordinal), "model.vocab: expected an object, found an array" },
        { "id is a string", Valid.Replace("\"ab\":2", "\"ab\":\"2\"", StringComparison.Ordinal), "model.vocab[\"ab\"]: expected an integer, found a string" },
        { "huge id", Valid.Replace("\"ab\":2", "\"ab\":4000000000", StringComparison.Ordinal), "model.vocab[\"ab\"]: 4000000000 is out of range" },
        { "id beyond 64 bits", Valid.Replace("\"ab\":2", "\"ab\":1e30", StringComparison.Ordinal), "model.vocab[\"ab\"]: 1e30 is not an integer in range" },
        { "id far past the vocab", Valid.Replace("\"ab\":2", "\"ab\":2000000000", StringComparison.Ordinal), "model.vocab[\"ab\"]: 2000000000 is out of range" },
        { "negative id", Valid.Replace("\"ab\":2", "\"ab\":-1", StringComparison.Ordinal), "is out of range" },
        { "duplicate id", Valid.Replace("\"ab\":2", "\"ab\":1", StringComparison.Ordinal), "id 1 is also the id of \"b\"" },
        { "merge of unknown token", Valid.Replace("\"a b\"", "\"a q\"", StringComparison.Ordinal), "model.merges[0]: token \"q\" is not in the vocabulary" },
        { "merge result not in vocab", Valid.Replace("\"a b\"", "\"b a\"", StringComparison.Ordinal), "model.merges[0]: the merged token \"ba\" is not in the vocabulary" },
        { "merge without space", Valid.Replace("\"a b\"", "\"ab\"", StringComparison.Ordinal), "model.merges[0]: \"ab\" is not two tokens" },
        { "merge of wrong shape", Valid.Replace("\"a b\"", "[\"a\"]", StringComparison.Ordinal), "model.merges[0]: expected \"a b\" or [\"a\", \"b\"]" },
        { "unknown model", Valid.Replace("\"BPE\"", "\"WordPiece\"", StringComparison.Ordinal), "model.type: unsupported model type 'WordPiece'" },
        { "unknown pre-tokenizer", Valid.Replace("\"type\":\"ByteLevel\",\"add", "\"type\":\"Fancy\",\"add", StringComparison.Ordinal), "pre_tokenizer.type: unsupported pre-tokenizer type 'Fancy'" },
        { "unknown decoder", Valid.Replace("{\"type\":\"ByteLevel\"}", "{\"type\":\"CTC\"}", StringComparison.Ordinal), "decoder.type: unsupported decoder type 'CTC'" },
        { "unknown normalizer", Valid.Replace("\"normalizer\":null", "\"normalizer\":{\"type\":\"Precompiled\"}", StringComparison.Ordinal), "normalizer.type: unsupported normalizer type 'Precompiled'" },
        { "component without type", Valid.Replace("\"normalizer\":null", "\"normalizer\":{}", StringComparison.Ordinal), "normalizer.type: is missing" },
        { "invalid regex", Valid.Replace("\"pre_tokenizer\":{\"type\":\"ByteLevel\",\"add_prefix_space\":false,\"use_regex\":true}", "\"pre_tokenizer\":{\"type\":\"Split\",\"pattern\":{\"Regex\":\"(unclosed\"},\"behavior\":\"Isolated\"}", StringComparison.Ordinal), "pre_tokenizer.pattern.Regex: invalid regular expression" },
        { "unknown split behavior", Valid.Replace("\"pre_tokenizer\":{\"type\":\"ByteLevel\",\"add_prefix_space\":false,\"use_regex\":true}", "\"pre_tokenizer\":{\"type\":\"Split\",\"pattern\":{\"String\":\" \"},\"behavior\":\"Sideways\"}", StringComparison.Ordinal), "pre_tokenizer.behavior: unknown behavior 'Sideways'" },
        { "added token without id", Valid.Replace("\"id\":3,", string.Empty, StringComparison.Ordinal), "added_tokens[0].id: is missing" },
        { "unk token not in vocab", Valid.Replace("\"type\":\"BPE\",", "\"type\":\"BPE\",\"unk_token\":\"<unk>\",", StringComparison.Ordinal), "model.unk_token: \"<unk>\" is not in the vocabulary" },
        { "flag of wrong type", Valid.Replace("\"use_regex\":true", "\"use_regex\":\"yes\"", StringComparison.Ordinal), "pre_tokenizer.use_regex: expected a boolean, found a string" },
    };

    [Theory]
    [MemberData(nameof(Broken))]
    public async Task Broken_files_give_one_clear_error(string what, string json, string message)
    {
        string path = Path.Combine(Path.GetTempPath(), $"engine-hostile-{Guid.NewGuid():N}.json");
        File.WriteAllText(path, json);
        try
        {
            // A guard, not a timing: WaitAsync throws TimeoutException if loading hangs.
            var error = await Task.Run(() => Assert.Throws<TokenizerFormatException>(() => Tokenizer.FromFile(path))).WaitAsync(TimeSpan.FromSeconds(30));
            Assert.False(string.IsNullOrEmpty(what));
            Assert.Contains(path, error.Message, StringComparison.Ordinal);
            Assert.Contains(message, error.Message, StringComparison.Ordinal);
            Assert.DoesNotContain("\n", error.Message, StringComparison.Ordinal);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void A_file_that_is_not_gzip_is_reported()
    {
        string path = Path.Combine(Path.GetTempPath(), $"engine-hostile-{Guid.NewGuid():N}.json.gz");
        File.WriteAllText(path, Valid);
        try
        {
            var error = Assert.Throws<TokenizerFormatException>(() => Tokenizer.FromFile(path));
            Assert.Contains("is not valid gzip", error.Message, StringComparison.Ordinal);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void Pair_form_merges_and_string_form_merges_load_alike()
    {
        var pairs = Load(Valid.Replace("\"a b\"", "[\"a\",\"b\"]", StringComparison.Ordinal));
        Assert.Equal(Load(Valid).Encode("abab"), pairs.Encode("abab"));
    }

    private static Tokenizer Load(string json) => Tokenizer.FromJson(Encoding.UTF8.GetBytes(json), "inline.json");
}
