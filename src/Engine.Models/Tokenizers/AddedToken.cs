namespace Engine.Models.Tokenizers;

/// <summary>
/// A token matched in the raw (or normalized) text before the model runs, as in the <c>added_tokens</c> list of
/// <c>tokenizer.json</c>: special tokens such as <c>&lt;|endoftext|&gt;</c> and user-added words.
/// </summary>
/// <param name="Id">The token id.</param>
/// <param name="Content">The exact text that is matched.</param>
/// <param name="Special">Special tokens are dropped by <see cref="Tokenizer.Decode(ReadOnlySpan{int}, bool)"/> when asked to skip them.</param>
/// <param name="SingleWord">Only match when not preceded or followed by a word character.</param>
/// <param name="LStrip">The match also swallows the whitespace on its left.</param>
/// <param name="RStrip">The match also swallows the whitespace on its right.</param>
/// <param name="Normalized">Match against the normalized text (true) or the raw text (false).</param>
public sealed record AddedToken(int Id, string Content, bool Special = true, bool SingleWord = false, bool LStrip = false, bool RStrip = false, bool Normalized = false);
