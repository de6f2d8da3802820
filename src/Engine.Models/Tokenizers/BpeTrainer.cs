namespace Engine.Models.Tokenizers;

/// <summary>How a trained tokenizer splits text into words before BPE.</summary>
public enum PreTokenization
{
    /// <summary>GPT-2's pattern inside the ByteLevel pre-tokenizer.</summary>
    Gpt2,

    /// <summary>Llama-3's pattern (digits in groups of three) in a Split pre-tokenizer, then ByteLevel.</summary>
    Llama3,

    /// <summary>Qwen2's pattern (single digits) in a Split pre-tokenizer, then ByteLevel.</summary>
    Qwen2,
}

/// <summary>Settings of <see cref="BpeTrainer"/>; the CLI's <c>engine tokenizer train</c> reads the same record.</summary>
public sealed record BpeTrainerOptions
{
    /// <summary>Target vocabulary size: 256 byte tokens + special tokens + merges. Training stops earlier when pairs run out.</summary>
    public int VocabSize { get; init; } = 8192;

    /// <summary>A pair seen fewer times than this is never merged.</summary>
    public int MinFrequency { get; init; } = 2;

    /// <summary>Special tokens, given ids 256, 257, ... right after the bytes; they are cut out of the corpus before counting.</summary>
    public IReadOnlyList<string> SpecialTokens { get; init; } = ["<|endoftext|>"];

    /// <summary>How text is split into words.</summary>
    public PreTokenization PreTokenization { get; init; } = PreTokenization.Gpt2;
}

/// <summary>
/// Trains a byte-level BPE tokenizer. Ids 0-255 are the bytes themselves, then the special tokens, then one token per
/// merge. Pair counts are kept up to date incrementally: a merge only revisits the words that contain its pair.
/// </summary>
public static class BpeTrainer
{
    /// <summary>Counts the words of <paramref name="texts"/> and learns merges until the vocabulary is full.</summary>
    /// <exception cref="ArgumentException">The options are inconsistent (vocabulary too small for the bytes and special tokens, duplicates).</exception>
    public static Tokenizer Train(IEnumerable<string> texts, BpeTrainerOptions options)
    {
        ArgumentNullException.ThrowIfNull(texts);
        ArgumentNullException.ThrowIfNull(options);
        Validate(options);
        var (words, counts) = CountWords(texts, options);
        var tokens = new List<byte[]>(options.VocabSize);
        for (int b = 0; b < 256; b++)
        {
            tokens.Add([(byte)b]);
        }

        var merges = Learn(words, counts, tokens, options);
        return Build(tokens, merges, options.SpecialTokens, options.PreTokenization, useRegex: true);
    }

    /// <summary>A tokenizer of the 256 bytes plus <paramref name="specialTokens"/> (ids 256, 257, ...), for models trained from scratch.</summary>
    public static Tokenizer ByteLevel(IReadOnlyList<string> specialTokens)
    {
        Validate(new BpeTrainerOptions { SpecialTokens = specialTokens, VocabSize = 256 + specialTokens.Count });
        var tokens = new List<byte[]>(256);
        for (int b = 0; b < 256; b++)
        {
            tokens.Add([(byte)b]);
        }

        // Without merges the split pattern cannot change the ids, so it is skipped.
        return Build(tokens, [], specialTokens, PreTokenization.Gpt2, useRegex: false);
    }

    private static void Validate(BpeTrainerOptions options)
    {
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (string special in options.SpecialTokens)
        {
            if (string.IsNullOrEmpty(special))
            {
                throw new ArgumentException("special tokens must not be empty");
            }

            if (special.Length == 1 && ByteLevelAlphabet.CharToByte(special[0]) >= 0)
            {
                throw new ArgumentException($"special token '{special}' is spelled like the byte-level token of a single byte");
            }

            if (!seen.Add(special))
            {
                throw new ArgumentException($"special token '{special}' is given twice");
            }
        }

        if (options.VocabSize < 256 + options.SpecialTokens.Count)
        {
            throw new ArgumentException($"vocabulary size {options.VocabSize} is below 256 bytes + {options.SpecialTokens.Count} special tokens");
        }

        if (options.MinFrequency < 1)
        {
            throw new ArgumentException($"minimum frequency must be at least 1, got {options.MinFrequency}");
        }
    }

