namespace Engine.Training.Data;

/// <summary>
/// What collation needs from a tokenizer. <see cref="Encode"/> must not add special tokens of its own (no BOS/EOS):
/// the collator encodes prompt and response pieces separately and adds <see cref="BosTokenId"/> once at the start and
/// <see cref="EosTokenId"/> after a completion. Special-token text such as <c>&lt;|im_end|&gt;</c> inside the text must
/// become its single token.
/// </summary>
public interface ITextEncoder
{
    /// <summary>Token ids of <paramref name="text"/>, without added special tokens.</summary>
    int[] Encode(string text);

    /// <summary>Token put first in every sequence, if the model expects one (Llama); null for none (GPT-2, Qwen).</summary>
    int? BosTokenId { get; }

    /// <summary>Token appended after completions so the model learns to stop; null for none.</summary>
    int? EosTokenId { get; }
}

/// <summary>An <see cref="ITextEncoder"/> from a function, for tokenizers that live elsewhere and for tests.</summary>
/// <param name="encode">Text to token ids, no special tokens added.</param>
/// <param name="bosTokenId">See <see cref="ITextEncoder.BosTokenId"/>.</param>
/// <param name="eosTokenId">See <see cref="ITextEncoder.EosTokenId"/>.</param>
public sealed class FuncTextEncoder(Func<string, int[]> encode, int? bosTokenId = null, int? eosTokenId = null) : ITextEncoder
{
    /// <inheritdoc/>
    public int? BosTokenId { get; } = bosTokenId;

    /// <inheritdoc/>
    public int? EosTokenId { get; } = eosTokenId;

    /// <inheritdoc/>
    public int[] Encode(string text) => encode(text);

    /// <summary>
    /// <paramref name="tokenizer"/> without added special tokens; BOS is the token its post-processor puts first, if any;
    /// <paramref name="eos"/> is the end-of-sequence token.
    /// </summary>
    public static FuncTextEncoder ForTokenizer(Engine.Models.Tokenizers.Tokenizer tokenizer, int? eos)
    {
        ArgumentNullException.ThrowIfNull(tokenizer);
        int[] with = tokenizer.Encode("a", addSpecialTokens: true);
        int[] without = tokenizer.Encode("a", addSpecialTokens: false);
        int? bos = with.Length > without.Length && (without.Length == 0 || with[0] != without[0]) ? with[0] : null;
        return new FuncTextEncoder(text => tokenizer.Encode(text, addSpecialTokens: false), bos, eos);
    }
}
