using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;

namespace Engine.Models.Tokenizers;

/// <summary>
/// A byte-pair-encoding tokenizer as described by a Hugging Face <c>tokenizer.json</c>: added tokens, normalizer,
/// pre-tokenizer, BPE model, post-processor and decoder. Thread-safe; batches are encoded in parallel.
/// </summary>
public sealed class Tokenizer
{
    [ThreadStatic]
    private static EncodeScratch? t_scratch;

    private readonly Normalizer? _normalizer;
    private readonly PreTokenizer? _preTokenizer;
    private readonly BpeModel _model;
    private readonly PostProcessor? _postProcessor;
    private readonly Decoder? _decoder;
    private readonly AddedTokenMatcher _rawMatcher;
    private readonly AddedTokenMatcher _normalizedMatcher;
    private readonly string?[] _idToToken;
    private readonly AddedToken?[] _addedById;
    private readonly HashSet<string> _addedContents;
    private readonly byte[]?[]? _byteLevelBytes;

    internal Tokenizer(Normalizer? normalizer, PreTokenizer? preTokenizer, BpeModel model, PostProcessor? postProcessor, Decoder? decoder, IReadOnlyList<AddedToken> addedTokens)
    {
        _normalizer = normalizer;
        _preTokenizer = preTokenizer;
        _model = model;
        _postProcessor = postProcessor;
        _decoder = decoder;
        AddedTokens = addedTokens;
        int size = model.IdToToken.Length;
        foreach (var token in addedTokens)
        {
            size = Math.Max(size, token.Id + 1);
        }

        _idToToken = new string?[size];
        Array.Copy(model.IdToToken, _idToToken, model.IdToToken.Length);
        _addedById = new AddedToken?[size];
        _addedContents = new HashSet<string>(StringComparer.Ordinal);
        foreach (var token in addedTokens)
        {
            _idToToken[token.Id] = token.Content;
            _addedById[token.Id] ??= token;
            _addedContents.Add(token.Content);
        }

        _rawMatcher = new AddedTokenMatcher(addedTokens.Where(t => !t.Normalized || normalizer is null).Select(t => (t.Content, t)));
        _normalizedMatcher = new AddedTokenMatcher(addedTokens.Where(t => t.Normalized && normalizer is not null).Select(t => (normalizer!.Normalize(t.Content), t)));
        if (decoder is ByteLevelDecoder)
        {
            _byteLevelBytes = new byte[]?[size];
            for (int id = 0; id < size; id++)
            {
                if (_idToToken[id] is string token && _addedById[id] is null)
                {
                    _byteLevelBytes[id] = ByteLevelAlphabet.Decode(token) ?? Encoding.UTF8.GetBytes(token);
                }
            }
        }
    }

    /// <summary>The added tokens (special tokens and user-added words), in file order.</summary>
    public IReadOnlyList<AddedToken> AddedTokens { get; }

    /// <summary>One more than the largest token id: the number of rows an embedding for this tokenizer needs.</summary>
    public int VocabSize => _idToToken.Length;

    /// <summary>Loads a <c>tokenizer.json</c> file (plain, or gzip-compressed when the name ends in <c>.gz</c>).</summary>
    /// <exception cref="TokenizerFormatException">The file is not a valid or supported tokenizer.</exception>
    public static Tokenizer FromFile(string path) => TokenizerJson.Read(path);

    /// <summary>Loads a tokenizer from the UTF-8 JSON of a <c>tokenizer.json</c>; <paramref name="name"/> is used in error messages.</summary>
    /// <exception cref="TokenizerFormatException">The JSON is not a valid or supported tokenizer.</exception>
    public static Tokenizer FromJson(ReadOnlySpan<byte> utf8Json, string name = "<memory>") => TokenizerJson.Parse(utf8Json.ToArray(), name);

    /// <summary>The id of a token of the vocabulary or an added token, or null.</summary>
    public int? TokenToId(string token)
    {
        foreach (var added in AddedTokens)
        {
            if (added.Content == token)
            {
                return added.Id;
            }
        }

        return _model.Vocab.TryGetValue(token, out int id) ? id : null;
    }

    /// <summary>The token string of an id (byte-level tokens in GPT-2's alphabet, e.g. "Ġthe"), or null.</summary>
    public string? IdToToken(int id) => (uint)id < (uint)_idToToken.Length ? _idToToken[id] : null;

