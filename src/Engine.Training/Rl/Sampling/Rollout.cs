namespace Engine.Training.Rl.Sampling;

/// <summary>
/// One sampled episode: the prompt's token ids, the response the policy produced after it (its stop token included
/// when it produced one), and whether it ended with that stop token (EOS) rather than running out of tokens or context.
/// </summary>
/// <param name="Prompt">Prompt ids [P], P ≥ 1.</param>
/// <param name="Response">Sampled ids [R], R ≥ 0; the last is the stop token when <paramref name="EndedWithEos"/>.</param>
/// <param name="EndedWithEos">Whether the response ends with a stop token.</param>
public sealed record Rollout(int[] Prompt, int[] Response, bool EndedWithEos)
{
    /// <summary>P + R.</summary>
    public int Length => Prompt.Length + Response.Length;

    /// <summary>The prompt followed by the response, [P + R].</summary>
    public int[] Tokens() => [.. Prompt, .. Response];
}
