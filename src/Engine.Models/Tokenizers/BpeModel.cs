using System.Collections.Concurrent;
using System.Text;
using System.Text.Json;

namespace Engine.Models.Tokenizers;

/// <summary>The settings of a BPE model besides its vocabulary and merges (the <c>model</c> object's flags).</summary>
internal sealed record BpeOptions
{
    public string? UnkToken { get; init; }

    public bool FuseUnk { get; init; }

    public bool ByteFallback { get; init; }

    public bool IgnoreMerges { get; init; }

    public string? ContinuingSubwordPrefix { get; init; }

    public string? EndOfWordSuffix { get; init; }

    /// <summary>A training-time regulariser; kept so a loaded file is written back unchanged, never applied.</summary>
    public double? Dropout { get; init; }
}

/// <summary>
/// Byte-pair encoding: each word starts as characters (or bytes) and the adjacent pair with the lowest merge rank is
/// merged until none is left, ties going to the leftmost pair. Short words use a plain scan; long ones a heap over a
/// linked list (O(n log n), so a megabyte-long word finishes). Results are cached per word.
/// </summary>
internal sealed class BpeModel
{
    /// <summary>Words longer than this are not cached: they are rare and would crowd out the common ones.</summary>
    private const int MaxCachedLength = 128;
    private const int CacheCapacity = 1 << 18;
    private const int HeapThreshold = 48;

    private readonly Dictionary<string, int> _vocab;
    private readonly Dictionary<string, int>.AlternateLookup<ReadOnlySpan<char>> _vocabBySpan;
    private readonly Dictionary<long, int> _mergeRanks;
    private readonly int[] _mergeResults;
    private readonly int[] _byteIds = new int[256];
    private readonly int[] _byteFallbackIds = new int[256];
    private readonly bool _bytesDirect;
    private readonly ConcurrentDictionary<string, int[]> _byteCache = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, int[]> _charCache = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, int[]>.AlternateLookup<ReadOnlySpan<char>> _byteCacheBySpan;
    private readonly ConcurrentDictionary<string, int[]>.AlternateLookup<ReadOnlySpan<char>> _charCacheBySpan;

    // ConcurrentDictionary.Count takes every lock; a counter of our own is enough for a capacity check.
    private int _cachedWords;

    /// <param name="vocab">Token → id.</param>
    /// <param name="merges">Merges in rank order, as ids of their two parts; each result must be in the vocabulary.</param>
    /// <param name="options">The flags.</param>
    public BpeModel(Dictionary<string, int> vocab, (int A, int B)[] merges, BpeOptions options)
    {
        _vocab = vocab;
        _vocabBySpan = vocab.GetAlternateLookup<ReadOnlySpan<char>>();
        _byteCacheBySpan = _byteCache.GetAlternateLookup<ReadOnlySpan<char>>();
        _charCacheBySpan = _charCache.GetAlternateLookup<ReadOnlySpan<char>>();
        Options = options;
        Merges = merges;
        int maxId = -1;
        foreach (int id in vocab.Values)
        {
            maxId = Math.Max(maxId, id);
        }

        IdToToken = new string?[maxId + 1];
        foreach (var (token, id) in vocab)
        {
            IdToToken[id] = token;
        }

        _mergeRanks = new Dictionary<long, int>(merges.Length);
        _mergeResults = new int[merges.Length];
        for (int rank = 0; rank < merges.Length; rank++)
        {
            var (a, b) = merges[rank];
            _mergeResults[rank] = vocab[IdToToken[a] + IdToToken[b]];
            // A repeated pair keeps its first (lowest) rank, as in the reference implementation.
            _mergeRanks.TryAdd(Key(a, b), rank);
        }

        bool complete = true;
        for (int b = 0; b < 256; b++)
        {
            _byteIds[b] = vocab.TryGetValue(ByteLevelAlphabet.ByteToChar[b].ToString(), out int id) ? id : -1;
            complete &= _byteIds[b] >= 0;
            _byteFallbackIds[b] = vocab.TryGetValue($"<0x{b:X2}>", out int fallback) ? fallback : -1;
        }

        _bytesDirect = complete && string.IsNullOrEmpty(options.ContinuingSubwordPrefix) && string.IsNullOrEmpty(options.EndOfWordSuffix);
        UnkId = options.UnkToken is null ? -1 : vocab[options.UnkToken];
    }

    public BpeOptions Options { get; }

    public IReadOnlyDictionary<string, int> Vocab => _vocab;

    public (int A, int B)[] Merges { get; }

    /// <summary>Id → token; null where the vocabulary has no such id.</summary>
    public string?[] IdToToken { get; }

    public int UnkId { get; }

