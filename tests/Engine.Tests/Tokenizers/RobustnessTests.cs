using System.Text;
using System.Text.RegularExpressions;
using Engine.Models.Tokenizers;
using Xunit;

namespace Engine.Tests.Tokenizers;

/// <summary>Long inputs finish, and the hand-written split scanners agree with .NET's regex on the patterns they replace.</summary>
[Trait("Category", "Tokenizers")]
public class RobustnessTests
{
    /// <summary>Generous: the encodes take well under a second; the guard only turns a quadratic hang into a failure.</summary>
    private static readonly TimeSpan Guard = TimeSpan.FromSeconds(30);

    public static TheoryData<string, string> LongInputs => new()
    {
        { "gpt2.json.gz", "letters" },
        { "gpt2.json.gz", "symbols" },
        { "gpt2.json.gz", "spaces" },
        { "llama3-style.json", "letters" },
        { "llama3-style.json", "spaces" },
        { "sentencepiece-style.json", "letters" },
        { "bytes.json", "symbols" },
    };

    [Theory]
    [MemberData(nameof(LongInputs))]
    public async Task A_megabyte_line_without_spaces_encodes_and_round_trips(string file, string kind)
    {
        var tokenizer = TokenizerFixtures.Get(file);
        string text = LongLine(kind, 1 << 20);
        // WaitAsync throws TimeoutException when the guard runs out.
        string decoded = await Task.Run(() => tokenizer.Decode(tokenizer.Encode(text, addSpecialTokens: false))).WaitAsync(Guard);
        Assert.Equal(text, decoded);
    }

    private static string LongLine(string kind, int length)
    {
        var rng = new Random(1234);
        var sb = new StringBuilder(length + 1);
        if (kind == "spaces")
        {
            // One whitespace run with a word at the end: the \s+(?!\S) alternatives must not rescan it per character.
            return new string(' ', length) + "end";
        }

        const string symbols = "!@#$%^&*()_+-=[]{};:,.<>/?|~`0123456789";
        while (sb.Length < length)
        {
            sb.Append(kind == "letters" ? (char)('a' + rng.Next(26)) : symbols[rng.Next(symbols.Length)]);
        }

        return sb.ToString();
    }

    public static TheoryData<string> KnownPatterns => new() { SplitPattern.Gpt2, SplitPattern.Llama3, SplitPattern.Qwen2 };

    [Theory]
    [MemberData(nameof(KnownPatterns))]
    public void Scanners_split_exactly_like_the_regex(string pattern)
    {
        var scanner = SplitPattern.FromRegex(pattern);
        var regex = new Regex(pattern, RegexOptions.CultureInvariant);
        // Characters of the Basic Multilingual Plane only: there .NET's regex sees whole characters, as Oniguruma does.
        string alphabet = "aZé中ß'sStTrReEvVlLmMdD 0123٣\t\n\r\u00a0\u3000.,!?-_\"()😀";
        var rng = new Random(7);
        var found = new List<(int Start, int End)>();
        for (int trial = 0; trial < 3000; trial++)
        {
            var sb = new StringBuilder();
            int length = rng.Next(0, 40);
            for (int i = 0; i < length; i++)
            {
                char c = alphabet[rng.Next(alphabet.Length)];
                if (!char.IsSurrogate(c))
                {
                    sb.Append(c);
                }
            }

            string text = sb.ToString();
            found.Clear();
            scanner.FindMatches(text, found);
            var expected = regex.Matches(text).Select(m => (m.Index, m.Index + m.Length)).ToList();
            Assert.True(expected.SequenceEqual(found), $"pattern {pattern} on \"{Regex.Escape(text)}\": regex [{string.Join(' ', expected)}], scanner [{string.Join(' ', found)}]");
        }
    }

    [Fact]
    public void Scanners_treat_a_letter_outside_the_bmp_as_one_letter()
    {
        var found = new List<(int Start, int End)>();
        SplitPattern.FromRegex(SplitPattern.Gpt2).FindMatches(" 𝐇𝐞llo!", found);
        Assert.Equal([(0, 8), (8, 9)], found);
    }

    [Theory]
    [InlineData(@"\p{L}++|\s*+", @"(?>\p{L}+)|(?>\s*)")]
    [InlineData(@"[a-z]?+x", @"(?>[a-z]?)x")]
    [InlineData(@"(ab){2}+c", @"(?>(ab){2})c")]
    [InlineData(@"a+b", @"a+b")]
    public void Possessive_quantifiers_become_atomic_groups(string oniguruma, string dotnet)
    {
        Assert.Equal(dotnet, SplitPattern.ToDotNet(oniguruma));
    }

    [Fact]
    public void Added_tokens_honour_single_word_and_strip_rules()
    {
        var tokenizer = TokenizerFixtures.Get("llama3-style.json");
        int tool = tokenizer.TokenToId("<tool>")!.Value;
        int[] spaced = tokenizer.Encode("a  <tool>  b", addSpecialTokens: false);
        int[] tight = tokenizer.Encode("a<tool>b", addSpecialTokens: false);
        Assert.Equal(tight, spaced);
        Assert.Contains(tool, tight);
    }
}
