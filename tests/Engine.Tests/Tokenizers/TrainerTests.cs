using System.Text;
using Engine.Models.Tokenizers;
using Xunit;

namespace Engine.Tests.Tokenizers;

/// <summary>The BPE trainer and the plain byte-level tokenizer.</summary>
[Trait("Category", "Tokenizers")]
public class TrainerTests
{
    private static readonly string[] Corpus =
    [
        "the cat sat on the mat. the cat ate the rat. the rat sat on the cat.",
        "def add(a, b):\n    return a + b\n\nprint(add(1, 2))\n",
        "猫が座った。猫がネズミを食べた。 😀😀 <|endoftext|> the end",
    ];

    [Fact]
    public void Training_fills_the_vocabulary_and_round_trips()
    {
        var options = new BpeTrainerOptions { VocabSize = 300, MinFrequency = 1, SpecialTokens = ["<|endoftext|>", "<|pad|>"] };
        var tokenizer = BpeTrainer.Train(Corpus, options);
        Assert.Equal(300, tokenizer.VocabSize);
        Assert.Equal(256, tokenizer.TokenToId("<|endoftext|>"));
        Assert.Equal(257, tokenizer.TokenToId("<|pad|>"));
        foreach (string text in Corpus)
        {
            int[] ids = tokenizer.Encode(text);
            Assert.Equal(text, tokenizer.Decode(ids));
            Assert.True(ids.Length < Encoding.UTF8.GetByteCount(text), "merges must shorten the corpus it was trained on");
        }

        Assert.Contains(256, tokenizer.Encode("x<|endoftext|>y"));
        Assert.Equal(tokenizer.Encode("the cat"), Tokenizer.FromJson(tokenizer.ToJsonUtf8()).Encode("the cat"));
    }

    [Fact]
    public void Training_is_deterministic()
    {
        var options = new BpeTrainerOptions { VocabSize = 320, MinFrequency = 1, PreTokenization = PreTokenization.Llama3 };
        Assert.Equal(BpeTrainer.Train(Corpus, options).ToJsonUtf8(), BpeTrainer.Train(Corpus, options).ToJsonUtf8());
    }

    [Fact]
    public void The_first_merge_is_the_most_frequent_pair()
    {
        var tokenizer = BpeTrainer.Train(["ab ab ab ab cd"], new BpeTrainerOptions { VocabSize = 258, SpecialTokens = [] });
        Assert.Equal("ab", tokenizer.IdToToken(256));
        Assert.Equal([256], tokenizer.Encode("ab"));
    }

    [Fact]
    public void Min_frequency_stops_training_early()
    {
        var tokenizer = BpeTrainer.Train(["abcdefg"], new BpeTrainerOptions { VocabSize = 1000, MinFrequency = 2, SpecialTokens = [] });
        Assert.Equal(256, tokenizer.VocabSize);
    }

    [Fact]
    public void Bad_options_are_rejected()
    {
        Assert.Throws<ArgumentException>(() => BpeTrainer.Train(Corpus, new BpeTrainerOptions { VocabSize = 100 }));
        Assert.Throws<ArgumentException>(() => BpeTrainer.Train(Corpus, new BpeTrainerOptions { SpecialTokens = ["<a>", "<a>"] }));
        Assert.Throws<ArgumentException>(() => BpeTrainer.Train(Corpus, new BpeTrainerOptions { MinFrequency = 0 }));
    }

    [Fact]
    public void Byte_level_tokenizer_maps_bytes_to_their_values()
    {
        var tokenizer = BpeTrainer.ByteLevel(["<|endoftext|>"]);
        Assert.Equal(257, tokenizer.VocabSize);
        Assert.Equal([72, 105, 256, 0xE2, 0x82, 0xAC], tokenizer.Encode("Hi<|endoftext|>€"));
        Assert.Equal("Hi<|endoftext|>€", tokenizer.Decode([72, 105, 256, 0xE2, 0x82, 0xAC]));
        Assert.Equal("Hi€", tokenizer.Decode([72, 105, 256, 0xE2, 0x82, 0xAC], skipSpecialTokens: true));
        // An incomplete UTF-8 sequence decodes to U+FFFD rather than failing.
        Assert.Equal("\uFFFD", tokenizer.Decode([0xE2, 0x82]));
    }
}
