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

    /// <summary>Largest V accepted (2^24: token ids stay exact in fp32; real vocabularies are under 300 K).</summary>
    public const int MaxVocabSize = 1 << 24;

    /// <summary>Largest L accepted (the largest public models have under 130).</summary>
    public const int MaxLayers = 1024;

    /// <summary>Largest C accepted (Llama 3.1 405B has 16 384).</summary>
    public const int MaxChannels = 1 << 16;

    /// <summary>Largest NH (and NKV) and largest HS accepted.</summary>
    public const int MaxHeads = 1024;

    /// <summary>Largest F accepted (Llama 3.1 405B has 53 248).</summary>
    public const int MaxMlpChannels = 1 << 20;

    /// <summary>Largest sequence length accepted (real contexts reach 1 M tokens).</summary>
    public const int MaxSequenceLengthLimit = 1 << 22;

    /// <summary>Largest element count of one parameter tensor (or the RoPE table): one .NET array holds at most this many.</summary>
    public const long MaxTensorElements = int.MaxValue;

    /// <summary>Throws an <see cref="ArgumentException"/> naming the first field that is out of range (see <see cref="Fault"/>).</summary>
    public void Validate()
    {
        if (Fault(name => name) is (string field, string detail))
        {
            throw new ArgumentException($"model config: {field} {detail}");
        }
    }

    /// <summary>
    /// The first field out of range, or null when every size is positive, within its limit (<see cref="MaxVocabSize"/> and
    /// the others), divisible where the math needs it and every tensor fits one array, and ε and θ are finite and
    /// positive in fp32. Only arithmetic: nothing is allocated. <paramref name="name"/> spells a property name the way
    /// the caller's source does (e.g. <c>VocabSize</c> as <c>vocab_size</c> for config.json).
    /// </summary>
    public (string Field, string Detail)? Fault(Func<string, string> name)
    {
        ArgumentNullException.ThrowIfNull(name);
        var sizes = new (string Field, int Value, int Max)[]
        {
            (nameof(VocabSize), VocabSize, MaxVocabSize), (nameof(MaxSequenceLength), MaxSequenceLength, MaxSequenceLengthLimit),
            (nameof(Layers), Layers, MaxLayers), (nameof(Channels), Channels, MaxChannels), (nameof(Heads), Heads, MaxHeads),
            (nameof(KvHeads), KvHeadCount, MaxHeads), (nameof(HiddenChannels), MlpChannels, MaxMlpChannels),
        };
        foreach (var (field, value, max) in sizes)
        {
            if (value <= 0 || value > max)
            {
                return (name(field), $"must be in [1, {max}], got {value}");
            }
        }

        if (KvHeads < 0 || HiddenChannels < 0)
        {
            return KvHeads < 0
                ? (name(nameof(KvHeads)), $"must be positive (or 0 for NH), got {KvHeads}")
                : (name(nameof(HiddenChannels)), $"must be positive (or 0 for the default), got {HiddenChannels}");
        }

        if (HeadSize < 0 || HeadSize > MaxHeads)
        {
            return (name(nameof(HeadSize)), $"must be in [1, {MaxHeads}] (or 0 for C / NH), got {HeadSize}");
        }

        if (Heads % KvHeadCount != 0)
        {
            return (name(nameof(KvHeads)), $"{KvHeadCount} must divide {name(nameof(Heads))} ({Heads})");
        }

        if (HeadSize == 0 && Channels % Heads != 0)
        {
            return (name(nameof(Heads)), $"{Heads} must divide {name(nameof(Channels))} ({Channels})");
        }

        if (HeadChannels is <= 0 or > MaxHeads)
        {
            return (name(nameof(HeadSize)), $"the head size must be in [1, {MaxHeads}], got {HeadChannels}");
        }

        return ArchitectureFault(name) ?? TensorFault(name) ?? NumberFault(name);
    }

    private (string Field, string Detail)? ArchitectureFault(Func<string, string> name)
    {
        if (Architecture == Architecture.Llama && HeadChannels % 2 != 0)
        {
            return (name(nameof(HeadSize)), $"RoPE needs an even head size, got {HeadChannels}");
        }

        if (Architecture == Architecture.Gpt2 && KvHeadCount != Heads)
        {
            return (name(nameof(KvHeads)), "GPT-2 has no grouped-query attention (KvHeads must equal Heads)");
        }

        if (!Enum.IsDefined(Architecture))
        {
            return (nameof(Architecture), $"must be Gpt2 or Llama, got {(int)Architecture}");
        }

        return Enum.IsDefined(Head) ? null : (nameof(Head), $"must be LanguageModel or Scalar, got {(int)Head}");
    }

    // The largest tensor of each kind, in long so that nothing overflows before it is compared.
    private (string Field, string Detail)? TensorFault(Func<string, string> name)
    {
        long qkvRows = (long)(Heads + (2 * KvHeadCount)) * HeadChannels;
        var tensors = new (string Field, string Tensor, long Rows, long Columns)[]
        {
            (nameof(VocabSize), "the token embedding [V, C]", VocabSize, Channels),
            (nameof(MaxSequenceLength), Architecture == Architecture.Gpt2 ? "the position embedding [T, C]" : "the RoPE table [T, HS]",
                MaxSequenceLength, Architecture == Architecture.Gpt2 ? Channels : HeadChannels),
            (nameof(Heads), "the q/k/v projection [(NH + 2·NKV)·HS, C]", qkvRows, Channels),
            (nameof(Heads), "the output projection [C, NH·HS]", Channels, (long)Heads * HeadChannels),
            (nameof(HiddenChannels), "the MLP up projection", Architecture == Architecture.Gpt2 ? MlpChannels : 2L * MlpChannels, Channels),
        };
        foreach (var (field, tensor, rows, columns) in tensors)
        {
            if (rows * columns > MaxTensorElements)
            {
                return (name(field), $"makes {tensor} {rows:N0} × {columns:N0} = {rows * columns:N0} values, over the limit of {MaxTensorElements:N0} per tensor");
            }
        }

        return null;
    }

    private (string Field, string Detail)? NumberFault(Func<string, string> name)
    {
        if (!(NormEpsilon > 0f) || !float.IsFinite(NormEpsilon))
        {
            return (name(nameof(NormEpsilon)), $"must be a positive number finite in fp32, got {NormEpsilon}");
        }

        bool ropeUsed = Architecture == Architecture.Llama;
        return ropeUsed && (!(RopeTheta > 0) || !float.IsFinite((float)RopeTheta))
            ? (name(nameof(RopeTheta)), $"must be a positive number finite in fp32, got {RopeTheta}")
            : null;
    }
}
