using Engine.Core;
using Engine.Core.Backends;
using Engine.Models.Formats;
using Engine.Models.HuggingFace;

namespace Engine.Models.Presets;

/// <summary>
/// A named model shape: the config.json a fresh checkpoint of it gets (architecture, sizes, model type, special-token ids).
/// </summary>
/// <param name="Name">The name <c>engine init --preset</c> takes, e.g. <c>smollm2-135m</c>.</param>
/// <param name="Description">What it is and where its numbers come from, one line.</param>
/// <param name="Config">The config.json fields: the published ones of the model it copies.</param>
public sealed record ModelPreset(string Name, string Description, HfModelConfig Config)
{
    /// <summary>Parameters of the model (embedding counted once when tied).</summary>
    public long ParameterCount => Transformer.ParameterCount(Config.Model);
}

/// <summary>
/// The shapes of well-known small models, with the numbers of their published <c>config.json</c> (hidden size, layers,
/// heads, key/value heads, MLP width, RoPE θ, norm ε, tied embeddings, context, vocabulary, bos/eos ids), plus
/// <c>tiny</c> for tests and experiments. A preset gives a fresh, randomly initialised model of that shape:
/// <code>
/// using var model = ModelPresets.Create("smollm2-135m", backend, seed: 1);
/// HfCheckpoint.Save(model, "models/fresh", ModelPresets.Get("smollm2-135m").SaveOptions());
/// </code>
/// Llama 3.2's <c>rope_scaling</c> (llama3 type) is left out: Engine runs plain RoPE, which is the same up to the
/// original 8192-token context.
/// </summary>
public static class ModelPresets
{
    /// <summary>Every preset, smallest first within each family.</summary>
    public static IReadOnlyList<ModelPreset> All { get; } =
    [
        new("tiny", "2-layer Llama-style model, C=64, V=512: seconds to train on a CPU (tests, experiments)",
            Llama(vocab: 512, positions: 256, layers: 2, channels: 64, heads: 4, kvHeads: 2, mlp: 128, theta: 10000, eps: 1e-5f, tied: true, type: "llama", bos: null, eos: [])),
        new("gpt2", "GPT-2 124M (openai-community/gpt2)",
            Gpt2(channels: 768, layers: 12, heads: 12)),
        new("gpt2-medium", "GPT-2 355M (openai-community/gpt2-medium)",
            Gpt2(channels: 1024, layers: 24, heads: 16)),
        new("smollm2-135m", "SmolLM2-135M (HuggingFaceTB/SmolLM2-135M)",
            Llama(vocab: 49152, positions: 8192, layers: 30, channels: 576, heads: 9, kvHeads: 3, mlp: 1536, theta: 100000, eps: 1e-5f, tied: true, type: "llama", bos: 0, eos: [0])),
        new("smollm2-360m", "SmolLM2-360M (HuggingFaceTB/SmolLM2-360M)",
            Llama(vocab: 49152, positions: 8192, layers: 32, channels: 960, heads: 15, kvHeads: 5, mlp: 2560, theta: 100000, eps: 1e-5f, tied: true, type: "llama", bos: 0, eos: [0])),
        new("qwen2.5-0.5b", "Qwen2.5-0.5B (Qwen/Qwen2.5-0.5B)",
            Llama(vocab: 151936, positions: 32768, layers: 24, channels: 896, heads: 14, kvHeads: 2, mlp: 4864, theta: 1000000, eps: 1e-6f, tied: true, type: "qwen2", bos: 151643, eos: [151643])),
        new("llama-3.2-1b", "Llama-3.2-1B (meta-llama/Llama-3.2-1B; without its rope_scaling)",
            Llama(vocab: 128256, positions: 131072, layers: 16, channels: 2048, heads: 32, kvHeads: 8, mlp: 8192, theta: 500000, eps: 1e-5f, tied: true, type: "llama", bos: 128000, eos: [128001])),
    ];

    /// <summary>The preset called <paramref name="name"/> (case-insensitive).</summary>
    /// <exception cref="InputException">No preset has that name; the message lists them.</exception>
    public static ModelPreset Get(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        return All.FirstOrDefault(p => string.Equals(p.Name, name.Trim(), StringComparison.OrdinalIgnoreCase))
            ?? throw new InputException($"unknown model preset '{name}' (known: {string.Join(", ", All.Select(p => p.Name))})");
    }

    /// <summary>A fresh model of the preset's shape, weights initialised from <paramref name="seed"/> (<see cref="Transformer.InitializeWeights"/>).</summary>
    public static Transformer Create(string name, Backend backend, ulong seed = 0, bool trainable = true) =>
        Create(Get(name).Config.Model, backend, seed, trainable);

    /// <summary>A fresh model of <paramref name="config"/>, weights initialised from <paramref name="seed"/>.</summary>
    public static Transformer Create(TransformerConfig config, Backend backend, ulong seed = 0, bool trainable = true)
    {
        var model = new Transformer(config, backend, trainable);
        try
        {
            model.InitializeWeights(seed);
            return model;
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    /// <summary>Save options that write the preset's config.json fields (model type, bos/eos ids) and copy tokenizer files from <paramref name="tokenizerDirectory"/>.</summary>
    public static HfSaveOptions SaveOptions(this ModelPreset preset, string? tokenizerDirectory = null)
    {
        ArgumentNullException.ThrowIfNull(preset);
        return new HfSaveOptions { Config = preset.Config, TokenizerDirectory = tokenizerDirectory };
    }

    /// <summary>
    /// Writes a fresh checkpoint of <paramref name="config"/> into <paramref name="directory"/>: config.json,
    /// model.safetensors (weights from <paramref name="seed"/>) and the tokenizer files of
    /// <paramref name="tokenizerDirectory"/>, if given, stored as <paramref name="dtype"/> (F32 when null). The directory
    /// must be new or empty.
    /// </summary>
    /// <exception cref="InputException">The directory exists and is not empty.</exception>
    public static void Init(
        string directory, HfModelConfig config, Backend backend, ulong seed = 0, string? tokenizerDirectory = null, SafetensorsDType? dtype = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(directory);
        ArgumentNullException.ThrowIfNull(config);
        if (Directory.Exists(directory) && Directory.EnumerateFileSystemEntries(directory).Any())
        {
            throw new InputException($"{directory}: not empty; a new checkpoint needs a new or empty directory");
        }

        if (File.Exists(directory))
        {
            throw new InputException($"{directory}: is a file; a checkpoint is a directory");
        }

        using var model = Create(config.Model, backend, seed, trainable: false);
        HfCheckpoint.Save(model, directory, new HfSaveOptions { Config = config, TokenizerDirectory = tokenizerDirectory, DType = dtype });
    }

    private static HfModelConfig Gpt2(int channels, int layers, int heads) =>
        new(TransformerConfig.Gpt2(vocabSize: 50257, maxSequenceLength: 1024, layers, channels, heads) with { HiddenChannels = 4 * channels }, "gpt2", "float32", 50256, [50256]);

    private static HfModelConfig Llama(
        int vocab, int positions, int layers, int channels, int heads, int kvHeads, int mlp, double theta, float eps, bool tied, string type, int? bos, int[] eos) =>
        new(
            TransformerConfig.Llama(vocab, positions, layers, channels, heads, kvHeads, mlp) with
            {
                RopeTheta = theta,
                NormEpsilon = eps,
                TiedEmbeddings = tied,
                AttentionBias = type == "qwen2",
            },
            type,
            "float32",
            bos,
            eos);
}