    public bool TryGetId(ReadOnlySpan<char> token, out int id) => _vocabBySpan.TryGetValue(token, out id);

    /// <summary>Forgets the cached words.</summary>
    public void ClearCache()
    {
        _byteCache.Clear();
        _charCache.Clear();
        Volatile.Write(ref _cachedWords, 0);
    }

    /// <summary>Appends the ids of one word; <paramref name="byteLevel"/> words are encoded from their UTF-8 bytes.</summary>
    public void Encode(ReadOnlySpan<char> word, bool byteLevel, List<int> output, BpeScratch scratch)
    {
        if (word.IsEmpty)
        {
            return;
        }

        var cache = byteLevel ? _byteCacheBySpan : _charCacheBySpan;
        bool cacheable = word.Length <= MaxCachedLength;
        if (cacheable && cache.TryGetValue(word, out int[]? cached))
        {
            output.AddRange(cached);
            return;
        }

        int start = output.Count;
        if (byteLevel && _bytesDirect)
        {
            EncodeBytes(word, output, scratch);
        }
        else
        {
            EncodeChars(byteLevel ? ByteLevelAlphabet.Encode(word) : word, output, scratch);
        }

        // The cache stops growing when full instead of evicting: the common words arrive first.
        if (cacheable && Volatile.Read(ref _cachedWords) < CacheCapacity
            && cache.TryAdd(word, output.GetRange(start, output.Count - start).ToArray()))
        {
            Interlocked.Increment(ref _cachedWords);
        }

        scratch.Release();
    }

    private void EncodeBytes(ReadOnlySpan<char> word, List<int> output, BpeScratch scratch)
    {
        int n = Encoding.UTF8.GetByteCount(word);
        scratch.EnsureBytes(n);
        scratch.Ensure(n);
        Encoding.UTF8.GetBytes(word, scratch.Bytes);
        if (Options.IgnoreMerges)
        {
            scratch.EnsureChars(n);
            Span<char> mapped = scratch.Chars.AsSpan(0, n);
            for (int i = 0; i < n; i++)
            {
                mapped[i] = ByteLevelAlphabet.ByteToChar[scratch.Bytes[i]];
            }

            if (_vocabBySpan.TryGetValue(mapped, out int whole))
            {
                output.Add(whole);
                return;
            }
        }

        var ids = scratch.Ids;
        for (int i = 0; i < n; i++)
        {
            ids[i] = _byteIds[scratch.Bytes[i]];
        }

        Merge(n, output, scratch);
    }

    /// <summary>The reference implementation's <c>merge_word</c>: characters, byte fallback and unknown tokens, then merges.</summary>
    private void EncodeChars(ReadOnlySpan<char> word, List<int> output, BpeScratch scratch)
    {
        if (Options.IgnoreMerges && _vocabBySpan.TryGetValue(word, out int whole))
        {
            output.Add(whole);
            return;
        }

        // One id per character, or with byte fallback up to one per UTF-8 byte.
        scratch.Ensure(Options.ByteFallback ? (word.Length * 4) + 4 : word.Length + 4);
        string prefix = Options.ContinuingSubwordPrefix ?? string.Empty;
        string suffix = Options.EndOfWordSuffix ?? string.Empty;
        int n = 0;
        int unkId = -1;
        Span<byte> utf8 = stackalloc byte[4];
        int i = 0;
        while (i < word.Length)
        {
            int width = char.IsHighSurrogate(word[i]) && i + 1 < word.Length && char.IsLowSurrogate(word[i + 1]) ? 2 : 1;
            bool first = i == 0;
            bool last = i + width == word.Length;
            var symbol = word.Slice(i, width);
            i += width;
            int id;
            bool found = prefix.Length == 0 && suffix.Length == 0
                ? _vocabBySpan.TryGetValue(symbol, out id)
                : _vocab.TryGetValue(string.Concat(first ? string.Empty : prefix, symbol, last ? suffix : string.Empty), out id);
            if (found)
            {
                if (unkId >= 0)
                {
                    scratch.Ids[n++] = unkId;
                    unkId = -1;
                }

                scratch.Ids[n++] = id;
                continue;
            }

            if (Options.ByteFallback)
            {
                int count = Rune.DecodeFromUtf16(symbol, out var rune, out _) == System.Buffers.OperationStatus.Done
                    ? rune.EncodeToUtf8(utf8)
                    : new Rune(0xFFFD).EncodeToUtf8(utf8);
                bool all = true;
                for (int k = 0; k < count; k++)
                {
                    all &= _byteFallbackIds[utf8[k]] >= 0;
                }

                if (all)
                {
                    if (unkId >= 0)
                    {
                        scratch.Ids[n++] = unkId;
                        unkId = -1;
                    }

                    for (int k = 0; k < count; k++)
                    {
                        scratch.Ids[n++] = _byteFallbackIds[utf8[k]];
                    }

                    continue;
                }
            }

            if (UnkId >= 0)
            {
                // Consecutive unknown characters become one unknown token when fuse_unk is set.
                if (unkId >= 0 && !Options.FuseUnk)
                {
                    scratch.Ids[n++] = unkId;
                }

                unkId = UnkId;
            }
        }

        if (unkId >= 0)
        {
            scratch.Ids[n++] = unkId;
        }

        Merge(n, output, scratch);
    }

