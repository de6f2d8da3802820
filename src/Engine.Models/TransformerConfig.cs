namespace Engine.Models;

/// <summary>Transformer family: decides norms, positions, activation and biases.</summary>
public enum Architecture
{
    /// <summary>GPT-2: LayerNorm with bias, learned positions, GELU (tanh), biases everywhere, tied embeddings.</summary>
    Gpt2,
    /// <summary>Llama family (Llama, Qwen2, SmolLM, Mistral): RMSNorm, RoPE, SwiGLU, grouped-query attention.</summary>
    Llama,
}

/// <summary>What sits on top of the trunk's final hidden states.</summary>
public enum HeadKind
{
    /// <summary>The language-model head [V,C] (tied to the token embedding or not): next-token logits.</summary>
    LanguageModel,
    /// <summary>
    /// A scalar head <c>score.weight</c> [1,C] + <c>score.bias</c> [1] instead of the LM head: one score per position,
    /// for reward models and PPO critics (Hugging Face's <c>*ForSequenceClassification</c> with num_labels = 1).
    /// </summary>
    Scalar,
}

/// <summary>
/// One configuration covering GPT-2 and the Llama family. Letters: V vocabulary, C channels, NH heads, NKV key/value
/// heads, HS head size, F MLP hidden channels, L layers.
/// </summary>
public sealed record TransformerConfig
{
    /// <summary>Which family the layers follow.</summary>
    public required Architecture Architecture { get; init; }

    /// <summary>V, the vocabulary size.</summary>
    public required int VocabSize { get; init; }

    /// <summary>Longest sequence the model accepts (GPT-2's learned positions; RoPE table size for Llama).</summary>
    public required int MaxSequenceLength { get; init; }

    /// <summary>L, the number of transformer blocks.</summary>
    public required int Layers { get; init; }

    /// <summary>C, the width of the residual stream.</summary>
    public required int Channels { get; init; }

    /// <summary>NH, the number of query heads.</summary>
    public required int Heads { get; init; }

    /// <summary>NKV, the number of key/value heads (equal to NH for plain multi-head attention).</summary>
    public int KvHeads { get; init; }

    /// <summary>HS, channels per head; C / NH when 0.</summary>
    public int HeadSize { get; init; }

    /// <summary>F, the MLP hidden width (4·C for GPT-2 when 0).</summary>
    public int HiddenChannels { get; init; }

    /// <summary>ε of LayerNorm/RMSNorm.</summary>
    public float NormEpsilon { get; init; } = 1e-5f;

    /// <summary>RoPE base θ (Llama family).</summary>
    public double RopeTheta { get; init; } = 10000.0;

    /// <summary>Whether q/k/v projections have a bias (Qwen2); GPT-2 always has biases.</summary>
    public bool AttentionBias { get; init; }

    /// <summary>Whether the LM head reuses the token embedding table.</summary>
    public bool TiedEmbeddings { get; init; } = true;

    /// <summary>The head on the trunk: the LM head (default) or a scalar reward/value head, which has no LM head at all.</summary>
    public HeadKind Head { get; init; } = HeadKind.LanguageModel;

    /// <summary>NKV with the default applied.</summary>
    public int KvHeadCount => KvHeads > 0 ? KvHeads : Heads;

    /// <summary>HS with the default applied.</summary>
    public int HeadChannels => HeadSize > 0 ? HeadSize : Channels / Heads;

    /// <summary>F with the default applied.</summary>
    public int MlpChannels => HiddenChannels > 0 ? HiddenChannels : 4 * Channels;

    /// <summary>A GPT-2 configuration (GPT-2 124M is <c>Gpt2(50257, 1024, 12, 768, 12)</c>).</summary>
    public static TransformerConfig Gpt2(int vocabSize, int maxSequenceLength, int layers, int channels, int heads) => new()
    {
        Architecture = Architecture.Gpt2,
        VocabSize = vocabSize,
        MaxSequenceLength = maxSequenceLength,
        Layers = layers,
        Channels = channels,
        Heads = heads,
        NormEpsilon = 1e-5f,
        TiedEmbeddings = true,
    };

    /// <summary>A Llama-family configuration; F defaults to the SwiGLU convention ≈ 8C/3 rounded up to 32.</summary>
    public static TransformerConfig Llama(
        int vocabSize, int maxSequenceLength, int layers, int channels, int heads, int kvHeads, int hiddenChannels = 0) => new()
    {
        Architecture = Architecture.Llama,
        VocabSize = vocabSize,
        MaxSequenceLength = maxSequenceLength,
        Layers = layers,
        Channels = channels,
        Heads = heads,
        KvHeads = kvHeads,
        HiddenChannels = hiddenChannels > 0 ? hiddenChannels : ((8 * channels / 3) + 31) / 32 * 32,
        NormEpsilon = 1e-5f,
        TiedEmbeddings = true,
    };

    /// <summary>Throws an <see cref="ArgumentException"/> naming the first field that is out of range.</summary>
    public void Validate()
    {
        static void Positive(int value, string field)
        {
            if (value <= 0)
            {
                throw new ArgumentException($"model config: {field} must be positive, got {value}");
            }
        }

        Positive(VocabSize, nameof(VocabSize));
        Positive(MaxSequenceLength, nameof(MaxSequenceLength));
        Positive(Layers, nameof(Layers));
        Positive(Channels, nameof(Channels));
        Positive(Heads, nameof(Heads));
        Positive(KvHeadCount, nameof(KvHeads));
        Positive(HeadChannels, nameof(HeadSize));
        Positive(MlpChannels, nameof(HiddenChannels));
        if (Heads % KvHeadCount != 0)
        {
            throw new ArgumentException($"model config: Heads ({Heads}) must be a multiple of KvHeads ({KvHeadCount})");
        }

        if (HeadSize == 0 && Channels % Heads != 0)
        {
            throw new ArgumentException($"model config: Channels ({Channels}) must be divisible by Heads ({Heads})");
        }

        if (Architecture == Architecture.Llama && HeadChannels % 2 != 0)
        {
            throw new ArgumentException($"model config: RoPE needs an even head size, got {HeadChannels}");
        }

        if (Architecture == Architecture.Gpt2 && KvHeadCount != Heads)
        {
            throw new ArgumentException("model config: GPT-2 has no grouped-query attention (KvHeads must equal Heads)");
        }

        if (!Enum.IsDefined(Head))
        {
            throw new ArgumentException($"model config: Head must be LanguageModel or Scalar, got {(int)Head}");
        }

        if (!(NormEpsilon > 0f))
        {
            throw new ArgumentException($"model config: NormEpsilon must be positive, got {NormEpsilon}");
        }
    }
}
