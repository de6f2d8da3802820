using Engine.Models.Generation;
using Engine.Models.Tokenizers;
using Engine.Training.Rl.Rewards;
using Engine.Training.Rl.Sampling;

namespace Engine.Training.Rl.Grpo;

/// <summary>One prompt's group: its G completions and what the reward functions said of them.</summary>
/// <param name="Prompt">The prompt.</param>
/// <param name="Completions">The G sampled completions (prompt + response each).</param>
/// <param name="Rewards">The weighted totals and each function's scores.</param>
public sealed record GrpoGroup(GrpoPrompt Prompt, IReadOnlyList<Rollout> Completions, GroupRewards Rewards)
{
    /// <summary>Whether the completions' total rewards differ (a group whose rewards are all equal has no advantage to learn from).</summary>
    public bool HasSignal => Rewards.Total.Length > 0 && Rewards.Total.Max() > Rewards.Total.Min();
}

/// <summary>
/// Sampling and scoring of groups: G completions per prompt from the policy (batched, KV-cached, one random stream per
/// completion), decoded, and scored by a <see cref="RewardSet"/> a prompt at a time, in prompt order, on the calling thread.
/// </summary>
/// <param name="sampler">The policy's sampler.</param>
/// <param name="rewards">The reward functions and their weights.</param>
/// <param name="decode">Token ids to text (the completions' stop token is left out before decoding).</param>
/// <param name="generation">Temperature, top-k/p, max new tokens and stop tokens (the seed is set per draw).</param>
/// <param name="groupSize">G.</param>
public sealed class GrpoGroups(ResponseSampler sampler, RewardSet rewards, Func<int[], string> decode, GenerationOptions generation, int groupSize)
{
    /// <summary>
    /// Ids to text with <paramref name="tokenizer"/>, leaving out ids it does not have: a model whose embedding is padded
    /// past the tokenizer's vocabulary (common, for alignment) can sample them, and they have no text.
    /// </summary>
    public static Func<int[], string> Decoder(Tokenizer tokenizer)
    {
        ArgumentNullException.ThrowIfNull(tokenizer);
        return ids => tokenizer.Decode(ids.Where(id => (uint)id < (uint)tokenizer.VocabSize).ToArray());
    }

    /// <summary>Samples and scores a group for each of <paramref name="prompts"/>, drawing with <paramref name="seed"/>.</summary>
    /// <exception cref="RewardFunctionException">A reward function failed (names it and the prompt's file and line).</exception>
    public List<GrpoGroup> Draw(IReadOnlyList<GrpoPrompt> prompts, ulong seed)
    {
        ArgumentNullException.ThrowIfNull(prompts);
        var rollouts = sampler.Sample([.. prompts.Select(p => (IReadOnlyList<int>)p.Ids)], generation with { Seed = seed }, groupSize);
        var groups = new List<GrpoGroup>(prompts.Count);
        for (int p = 0; p < prompts.Count; p++)
        {
            var completions = rollouts.Skip(p * groupSize).Take(groupSize).ToArray();
            string promptText = decode(prompts[p].Ids);
            var samples = completions.Select(c =>
            {
                int[] text = c.EndedWithEos ? c.Response[..^1] : c.Response;
                return new RewardSample(prompts[p].Row, promptText, prompts[p].Ids, decode(text), c.Response, c.EndedWithEos);
            }).ToList();
            groups.Add(new GrpoGroup(prompts[p], completions, rewards.Score(samples)));
        }

        return groups;
    }
}
