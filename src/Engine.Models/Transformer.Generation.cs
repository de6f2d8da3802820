using Engine.Core.Backends;

namespace Engine.Models;

public sealed partial class Transformer
{
    /// <summary>A key/value cache for <paramref name="batch"/> sequences of up to <paramref name="maxTime"/> tokens.</summary>
    public KvCache CreateCache(int batch, int maxTime) => new(Backend, Config, Attention, batch, maxTime);

    /// <summary>
    /// Incremental forward: sequence b receives <c>counts[b]</c> new tokens (0 ≤ counts[b] ≤ Tq), taken from row b of
    /// <paramref name="tokens"/> [B,Tq] (row-major; entries past counts[b] are padding and may be any valid id). Each new
    /// token attends to everything cached for its sequence plus the new tokens before it, at positions continuing from
    /// the sequence's length, so a prefix is never recomputed. Writes the logits of each sequence's last new token to
    /// <paramref name="logits"/> [B,V] and advances the cache lengths by the counts. Prefill a batch of prompts of
    /// different lengths with Tq = the longest prompt (right-padded); decode with Tq = 1. A sequence given 0 tokens is
    /// left as it is (its logits row is meaningless).
    /// </summary>
    public void Append(KvCache cache, ReadOnlySpan<int> tokens, ReadOnlySpan<int> counts, Span<float> logits)
    {
        ArgumentNullException.ThrowIfNull(cache);
        if (cache.Backend != Backend || cache.Config != Config)
        {
            throw new ArgumentException("the cache was created by another model", nameof(cache));
        }

        int b = cache.Batch, v = Config.VocabSize;
        if (counts.Length != b || tokens.Length == 0 || tokens.Length % b != 0)
        {
            throw new ArgumentException($"expected {b} counts and B·Tq tokens for B = {b}, got {counts.Length} counts and {tokens.Length} tokens");
        }

        int tq = tokens.Length / b;
        if (logits.Length != (long)b * v)
        {
            throw new ArgumentException($"logits span has {logits.Length} elements, expected B·V = {(long)b * v}", nameof(logits));
        }

        if (tq > cache.MaxTime)
        {
            throw new ArgumentOutOfRangeException(nameof(tokens), $"{tq} new tokens per sequence exceed the cache length {cache.MaxTime}");
        }

        var lengths = cache.Lengths;
        for (int i = 0; i < b; i++)
        {
            if (counts[i] < 0 || counts[i] > tq || lengths[i] + counts[i] > cache.MaxTime)
            {
                throw new ArgumentOutOfRangeException(
                    nameof(counts), $"sequence {i} holds {lengths[i]} tokens and cannot take {counts[i]} more (Tq = {tq}, cache length {cache.MaxTime})");
            }

            // Padding slots (and a whole idle sequence) are written past the sequence's length, where nothing reads them
            // before they are overwritten. A full idle sequence is moved back so its padding still fits the cache; it
            // cannot take more tokens anyway.
            int start = counts[i] > 0 ? lengths[i] : Math.Min(lengths[i], cache.MaxTime - tq);
            cache.HostPositions[i] = start;
            for (int t = 0; t < tq; t++)
            {
                cache.HostPositionIds[(i * tq) + t] = start + t;
            }
        }

        cache.FreshChunk = tq > 1 && Array.TrueForAll(cache.HostPositions, x => x == 0);
        var p = cache.Plan(tq);
        Upload(p, tokens);
        Backend.CopyFromHost<int>(cache.Positions, cache.HostPositions);
        Backend.CopyFromHost<int>(cache.PositionIds.Slice(0, b * tq), cache.HostPositionIds.AsSpan(0, b * tq));
        ForwardTrunk(p, training: false, cache);

        for (int i = 0; i < b; i++)
        {
            int last = Math.Max(counts[i], 1) - 1;
            Backend.Copy(cache.LastHidden.Rows(i, 1), p.Final.Rows((i * tq) + last, 1));
        }

        long t0 = Profiler.Begin();
        Backend.MatmulForward(cache.Logits, cache.LastHidden, HeadWeight, default, WeightLayout.OutIn);
        Profiler.End(t0, OpKind.Matmul, backward: false);
        Backend.CopyToHost(cache.Logits, logits);
        for (int i = 0; i < b; i++)
        {
            cache.Advance(i, counts[i]);
        }
    }
}