    private static (List<int[]> Words, List<long> Counts) CountWords(IEnumerable<string> texts, BpeTrainerOptions options)
    {
        var pattern = SplitPattern.FromRegex(PatternOf(options.PreTokenization));
        var matcher = new AddedTokenMatcher(options.SpecialTokens.Select(s => (s, new AddedToken(0, s))));
        var total = new Dictionary<string, long>(StringComparer.Ordinal);
        var gate = new object();
        Parallel.ForEach(
            texts,
            () => new Dictionary<string, long>(StringComparer.Ordinal),
            (text, _, local) =>
            {
                var lookup = local.GetAlternateLookup<ReadOnlySpan<char>>();
                var segments = new List<(int Start, int End, AddedToken? Token)>();
                var matches = new List<(int Start, int End)>();
                matcher.Split(text, segments);
                foreach (var (start, end, token) in segments)
                {
                    if (token is not null)
                    {
                        continue;
                    }

                    matches.Clear();
                    var segment = text.AsSpan(start, end - start);
                    pattern.FindMatches(segment, matches);
                    foreach (var (s, e) in matches)
                    {
                        var word = segment[s..e];
                        lookup[word] = lookup.TryGetValue(word, out long n) ? n + 1 : 1;
                    }
                }

                return local;
            },
            local =>
            {
                lock (gate)
                {
                    foreach (var (word, n) in local)
                    {
                        total[word] = total.GetValueOrDefault(word) + n;
                    }
                }
            });

        // Sorted so the result does not depend on thread timing.
        var words = new List<int[]>(total.Count);
        var counts = new List<long>(total.Count);
        foreach (var (word, n) in total.OrderBy(p => p.Key, StringComparer.Ordinal))
        {
            byte[] bytes = System.Text.Encoding.UTF8.GetBytes(word);
            words.Add([.. bytes.Select(b => (int)b)]);
            counts.Add(n);
        }

        return (words, counts);
    }

    private static long Key(int a, int b) => ((long)a << 32) | (uint)b;

    private static List<(int A, int B)> Learn(List<int[]> words, List<long> counts, List<byte[]> tokens, BpeTrainerOptions options)
    {
        int specialCount = options.SpecialTokens.Count;
        var pairCounts = new Dictionary<long, long>();
        var where = new Dictionary<long, HashSet<int>>();
        for (int w = 0; w < words.Count; w++)
        {
            var symbols = words[w];
            for (int i = 0; i + 1 < symbols.Length; i++)
            {
                long key = Key(symbols[i], symbols[i + 1]);
                pairCounts[key] = pairCounts.GetValueOrDefault(key) + counts[w];
                if (!where.TryGetValue(key, out var set))
                {
                    where[key] = set = [];
                }

                set.Add(w);
            }
        }

        // Highest count first; among equal counts the smaller pair of ids, as the reference trainer does.
        var queue = new PriorityQueue<long, (long NegCount, long Pair)>();
        foreach (var (pair, n) in pairCounts)
        {
            queue.Enqueue(pair, (-n, pair));
        }

        // Merged tokens get ids after the special tokens; an existing byte string keeps its id.
        var byString = new Dictionary<string, int>(StringComparer.Ordinal);
        for (int id = 0; id < tokens.Count; id++)
        {
            byString[ByteLevelAlphabet.Encode(tokens[id])] = id;
        }

        var specials = new HashSet<string>(options.SpecialTokens, StringComparer.Ordinal);
        var merges = new List<(int A, int B)>();
        int size = 256 + specialCount;
        var fresh = new HashSet<long>();
        while (size < options.VocabSize && queue.TryDequeue(out long best, out var priority))
        {
            long current = pairCounts.GetValueOrDefault(best);
            if (current != -priority.NegCount)
            {
                // Counts only fall for pairs already queued, so a stale entry is re-queued with its true count.
                if (current > 0)
                {
                    queue.Enqueue(best, (-current, best));
                }

                continue;
            }

            if (current < options.MinFrequency)
            {
                break;
            }

            int a = (int)(best >> 32);
            int b = (int)(best & 0xFFFFFFFF);
            byte[] merged = [.. TokenBytes(tokens, a, specialCount), .. TokenBytes(tokens, b, specialCount)];
            string mapped = ByteLevelAlphabet.Encode(merged);
            if (specials.Contains(mapped))
            {
                // The merged text is spelled like a special token; that string belongs to the special token.
                pairCounts.Remove(best);
                continue;
            }

            if (!byString.TryGetValue(mapped, out int newIndex))
            {
                newIndex = tokens.Count;
                tokens.Add(merged);
                byString[mapped] = newIndex;
                size++;
            }

            int newId = IdOf(newIndex, specialCount);
            merges.Add((a, b));
            fresh.Clear();
            var affected = where[best].Order().ToArray();
            where.Remove(best);
            foreach (int w in affected)
            {
                int[] symbols = words[w];
                long n = counts[w];
                AddPairs(symbols, -n, pairCounts);
                int[] next = MergeWord(symbols, a, b, newId);
                AddPairs(next, n, pairCounts);
                words[w] = next;
                for (int i = 0; i + 1 < next.Length; i++)
                {
                    if (next[i] == newId || next[i + 1] == newId)
                    {
                        long key = Key(next[i], next[i + 1]);
                        if (!where.TryGetValue(key, out var set))
                        {
                            where[key] = set = [];
                        }

                        set.Add(w);
                        fresh.Add(key);
                    }
                }
            }

            pairCounts.Remove(best);
            foreach (long key in fresh.Order())
            {
                queue.Enqueue(key, (-pairCounts[key], key));
            }
        }

        return merges;
    }

