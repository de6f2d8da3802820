namespace Engine.Models.Generation;

/// <summary>
/// How <see cref="Generator"/> picks tokens; every default lives here. Temperature 0 (or TopK 1) is greedy decoding.
/// Otherwise logits are divided by the temperature, cut to the TopK most likely tokens (0 = no cut), then to the
/// smallest set whose probability reaches TopP (1 = no cut), renormalised and sampled from a per-sequence stream seeded
/// by (Seed, sequence index), so a prompt's samples do not depend on the rest of the batch.
/// </summary>
public sealed record GenerationOptions
{
    /// <summary>Most tokens generated per sequence (the stop token included).</summary>
    public int MaxNewTokens { get; init; } = 64;

    /// <summary>Softmax temperature; 0 = greedy (argmax, lowest id on ties).</summary>
    public float Temperature { get; init; } = 1f;

    /// <summary>Keep only the K most likely tokens; 0 = all.</summary>
    public int TopK { get; init; }

    /// <summary>Nucleus sampling: keep the most likely tokens until their probability reaches P; 1 = all.</summary>
    public float TopP { get; init; } = 1f;

    /// <summary>Seed of the sampling streams.</summary>
    public ulong Seed { get; init; }

    /// <summary>Tokens that end a sequence (kept as its last output token), e.g. EOS.</summary>
    public IReadOnlyList<int> StopTokens { get; init; } = [];

    /// <summary>Throws an <see cref="ArgumentException"/> naming the first field out of range.</summary>
    public void Validate()
    {
        if (MaxNewTokens < 0)
        {
            throw new ArgumentException($"max_new_tokens must be ≥ 0, got {MaxNewTokens}");
        }

        if (!(Temperature >= 0f) || float.IsInfinity(Temperature))
        {
            throw new ArgumentException($"temperature must be finite and ≥ 0, got {Temperature}");
        }

        if (TopK < 0)
        {
            throw new ArgumentException($"top_k must be ≥ 0, got {TopK}");
        }

        if (!(TopP > 0f && TopP <= 1f))
        {
            throw new ArgumentException($"top_p must be in (0, 1], got {TopP}");
        }

        ArgumentNullException.ThrowIfNull(StopTokens);
    }
}

/// <summary>Why a sequence stopped.</summary>
public enum FinishReason
{
    /// <summary>It produced a stop token.</summary>
    Stop,

    /// <summary>It produced <see cref="GenerationOptions.MaxNewTokens"/> tokens.</summary>
    MaxTokens,

    /// <summary>It filled the model's context (MaxSequenceLength).</summary>
    ContextFull,
}

/// <summary>The generated tokens of one prompt (the prompt not included) and why generation stopped.</summary>
public sealed record GenerationResult(IReadOnlyList<int> Tokens, FinishReason Reason);

/// <summary>One generated token, for streaming: the prompt's index, the token, its index in the output, and whether it was the last.</summary>
public readonly record struct GeneratedToken(int Sequence, int Token, int Index, bool Final);
