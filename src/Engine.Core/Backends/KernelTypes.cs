namespace Engine.Core.Backends;

/// <summary>How a linear layer's weight is stored.</summary>
public enum WeightLayout
{
    /// <summary>W is [OC, C] (PyTorch <c>nn.Linear</c>, a tied LM head reading the embedding table): out = inp·Wᵀ.</summary>
    OutIn,
    /// <summary>W is [C, OC] (GPT-2's <c>Conv1D</c>): out = inp·W.</summary>
    InOut,
}

/// <summary>Hyper-parameters of one fused AdamW update (decoupled weight decay, Loshchilov and Hutter).</summary>
/// <param name="LearningRate">Step size η.</param>
/// <param name="Beta1">First-moment decay β₁.</param>
/// <param name="Beta2">Second-moment decay β₂.</param>
/// <param name="Epsilon">Denominator term ε.</param>
/// <param name="WeightDecay">Decoupled decay λ: θ ← θ − η·λ·θ (0 for norms, biases and embeddings by option).</param>
/// <param name="Step">1-based step number t for bias correction (1 − βᵗ).</param>
/// <param name="GradScale">Factor applied to every gradient before use (global-norm clipping, loss scaling).</param>
public readonly record struct AdamWParameters(
    float LearningRate,
    float Beta1,
    float Beta2,
    float Epsilon,
    float WeightDecay,
    int Step,
    float GradScale = 1f);

/// <summary>Head layout of causal self-attention over a fused QKV tensor.</summary>
/// <param name="NumHeads">Query heads NH.</param>
/// <param name="NumKvHeads">Key/value heads NKV; NH must be a multiple (grouped-query attention; NKV = NH is plain MHA).</param>
/// <param name="HeadSize">HS, channels per head.</param>
public readonly record struct AttentionShape(int NumHeads, int NumKvHeads, int HeadSize)
{
    /// <summary>Channels of the fused QKV row: (NH + 2·NKV)·HS, laid out as [q heads | k heads | v heads].</summary>
    public int QkvChannels => (NumHeads + (2 * NumKvHeads)) * HeadSize;

    /// <summary>Channels of the attention output row: NH·HS.</summary>
    public int OutChannels => NumHeads * HeadSize;
}

/// <summary>
/// The counter-based random stream used by dropout on every backend: element <c>i</c> of a call with
/// (seed, offset) is kept when <see cref="Uniform"/>(seed, offset + i) ≥ p. The mask is recomputed in backward, never stored.
/// </summary>
public static class DropoutStream
{
    /// <summary>A uniform number in [0, 1) from 24 bits of a SplitMix64 hash of (seed, index).</summary>
    public static float Uniform(ulong seed, ulong index)
    {
        ulong z = seed + ((index + 1) * 0x9E3779B97F4A7C15UL);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        z ^= z >> 31;
        return (z >> 40) * (1.0f / (1 << 24));
    }
}

/// <summary>Rotary position embedding tables (the Hugging Face "rotate half" convention).</summary>
public static class RopeTables
{
    /// <summary>
    /// Fills <paramref name="table"/> [maxT, HS]: row t holds cos(t·θ_i) for i &lt; HS/2, then sin(t·θ_i),
    /// where θ_i = theta^(−2i/HS). Computed in double precision, as PyTorch does in float32 from float64-exact inputs.
    /// </summary>
    public static void Fill(Span<float> table, int maxT, int headSize, double theta)
    {
        if (headSize % 2 != 0)
        {
            throw new ArgumentException($"RoPE needs an even head size, got {headSize}", nameof(headSize));
        }

        if (table.Length < maxT * headSize)
        {
            throw new ArgumentException($"table of {table.Length} floats is smaller than {maxT}x{headSize}", nameof(table));
        }

        int half = headSize / 2;
        for (int i = 0; i < half; i++)
        {
            // Matches PyTorch: inv_freq = 1 / theta ** (arange(0, HS, 2).float() / HS), computed in float32.
            float invFreq = 1f / MathF.Pow((float)theta, (2 * i) / (float)headSize);
            for (int t = 0; t < maxT; t++)
            {
                float angle = t * invFreq;
                table[(t * headSize) + i] = MathF.Cos(angle);
                table[(t * headSize) + half + i] = MathF.Sin(angle);
            }
        }
    }
}