    private static long Key(int a, int b) => ((long)a << 32) | (uint)b;

    /// <summary>Merges the first <paramref name="n"/> ids of the scratch buffer and appends the result.</summary>
    private void Merge(int n, List<int> output, BpeScratch scratch)
    {
        if (n < HeapThreshold)
        {
            MergeByScan(n, output, scratch.Ids);
        }
        else
        {
            MergeByHeap(n, output, scratch);
        }
    }

    private void MergeByScan(int n, List<int> output, int[] ids)
    {
        while (n > 1)
        {
            int bestRank = int.MaxValue;
            int bestPos = -1;
            for (int i = 0; i < n - 1; i++)
            {
                if (_mergeRanks.TryGetValue(Key(ids[i], ids[i + 1]), out int rank) && rank < bestRank)
                {
                    bestRank = rank;
                    bestPos = i;
                }
            }

            if (bestPos < 0)
            {
                break;
            }

            ids[bestPos] = _mergeResults[bestRank];
            Array.Copy(ids, bestPos + 2, ids, bestPos + 1, n - bestPos - 2);
            n--;
        }

        for (int i = 0; i < n; i++)
        {
            output.Add(ids[i]);
        }
    }

    private void MergeByHeap(int n, List<int> output, BpeScratch scratch)
    {
        int[] ids = scratch.Ids;
        var heap = scratch.Heap;
        heap.Clear();
        for (int i = 0; i < n - 1; i++)
        {
            if (_mergeRanks.TryGetValue(Key(ids[i], ids[i + 1]), out int rank))
            {
                heap.Push(((long)rank << 32) | (uint)i);
            }
        }

        output.EnsureCapacity(output.Count + n);
        if (heap.Count == 0)
        {
            // Nothing merges: the links (8 bytes a symbol) are not needed.
            output.AddRange(ids.AsSpan(0, n));
            return;
        }

        scratch.EnsureLinks(n);
        int[] next = scratch.Next;
        int[] prev = scratch.Prev;
        for (int i = 0; i < n; i++)
        {
            prev[i] = i - 1;
            next[i] = i + 1 < n ? i + 1 : -1;
        }

        while (heap.Count > 0)
        {
            long top = heap.Pop();
            int rank = (int)(top >> 32);
            int pos = (int)(top & 0xFFFFFFFF);
            int right = next[pos];
            // Entries go stale when a neighbour merged first; the pair at pos must still be the one queued.
            if (ids[pos] < 0 || right < 0 || !_mergeRanks.TryGetValue(Key(ids[pos], ids[right]), out int current) || current != rank)
            {
                continue;
            }

            ids[pos] = _mergeResults[rank];
            ids[right] = -1;
            int after = next[right];
            next[pos] = after;
            if (after >= 0)
            {
                prev[after] = pos;
                if (_mergeRanks.TryGetValue(Key(ids[pos], ids[after]), out int r))
                {
                    heap.Push(((long)r << 32) | (uint)pos);
                }
            }

            int before = prev[pos];
            if (before >= 0 && _mergeRanks.TryGetValue(Key(ids[before], ids[pos]), out int l))
            {
                heap.Push(((long)l << 32) | (uint)before);
            }
        }

        for (int i = 0; i >= 0; i = next[i])
        {
            output.Add(ids[i]);
        }
    }

    public void Write(Utf8JsonWriter writer)
    {
        writer.WriteStartObject();
        writer.WriteString("type", "BPE");
        if (Options.Dropout is double dropout)
        {
            writer.WriteNumber("dropout", dropout);
        }
        else
        {
            writer.WriteNull("dropout");
        }

        WriteOptional(writer, "unk_token", Options.UnkToken);
        WriteOptional(writer, "continuing_subword_prefix", Options.ContinuingSubwordPrefix);
        WriteOptional(writer, "end_of_word_suffix", Options.EndOfWordSuffix);
        writer.WriteBoolean("fuse_unk", Options.FuseUnk);
        writer.WriteBoolean("byte_fallback", Options.ByteFallback);
        writer.WriteBoolean("ignore_merges", Options.IgnoreMerges);
        writer.WriteStartObject("vocab");
        for (int id = 0; id < IdToToken.Length; id++)
        {
            if (IdToToken[id] is string token)
            {
                writer.WriteNumber(token, id);
            }
        }

        writer.WriteEndObject();
        writer.WriteStartArray("merges");
        foreach (var (a, b) in Merges)
        {
            writer.WriteStartArray();
            writer.WriteStringValue(IdToToken[a]);
            writer.WriteStringValue(IdToToken[b]);
            writer.WriteEndArray();
        }

        writer.WriteEndArray();
        writer.WriteEndObject();
    }

