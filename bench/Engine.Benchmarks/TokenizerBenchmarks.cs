using System.Diagnostics;
using System.Text;
using BenchmarkDotNet.Attributes;
using Engine.Models.Tokenizers;

namespace Engine.Benchmarks;

/// <summary>
/// GPT-2 tokenizer throughput on about 400 KB of generated English prose (characters per second = text length / time).
/// <c>dotnet run -c Release --project bench/Engine.Benchmarks -- --filter *Tokenizer*</c>, or the quick table:
/// <c>dotnet run -c Release --project bench/Engine.Benchmarks -- tokenizer-probe</c>.
/// </summary>
[MemoryDiagnoser]
public class TokenizerBenchmarks
{
    private Tokenizer _tokenizer = null!;
    private string _text = null!;
    private string[] _paragraphs = null!;

    [GlobalSetup]
    public void Setup()
    {
        _tokenizer = TokenizerBenchmarkData.LoadGpt2();
        _text = TokenizerBenchmarkData.Prose(400_000);
        _paragraphs = _text.Split("\n\n");
        _tokenizer.Encode(_text);
    }

    /// <summary>One thread, per-word cache warm (the steady state of encoding a corpus).</summary>
    [Benchmark(Baseline = true)]
    public int EncodeWarm() => _tokenizer.Encode(_text).Length;

    /// <summary>One thread, cache cleared first: every distinct word goes through BPE once.</summary>
    [Benchmark]
    public int EncodeCold()
    {
        _tokenizer.ClearCache();
        return _tokenizer.Encode(_text).Length;
    }

    /// <summary>Paragraphs encoded in parallel on all cores.</summary>
    [Benchmark]
    public int EncodeBatch() => _tokenizer.EncodeBatch(_paragraphs).Length;
}

/// <summary>The GPT-2 fixture and a deterministic English-like text for the tokenizer benchmarks.</summary>
internal static class TokenizerBenchmarkData
{
    private static readonly string[] Words =
    [
        "the", "of", "and", "to", "in", "a", "is", "that", "for", "it", "as", "was", "with", "be", "by", "on", "not", "he",
        "this", "are", "or", "his", "from", "at", "which", "but", "have", "an", "had", "they", "you", "were", "their", "one",
        "all", "we", "can", "her", "has", "there", "been", "if", "more", "when", "will", "would", "who", "so", "no", "time",
        "people", "water", "history", "government", "morning", "river", "mountain", "question", "language", "children",
        "country", "understanding", "remarkable", "quietly", "beautiful", "difficult", "important", "between", "through",
        "thousand", "evening", "village", "captain", "letter", "journey", "kingdom", "science", "experiment", "machine",
        "garden", "winter", "summer", "ancient", "modern", "silver", "golden", "forest", "harbour", "merchant", "doctor",
        "teacher", "soldier", "weather", "promise", "silence", "memory", "shadow", "light", "darkness", "window", "door",
        "table", "friend", "enemy", "stranger", "mother", "father", "brother", "sister", "house", "street", "city", "road",
        "walked", "looked", "thought", "believed", "remembered", "whispered", "answered", "returned", "discovered",
        "couldn't", "wasn't", "it's", "they're", "we've", "I'm", "you'll", "she'd", "Tokenization", "transformer", "Mr.",
    ];

    public static Tokenizer LoadGpt2()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "Engine.sln")))
        {
            dir = dir.Parent;
        }

        if (dir is null)
        {
            throw new InvalidOperationException("run from inside the repository: Engine.sln not found above " + AppContext.BaseDirectory);
        }

        return Tokenizer.FromFile(Path.Combine(dir.FullName, "tests", "Engine.Tests", "Fixtures", "tokenizers", "gpt2.json.gz"));
    }

    /// <summary>Sentences of common words with capitals, commas, numbers and paragraph breaks, from a fixed seed.</summary>
    public static string Prose(int length)
    {
        var rng = new Random(42);
        var sb = new StringBuilder(length + 200);
        while (sb.Length < length)
        {
            int sentences = rng.Next(3, 8);
            for (int s = 0; s < sentences; s++)
            {
                int words = rng.Next(6, 22);
                for (int w = 0; w < words; w++)
                {
                    string word = Words[rng.Next(Words.Length)];
                    if (w == 0)
                    {
                        word = char.ToUpperInvariant(word[0]) + word[1..];
                    }

                    sb.Append(word);
                    if (w == words - 1)
                    {
                        sb.Append(rng.Next(10) == 0 ? '?' : '.');
                    }
                    else if (rng.Next(9) == 0)
                    {
                        sb.Append(',');
                    }

                    if (rng.Next(40) == 0)
                    {
                        sb.Append(' ').Append(rng.Next(1, 100000));
                    }

                    sb.Append(' ');
                }
            }

            sb.Length--;
            sb.Append("\n\n");
        }

        return sb.ToString();
    }
}

/// <summary>A quick characters-per-second table without BenchmarkDotNet: best of several timed runs per case.</summary>
internal static class TokenizerProbe
{
    public static void Run()
    {
        var tokenizer = TokenizerBenchmarkData.LoadGpt2();
        string text = TokenizerBenchmarkData.Prose(400_000);
        string[] paragraphs = text.Split("\n\n");
        int tokens = tokenizer.Encode(text).Length;
        Console.WriteLine($"GPT-2 on {text.Length} characters of prose ({tokens} tokens, {(double)text.Length / tokens:F2} chars/token), {Environment.ProcessorCount} cores");
        Measure("encode, warm cache, 1 thread", text.Length, () => tokenizer.Encode(text));
        Measure("encode, cold cache, 1 thread", text.Length, () =>
        {
            tokenizer.ClearCache();
            tokenizer.Encode(text);
        });
        Measure($"encode batch of {paragraphs.Length} paragraphs, 1 thread", text.Length, () => tokenizer.EncodeBatch(paragraphs, maxDegreeOfParallelism: 1));
        Measure($"encode batch of {paragraphs.Length} paragraphs, all cores", text.Length, () => tokenizer.EncodeBatch(paragraphs));
        int[] ids = tokenizer.Encode(text);
        Measure("decode, 1 thread", text.Length, () => tokenizer.Decode(ids));
    }

    private static void Measure(string name, int characters, Action action)
    {
        action();
        double best = double.MaxValue;
        for (int i = 0; i < 7; i++)
        {
            var clock = Stopwatch.StartNew();
            action();
            best = Math.Min(best, clock.Elapsed.TotalSeconds);
        }

        Console.WriteLine($"{name,-48} {best * 1000,8:F1} ms {characters / best / 1e6,8:F2} M chars/s");
    }
}
