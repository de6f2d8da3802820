using Engine.Core;

namespace Engine.Training.Rl.Sampling;

/// <summary>The checks every online-RL trainer makes of its context, stop token and prompts before a run.</summary>
internal static class RolloutChecks
{
    /// <summary>max_length must fit <paramref name="context"/>, the shortest context of <paramref name="models"/>.</summary>
    /// <exception cref="InputException">It does not (names the option).</exception>
    public static void MaxLengthFits(int maxLength, int context, string models)
    {
        if (maxLength > context)
        {
            throw new InputException("options", null, "max_length", $"{maxLength} exceeds the {models} context ({context}); set max_length to at most that");
        }
    }

    /// <summary>The stop token must be in the vocabulary.</summary>
    public static void EosInVocabulary(int eosTokenId, int vocab)
    {
        if ((uint)eosTokenId >= (uint)vocab)
        {
            throw new ArgumentOutOfRangeException(nameof(eosTokenId), $"the EOS token {eosTokenId} is outside the vocabulary [0, {vocab})");
        }
    }

    /// <summary>
    /// At least one step's <paramref name="batchSize"/> prompts, each of 1 to <paramref name="maxPromptLength"/> tokens
    /// (<paramref name="limit"/> says how that bound is derived, for the message).
    /// </summary>
    public static void Prompts(IReadOnlyList<int> promptLengths, int batchSize, int maxPromptLength, string method, string limit)
    {
        if (promptLengths.Count < batchSize)
        {
            throw new ArgumentException($"{promptLengths.Count} prompts are fewer than one step's batch_size {batchSize}", nameof(promptLengths));
        }

        for (int i = 0; i < promptLengths.Count; i++)
        {
            if (promptLengths[i] < 1 || promptLengths[i] > maxPromptLength)
            {
                throw new ArgumentException(
                    $"prompt {i} has {promptLengths[i]} tokens; {method} takes 1 to {limit} = {maxPromptLength} (cut long prompts from the left)", nameof(promptLengths));
            }
        }
    }
}