    /// <summary>Forgets the per-word cache (for measurements of cold encoding).</summary>
    public void ClearCache() => _model.ClearCache();

    /// <summary>Encodes one text; <paramref name="addSpecialTokens"/> applies the post-processor's template (e.g. a BOS token).</summary>
    public int[] Encode(string text, bool addSpecialTokens = true)
    {
        ArgumentNullException.ThrowIfNull(text);
        var scratch = t_scratch ??= new EncodeScratch();
        scratch.Ids.Clear();
        EncodeInto(text, scratch.Ids, scratch);
        int[] result;
        if (_postProcessor is null)
        {
            result = [.. scratch.Ids];
        }
        else
        {
            scratch.Processed.Clear();
            _postProcessor.Apply(scratch.Ids, scratch.Processed, addSpecialTokens);
            result = [.. scratch.Processed];
        }

        scratch.Release();
        return result;
    }

    /// <summary>Encodes many texts in parallel; the result at i is <c>Encode(texts[i])</c>.</summary>
    public int[][] EncodeBatch(IReadOnlyList<string> texts, bool addSpecialTokens = true, int maxDegreeOfParallelism = -1)
    {
        ArgumentNullException.ThrowIfNull(texts);
        var result = new int[texts.Count][];
        Parallel.For(0, texts.Count, new ParallelOptions { MaxDegreeOfParallelism = maxDegreeOfParallelism }, i => result[i] = Encode(texts[i], addSpecialTokens));
        return result;
    }

    /// <summary>Decodes ids to text; <paramref name="skipSpecialTokens"/> drops special added tokens.</summary>
    /// <exception cref="ArgumentOutOfRangeException">An id is not in the vocabulary.</exception>
    public string Decode(ReadOnlySpan<int> ids, bool skipSpecialTokens = false)
    {
        if (_byteLevelBytes is not null)
        {
            return DecodeByteLevel(ids, skipSpecialTokens);
        }

        var tokens = new List<string>(ids.Length);
        foreach (int id in ids)
        {
            string token = TokenOf(id);
            if (!(skipSpecialTokens && _addedById[id] is { Special: true }))
            {
                tokens.Add(token);
            }
        }

        if (_decoder is null)
        {
            return string.Join(' ', tokens);
        }

        return string.Concat(_decoder.Decode(tokens, _addedContents.Contains));
    }

    /// <summary>Decodes many id sequences in parallel.</summary>
    public string[] DecodeBatch(IReadOnlyList<int[]> ids, bool skipSpecialTokens = false)
    {
        ArgumentNullException.ThrowIfNull(ids);
        var result = new string[ids.Count];
        Parallel.For(0, ids.Count, i => result[i] = Decode(ids[i], skipSpecialTokens));
        return result;
    }

    /// <summary>Writes the tokenizer as a <c>tokenizer.json</c> the Hugging Face libraries load.</summary>
    public void Save(string path) => File.WriteAllBytes(path, ToJsonUtf8());