    /// <summary>Merged tokens are stored after the bytes in <c>tokens</c> but numbered after the special tokens.</summary>
    private static int IdOf(int index, int specialCount) => index < 256 ? index : index + specialCount;

    private static byte[] TokenBytes(List<byte[]> tokens, int id, int specialCount) => tokens[id < 256 ? id : id - specialCount];

    private static void AddPairs(int[] symbols, long n, Dictionary<long, long> pairCounts)
    {
        for (int i = 0; i + 1 < symbols.Length; i++)
        {
            long key = Key(symbols[i], symbols[i + 1]);
            long value = pairCounts.GetValueOrDefault(key) + n;
            if (value == 0)
            {
                pairCounts.Remove(key);
            }
            else
            {
                pairCounts[key] = value;
            }
        }
    }

    private static int[] MergeWord(int[] symbols, int a, int b, int newId)
    {
        var result = new List<int>(symbols.Length);
        for (int i = 0; i < symbols.Length; i++)
        {
            if (i + 1 < symbols.Length && symbols[i] == a && symbols[i + 1] == b)
            {
                result.Add(newId);
                i++;
            }
            else
            {
                result.Add(symbols[i]);
            }
        }

        return [.. result];
    }

    internal static string PatternOf(PreTokenization kind) => kind switch
    {
        PreTokenization.Llama3 => SplitPattern.Llama3,
        PreTokenization.Qwen2 => SplitPattern.Qwen2,
        _ => SplitPattern.Gpt2,
    };

    private static Tokenizer Build(List<byte[]> tokens, List<(int A, int B)> merges, IReadOnlyList<string> specials, PreTokenization kind, bool useRegex)
    {
        var vocab = new Dictionary<string, int>(StringComparer.Ordinal);
        for (int index = 0; index < tokens.Count; index++)
        {
            vocab[ByteLevelAlphabet.Encode(tokens[index])] = IdOf(index, specials.Count);
        }

        var added = new List<AddedToken>(specials.Count);
        for (int i = 0; i < specials.Count; i++)
        {
            // A special token spelled like a byte-level token would shadow it; the special token wins the string.
            vocab[specials[i]] = 256 + i;
            added.Add(new AddedToken(256 + i, specials[i]));
        }

        PreTokenizer preTokenizer = kind == PreTokenization.Gpt2
            ? new ByteLevelPreTokenizer(addPrefixSpace: false, useRegex: useRegex, trimOffsets: true)
            : new SequencePreTokenizer([
                new SplitPreTokenizer(SplitPattern.FromRegex(PatternOf(kind)), SplitBehavior.Isolated, invert: false),
                new ByteLevelPreTokenizer(addPrefixSpace: false, useRegex: false, trimOffsets: false)]);
        var model = new BpeModel(vocab, [.. merges], new BpeOptions());
        return new Tokenizer(null, preTokenizer, model, new ByteLevelPostProcessor(false, true, kind == PreTokenization.Gpt2), new ByteLevelDecoder(), added);
    }
}
