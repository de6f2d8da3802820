using Engine.Core.Numerics;
using Engine.Models;
using Engine.Training.Data;
using Engine.Training.Objectives;

namespace Engine.Tests.Objectives;

/// <summary>
/// Generated preference data over a letter "tokenizer" (a → 2, …, z → 27, EOS = 1, pad = 0): prompts of neutral
/// letters a–f; a response is better the more "good" letters (g–p) and the fewer "bad" ones (q–z) it has. Better is
/// decided by that count alone, so the preference is separable but needs the whole response, not the last token.
/// </summary>
internal static class SyntheticPreferences
{
    public const int Vocab = 32;
    public const int MaxLength = 24;

    public static SequenceCollator Collator { get; } = new(
        new FuncTextEncoder(text => [.. text.Select(c => c - 'a' + 2)], bosTokenId: null, eosTokenId: 1),
        new CollatorOptions { MaxLength = MaxLength, PadTokenId = 0 });

    public static TransformerConfig Gpt2Config => TransformerConfig.Gpt2(Vocab, MaxLength, layers: 2, channels: 32, heads: 4);

    /// <summary>A response of <paramref name="length"/> letters of which <paramref name="good"/> are good, in random order.</summary>
    public static string Response(RandomStream rng, int length, int good)
    {
        var letters = new char[length];
        for (int i = 0; i < length; i++)
        {
            letters[i] = i < good ? (char)('g' + rng.NextInt(10)) : (char)('q' + rng.NextInt(10));
        }

        for (int i = length - 1; i > 0; i--)
        {
            int j = rng.NextInt(i + 1);
            (letters[i], letters[j]) = (letters[j], letters[i]);
        }

        return new string(letters);
    }

    public static string Prompt(RandomStream rng)
    {
        int length = 2 + rng.NextInt(4);
        return new string([.. Enumerable.Range(0, length).Select(_ => (char)('a' + rng.NextInt(6)))]);
    }

    /// <summary>
    /// Pairs whose two responses have the same length and different numbers of good letters (the one with more is
    /// chosen); every <paramref name="rankingEvery"/>-th example (0 = never) is instead a K = 3 ranking.
    /// </summary>
    public static List<Example> Examples(ulong seed, int count, int rankingEvery = 0)
    {
        var rng = new RandomStream(seed);
        var examples = new List<Example>(count);
        for (int i = 0; i < count; i++)
        {
            var prompt = TextOrChat.FromText(Prompt(rng));
            int length = 4 + rng.NextInt(4);
            int k = rankingEvery > 0 && i % rankingEvery == rankingEvery - 1 ? 3 : 2;

            // k distinct good-letter counts, best first.
            var counts = Enumerable.Range(0, length + 1).OrderBy(_ => rng.NextDouble()).Take(k).OrderDescending().ToArray();
            var responses = counts.Select(g => TextOrChat.FromText(Response(rng, length, g))).ToArray();
            if (k == 2)
            {
                examples.Add(new PreferenceExample(prompt, responses[0], responses[1], null, false) { Source = "synthetic", Line = i + 1 });
            }
            else
            {
                // Stored in a shuffled order with the ranking pointing back at the best-first order.
                int[] order = [.. Enumerable.Range(0, k).OrderBy(_ => rng.NextDouble())];
                var stored = new TextOrChat[k];
                var ranking = new int[k];
                for (int rank = 0; rank < k; rank++)
                {
                    stored[order[rank]] = responses[rank];
                    ranking[rank] = order[rank];
                }

                examples.Add(new RankingExample(prompt, stored, ranking) { Source = "synthetic", Line = i + 1 });
            }
        }

        return examples;
    }

    public static List<PreferenceBatch> Batches(IEnumerable<Example> examples, int groupsPerBatch) =>
        [.. PreferenceBatch.Batches(examples, Collator, groupsPerBatch)];
}
