using Engine.Core.Numerics;

namespace Engine.Models.Generation;

/// <summary>
/// Batched, KV-cached generation: the prompts are prefilled together (right-padded into one chunk, each at its own
/// positions), then every unfinished sequence advances one token per step without recomputing its prefix. A finished
/// sequence (stop token, MaxNewTokens, or a full context) stops advancing while the others go on. The cache is kept
/// and reused by later calls with the same batch size when it is long enough.
/// </summary>
public sealed class Generator(Transformer model) : IDisposable
{
    private KvCache? cache;

    /// <summary>The model generating.</summary>
    public Transformer Model { get; } = model ?? throw new ArgumentNullException(nameof(model));

    /// <summary>
    /// Generates a continuation of each prompt (token ids). <paramref name="onToken"/>, when given, is called for every
    /// token as soon as it is picked, in order of steps and, within a step, of sequences.
    /// </summary>
    public IReadOnlyList<GenerationResult> Generate(
        IReadOnlyList<IReadOnlyList<int>> prompts, GenerationOptions? options = null, Action<GeneratedToken>? onToken = null)
    {
        ArgumentNullException.ThrowIfNull(prompts);
        options ??= new GenerationOptions();
        options.Validate();
        var config = Model.Config;
        int b = prompts.Count, v = config.VocabSize, context = config.MaxSequenceLength;
        if (b == 0)
        {
            return [];
        }

        int longest = 0;
        for (int i = 0; i < b; i++)
        {
            var prompt = prompts[i] ?? throw new ArgumentException($"prompt {i} is null", nameof(prompts));
            if (prompt.Count == 0 || prompt.Count > context)
            {
                throw new ArgumentException($"prompt {i} has {prompt.Count} tokens; it needs 1 to {context}", nameof(prompts));
            }

            longest = Math.Max(longest, prompt.Count);
        }

        var outputs = new List<int>[b];
        var reasons = new FinishReason?[b];
        for (int i = 0; i < b; i++)
        {
            outputs[i] = [];
        }

        if (options.MaxNewTokens == 0)
        {
            return [.. outputs.Select(o => new GenerationResult(o, FinishReason.MaxTokens))];
        }

        int maxTime = (int)Math.Min(context, (long)longest + options.MaxNewTokens);
        if (cache is null || cache.Batch != b || cache.MaxTime < maxTime)
        {
            cache?.Dispose();
            cache = Model.CreateCache(b, maxTime);
        }

        cache.Reset();
        var stops = new HashSet<int>(options.StopTokens);
        var sampler = new Sampler(options, v);
        var streams = new RandomStream[b];
        for (int i = 0; i < b; i++)
        {
            streams[i] = new RandomStream(SequenceSeed(options.Seed, i));
        }

        var logits = new float[b * v];
        var counts = new int[b];
        var tokens = new int[b * longest];
        for (int i = 0; i < b; i++)
        {
            for (int t = 0; t < prompts[i].Count; t++)
            {
                tokens[(i * longest) + t] = prompts[i][t];
            }

            counts[i] = prompts[i].Count;
        }

        Model.Append(cache, tokens, counts, logits);
        var next = new int[b];
        while (true)
        {
            bool any = false;
            for (int i = 0; i < b; i++)
            {
                counts[i] = 0;
                if (reasons[i] is not null)
                {
                    continue;
                }

                int token = sampler.Sample(logits.AsSpan(i * v, v), streams[i]);
                outputs[i].Add(token);
                next[i] = token;
                if (stops.Contains(token))
                {
                    reasons[i] = FinishReason.Stop;
                }
                else if (outputs[i].Count >= options.MaxNewTokens)
                {
                    reasons[i] = FinishReason.MaxTokens;
                }
                else if (cache.Lengths[i] >= cache.MaxTime)
                {
                    reasons[i] = FinishReason.ContextFull;
                }
                else
                {
                    counts[i] = 1;
                    any = true;
                }

                onToken?.Invoke(new GeneratedToken(i, token, outputs[i].Count - 1, reasons[i] is not null));
            }

            if (!any)
            {
                break;
            }

            Model.Append(cache, next, counts, logits);
        }

        return [.. outputs.Select((o, i) => new GenerationResult(o, reasons[i]!.Value))];
    }

    /// <summary>The seed of the sampling stream of prompt <paramref name="sequence"/> (its index in the batch).</summary>
    public static ulong SequenceSeed(ulong seed, int sequence) => seed + ((ulong)sequence * 0x9E3779B97F4A7C15UL);

    /// <inheritdoc/>
    public void Dispose() => cache?.Dispose();
}
