namespace Engine.Training.Options;

/// <summary>
/// The tokens a sampling trainer generates per prompt within <c>max_length</c> (GRPO's <c>max_completion_length</c>, PPO's
/// <c>response_length</c>, online DPO's <c>max_new_tokens</c>): its key as the user writes it, and how to read and set it,
/// so <see cref="ContextLength.Fit{T}"/> can lower a default that leaves no room for a prompt.
/// </summary>
/// <param name="Key">The option's key (as in <c>--set</c> and the error messages).</param>
/// <param name="Get">Reads the length from the options.</param>
/// <param name="With">The options with the length replaced.</param>
public sealed record GeneratedLength<T>(string Key, Func<T, int> Get, Func<T, int, T> With)
    where T : TrainerOptions;