    private static void WriteOptional(Utf8JsonWriter writer, string name, string? value)
    {
        if (value is null)
        {
            writer.WriteNull(name);
        }
        else
        {
            writer.WriteString(name, value);
        }
    }
}

/// <summary>
/// Per-thread buffers for encoding, so the hot path allocates nothing but its results. Each buffer is sized for what the
/// word needs (a 60 MB word once cost 45 bytes of scratch per character), and buffers past <see cref="RetainedSize"/>
/// are dropped after the word, so one huge word does not pin its memory for the life of the thread.
/// </summary>
internal sealed class BpeScratch
{
    /// <summary>The largest buffer length kept between words.</summary>
    public const int RetainedSize = 1 << 20;

    private const int InitialSize = 1024;

    public byte[] Bytes { get; private set; } = new byte[InitialSize];

    public char[] Chars { get; private set; } = new char[InitialSize];

    public int[] Ids { get; private set; } = new int[InitialSize];

    public int[] Prev { get; private set; } = new int[InitialSize];

    public int[] Next { get; private set; } = new int[InitialSize];

    public MinHeap Heap { get; } = new();

    /// <summary>Room for <paramref name="length"/> ids.</summary>
    public void Ensure(int length) => Ids = Grown(Ids, length);

    /// <summary>Room for <paramref name="length"/> UTF-8 bytes.</summary>
    public void EnsureBytes(int length) => Bytes = Grown(Bytes, length);

    /// <summary>Room for <paramref name="length"/> byte-level characters.</summary>
    public void EnsureChars(int length) => Chars = Grown(Chars, length);

    /// <summary>Room for the links of <paramref name="length"/> symbols (heap merging).</summary>
    public void EnsureLinks(int length)
    {
        Prev = Grown(Prev, length);
        Next = Grown(Next, length);
    }

    /// <summary>Drops buffers that grew past <see cref="RetainedSize"/> for one huge word.</summary>
    public void Release()
    {
        Bytes = Bytes.Length > RetainedSize ? new byte[InitialSize] : Bytes;
        Chars = Chars.Length > RetainedSize ? new char[InitialSize] : Chars;
        Ids = Ids.Length > RetainedSize ? new int[InitialSize] : Ids;
        Prev = Prev.Length > RetainedSize ? new int[InitialSize] : Prev;
        Next = Next.Length > RetainedSize ? new int[InitialSize] : Next;
        Heap.Release(RetainedSize);
    }

    // Doubling for ordinary words; an exact size past RetainedSize, where the buffer is dropped after the word anyway.
    private static T[] Grown<T>(T[] buffer, int length) =>
        buffer.Length >= length ? buffer : new T[length > RetainedSize ? length : Math.Max(length, buffer.Length * 2)];
}

/// <summary>A binary min-heap of longs (rank in the high half, position in the low half).</summary>
internal sealed class MinHeap
{
    private long[] _items = new long[256];

    public int Count { get; private set; }

    public void Clear() => Count = 0;

    /// <summary>Empties the heap and drops its storage when it grew past <paramref name="maxRetained"/> items.</summary>
    public void Release(int maxRetained)
    {
        Count = 0;
        if (_items.Length > maxRetained)
        {
            _items = new long[256];
        }
    }

    public void Push(long value)
    {
        if (Count == _items.Length)
        {
            Array.Resize(ref _items, _items.Length * 2);
        }

        int i = Count++;
        while (i > 0)
        {
            int parent = (i - 1) >> 1;
            if (_items[parent] <= value)
            {
                break;
            }

            _items[i] = _items[parent];
            i = parent;
        }

        _items[i] = value;
    }

    public long Pop()
    {
        long top = _items[0];
        long last = _items[--Count];
        int i = 0;
        while (true)
        {
            int child = (2 * i) + 1;
            if (child >= Count)
            {
                break;
            }

            if (child + 1 < Count && _items[child + 1] < _items[child])
            {
                child++;
            }

            if (_items[child] >= last)
            {
                break;
            }

            _items[i] = _items[child];
            i = child;
        }

        if (Count > 0)
        {
            _items[i] = last;
        }

        return top;
    }
}