    /// <summary>The tokenizer as <c>tokenizer.json</c> UTF-8 bytes.</summary>
    public byte[] ToJsonUtf8()
    {
        using var stream = new MemoryStream();
        using (var writer = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = true, Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
        {
            writer.WriteStartObject();
            writer.WriteString("version", "1.0");
            writer.WriteNull("truncation");
            writer.WriteNull("padding");
            writer.WriteStartArray("added_tokens");
            foreach (var t in AddedTokens)
            {
                writer.WriteStartObject();
                writer.WriteNumber("id", t.Id);
                writer.WriteString("content", t.Content);
                writer.WriteBoolean("single_word", t.SingleWord);
                writer.WriteBoolean("lstrip", t.LStrip);
                writer.WriteBoolean("rstrip", t.RStrip);
                writer.WriteBoolean("normalized", t.Normalized);
                writer.WriteBoolean("special", t.Special);
                writer.WriteEndObject();
            }

            writer.WriteEndArray();
            WriteComponent(writer, "normalizer", _normalizer is null ? null : _normalizer.Write);
            WriteComponent(writer, "pre_tokenizer", _preTokenizer is null ? null : _preTokenizer.Write);
            WriteComponent(writer, "post_processor", _postProcessor is null ? null : _postProcessor.Write);
            WriteComponent(writer, "decoder", _decoder is null ? null : _decoder.Write);
            writer.WritePropertyName("model");
            _model.Write(writer);
            writer.WriteEndObject();
        }

        return stream.ToArray();
    }

    private static void WriteComponent(Utf8JsonWriter writer, string name, Action<Utf8JsonWriter>? write)
    {
        writer.WritePropertyName(name);
        if (write is null)
        {
            writer.WriteNullValue();
        }
        else
        {
            write(writer);
        }
    }

    private string TokenOf(int id)
    {
        if ((uint)id >= (uint)_idToToken.Length || _idToToken[id] is not string token)
        {
            throw new ArgumentOutOfRangeException(nameof(id), id, $"token id {id} is not in the vocabulary (size {_idToToken.Length})");
        }

        return token;
    }

    private string DecodeByteLevel(ReadOnlySpan<int> ids, bool skipSpecialTokens)
    {
        var text = new StringBuilder();
        var bytes = new List<byte>(ids.Length * 4);
        foreach (int id in ids)
        {
            string token = TokenOf(id);
            if (_addedById[id] is { } added)
            {
                if (skipSpecialTokens && added.Special)
                {
                    continue;
                }

                // Added tokens are written as they are, not read as byte-level strings.
                text.Append(Encoding.UTF8.GetString(bytes.ToArray())).Append(token);
                bytes.Clear();
                continue;
            }

            bytes.AddRange(_byteLevelBytes![id]!);
        }

        return text.Append(Encoding.UTF8.GetString(bytes.ToArray())).ToString();
    }

    /// <summary>Added tokens, normalization, pre-tokenization and the model, without the post-processor.</summary>
    private void EncodeInto(string text, List<int> ids, EncodeScratch scratch)
    {
        var rawSegments = scratch.RawSegments;
        rawSegments.Clear();
        if (_rawMatcher.IsEmpty)
        {
            rawSegments.Add((0, text.Length, null));
        }
        else
        {
            _rawMatcher.Split(text, rawSegments);
        }

        foreach (var (start, end, token) in rawSegments)
        {
            if (token is not null)
            {
                ids.Add(token.Id);
                continue;
            }

            if (end == start)
            {
                continue;
            }

            if (_normalizer is null)
            {
                EncodeSegment(new Piece(text, start, end - start, false), ids, scratch);
                continue;
            }

            string normalized = _normalizer.Normalize(text[start..end]);
            if (_normalizedMatcher.IsEmpty)
            {
                EncodeSegment(new Piece(normalized, 0, normalized.Length, false), ids, scratch);
                continue;
            }

            var segments = new List<(int Start, int End, AddedToken? Token)>();
            _normalizedMatcher.Split(normalized, segments);
            foreach (var (s, e, t) in segments)
            {
                if (t is not null)
                {
                    ids.Add(t.Id);
                }
                else if (e > s)
                {
                    EncodeSegment(new Piece(normalized, s, e - s, false), ids, scratch);
                }
            }
        }
    }

    private void EncodeSegment(Piece segment, List<int> ids, EncodeScratch scratch)
    {
        if (_preTokenizer is null)
        {
            _model.Encode(segment.Span, false, ids, scratch.Bpe);
            return;
        }

        var input = scratch.Input;
        var pieces = scratch.Pieces;
        input.Clear();
        pieces.Clear();
        input.Add(segment);
        _preTokenizer.Split(input, pieces, scratch.Matches);
        foreach (var piece in pieces)
        {
            _model.Encode(piece.Span, piece.ByteLevel, ids, scratch.Bpe);
        }
    }

    private sealed class EncodeScratch
    {
        public List<int> Ids { get; } = [];

        public List<int> Processed { get; } = [];

        public List<(int Start, int End, AddedToken? Token)> RawSegments { get; } = [];

        public List<Piece> Input { get; } = [];

        public List<Piece> Pieces { get; } = [];

        public List<(int Start, int End)> Matches { get; } = [];

        public BpeScratch Bpe { get; } = new();

        /// <summary>Drops lists that grew past <see cref="BpeScratch.RetainedSize"/> for one huge text.</summary>
        public void Release()
        {
            Trim(Ids);
            Trim(Processed);
            Trim(RawSegments);
            Trim(Input);
            Trim(Pieces);
            Trim(Matches);
        }

        private static void Trim<T>(List<T> list)
        {
            if (list.Capacity > BpeScratch.RetainedSize)
            {
                list.Clear();
                list.Capacity = 0;
            }
        }
    }
}
