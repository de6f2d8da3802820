using Engine.Models;
using Engine.Models.Generation;

namespace Engine.Training.Rl.Sampling;

/// <summary>
/// Rollouts from a policy: batched, KV-cached sampling (<see cref="Generator"/>) of a response to every prompt, by the
/// rules of <see cref="GenerationOptions"/> (temperature, top-k/p, max new tokens, stop tokens, seed). Sequence i of a
/// call draws from the stream <see cref="Generator.SequenceSeed"/>(Seed, i) whatever the chunking, so the same prompts
/// and seed give the same responses at any <see cref="MaxBatch"/>. A response is cut, when needed, so that prompt plus
/// response fit the model's context (and then does not count as ended with EOS). The cache is kept between calls.
/// </summary>
public sealed class ResponseSampler : IDisposable
{
    private readonly Generator generator;

    /// <summary>A sampler of <paramref name="policy"/> (a language-model head), generating at most <paramref name="maxBatch"/> sequences at once (0 = all).</summary>
    public ResponseSampler(Transformer policy, int maxBatch = 0)
    {
        ArgumentNullException.ThrowIfNull(policy);
        ArgumentOutOfRangeException.ThrowIfNegative(maxBatch);
        if (policy.HasScalarHead)
        {
            throw new ArgumentException("a policy needs a language-model head to sample from, not a scalar head", nameof(policy));
        }

        generator = new Generator(policy);
        MaxBatch = maxBatch;
    }

    /// <summary>The policy sampled from.</summary>
    public Transformer Policy => generator.Model;

    /// <summary>Most sequences generated together (0 = the whole call): bounds the KV cache, not the results.</summary>
    public int MaxBatch { get; }

    /// <summary>
    /// Samples <paramref name="samplesPerPrompt"/> responses to each prompt; the result lists them prompt by prompt
    /// (sample s of prompt p at index p·samplesPerPrompt + s), each drawn from its own stream. A prompt must leave room
    /// for at least one response token in the context.
    /// </summary>
    public IReadOnlyList<Rollout> Sample(IReadOnlyList<IReadOnlyList<int>> prompts, GenerationOptions options, int samplesPerPrompt = 1)
    {
        ArgumentNullException.ThrowIfNull(prompts);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(samplesPerPrompt);
        int context = Policy.Config.MaxSequenceLength;
        var expanded = new List<IReadOnlyList<int>>(prompts.Count * samplesPerPrompt);
        for (int p = 0; p < prompts.Count; p++)
        {
            var prompt = prompts[p] ?? throw new ArgumentException($"prompt {p} is null", nameof(prompts));
            if (prompt.Count == 0 || prompt.Count >= context)
            {
                throw new ArgumentException($"prompt {p} has {prompt.Count} tokens; it needs 1 to {context - 1} so a response fits the context of {context}", nameof(prompts));
            }

            for (int s = 0; s < samplesPerPrompt; s++)
            {
                expanded.Add(prompt);
            }
        }

        var stops = new HashSet<int>(options.StopTokens);
        var rollouts = new Rollout[expanded.Count];
        foreach (var (start, count) in BatchRanges.Of(expanded.Count, MaxBatch))
        {
            var part = expanded.GetRange(start, count);

            // SequenceSeed is linear in the index, so this seed gives sequence i of the chunk the stream of start + i.
            var chunkOptions = options with { Seed = Generator.SequenceSeed(options.Seed, start) };
            var results = generator.Generate(part, chunkOptions);
            for (int i = 0; i < count; i++)
            {
                var prompt = part[i];
                int room = context - prompt.Count;
                var generated = results[i].Tokens;
                int length = Math.Min(generated.Count, room);
                bool eos = length == generated.Count && results[i].Reason == FinishReason.Stop && length > 0 && stops.Contains(generated[length - 1]);
                var response = new int[length];
                for (int t = 0; t < length; t++)
                {
                    response[t] = generated[t];
                }

                rollouts[start + i] = new Rollout([.. prompt], response, eos);
            }
        }

        return rollouts;
    }

    /// <inheritdoc/>
    public void Dispose() => generator.Dispose();
}
