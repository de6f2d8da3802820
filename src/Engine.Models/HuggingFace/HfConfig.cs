using System.Globalization;
using System.Text;
using System.Text.Json;
using Engine.Core;
using Engine.Core.IO;

namespace Engine.Models.HuggingFace;

/// <summary>
/// A Hugging Face <c>config.json</c> as Engine sees it: the architecture plus the fields a checkpoint must keep so that
/// <c>transformers</c> loads it back the same way (model type, stored dtype, special token ids).
/// </summary>
/// <param name="Model">The architecture and sizes.</param>
/// <param name="ModelType"><c>gpt2</c>, <c>llama</c>, <c>qwen2</c> or <c>mistral</c>.</param>
/// <param name="TorchDtype">The <c>torch_dtype</c> field (<c>float32</c>, <c>bfloat16</c>, <c>float16</c>), if given.</param>
/// <param name="BosTokenId">The <c>bos_token_id</c> field, if given.</param>
/// <param name="EosTokenIds">The <c>eos_token_id</c> field (one id or a list, as Llama 3 has), empty if absent.</param>
public sealed record HfModelConfig(TransformerConfig Model, string ModelType, string? TorchDtype, int? BosTokenId, IReadOnlyList<int> EosTokenIds)
{
    /// <summary>The config of a model with no special-token ids and the model type its architecture implies.</summary>
    public static HfModelConfig For(TransformerConfig model, string? torchDtype = "float32")
    {
        ArgumentNullException.ThrowIfNull(model);
        return new HfModelConfig(model, HfConfig.DefaultModelType(model), torchDtype, null, []);
    }
}

/// <summary>
/// Reads and writes a Hugging Face <c>config.json</c> (model types gpt2, llama, qwen2, mistral) to and from a
/// <see cref="TransformerConfig"/>.
/// </summary>
public static class HfConfig
{
    /// <summary>Largest config.json accepted, in bytes: real ones are a few KiB, so anything near this is not a config.</summary>
    public const int MaxFileBytes = 4 << 20;

    /// <summary>Parses the JSON text; <paramref name="source"/> names the file in error messages.</summary>
    /// <exception cref="InputException">The JSON is malformed, a field is missing, mistyped or out of range, or the model type or a feature it uses is not supported.</exception>
    public static TransformerConfig Parse(string json, string source = "config.json") => Read(json, source).Model;

    /// <summary>Reads a config.json file (size-checked before it is read).</summary>
    public static HfModelConfig ReadFile(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        return Read(InputFiles.ReadAllText(path, MaxFileBytes, "the model config"), path);
    }

    /// <summary>Parses the JSON text into the architecture plus the fields a saved checkpoint keeps.</summary>
    /// <exception cref="InputException">The JSON is malformed, a field is missing, mistyped or out of range, or the model type or a feature it uses is not supported.</exception>
    public static HfModelConfig Read(string json, string source = "config.json")
    {
        ArgumentNullException.ThrowIfNull(json);
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(json, new JsonDocumentOptions { MaxDepth = 64 });
        }
        catch (JsonException e)
        {
            throw new InputException(source, e.LineNumber + 1, null, $"not valid JSON: {e.Message}", e);
        }

        using (doc)
        {
            var root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
            {
                throw new InputException(source, null, null, "expected a JSON object");
            }

            string type = String(root, "model_type", source);
            TransformerConfig config = type switch
            {
                "gpt2" => Gpt2(root, source),
                "llama" or "mistral" or "qwen2" => Llama(root, type, source),
                _ => throw new InputException(source, null, "model_type", $"'{type}' is not supported (gpt2, llama, qwen2, mistral are)"),
            };
            config = config with { Head = ReadHead(root, source) };
            if (config.Fault(property => JsonField(property, config.Architecture)) is (string field, string detail))
            {
                throw new InputException(source, null, field, detail);
            }

            int? bos = TokenId(OptionalInt(root, "bos_token_id", source), "bos_token_id", config.VocabSize, source);
            int[] eos = EosIds(root, source);
            foreach (int id in eos)
            {
                TokenId(id, "eos_token_id", config.VocabSize, source);
            }

            return new HfModelConfig(config, type, OptionalString(root, "torch_dtype", source), bos, eos);
        }
    }

    /// <summary>
    /// Writes a config.json that <c>transformers</c> loads as the same model (and that <see cref="Read"/> reads back to
    /// an equal <see cref="TransformerConfig"/>).
    /// </summary>
    /// <exception cref="ArgumentException">The model type cannot express the architecture (e.g. llama with q/k/v bias).</exception>
    public static string ToJson(HfModelConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        var m = config.Model;
        m.Validate();
        string type = config.ModelType;
        bool gpt2 = m.Architecture == Architecture.Gpt2;
        if (gpt2 != (type == "gpt2") || (type is not ("gpt2" or "llama" or "qwen2" or "mistral")))
        {
            throw new ArgumentException($"model_type '{type}' cannot describe a {m.Architecture} model");
        }

        if (!gpt2 && m.AttentionBias != (type == "qwen2"))
        {
            throw new ArgumentException($"model_type '{type}' {(m.AttentionBias ? "has no" : "always has a")} q/k/v bias; the model {(m.AttentionBias ? "has one" : "has none")}");
        }

        using var stream = new MemoryStream();
        using (var w = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = true }))
        {
            w.WriteStartObject();
            w.WriteStartArray("architectures");
            w.WriteStringValue(ArchitectureName(type, m.Head));
            w.WriteEndArray();
            w.WriteString("model_type", type);
            if (m.Head == HeadKind.Scalar)
            {
                // What save_pretrained writes for num_labels = 1; PretrainedConfig derives num_labels from id2label.
                w.WriteStartObject("id2label");
                w.WriteString("0", "LABEL_0");
                w.WriteEndObject();
                w.WriteStartObject("label2id");
                w.WriteNumber("LABEL_0", 0);
                w.WriteEndObject();
            }

            w.WriteNumber("vocab_size", m.VocabSize);
            if (gpt2)
            {
                w.WriteNumber("n_positions", m.MaxSequenceLength);
                w.WriteNumber("n_ctx", m.MaxSequenceLength);
                w.WriteNumber("n_embd", m.Channels);
                w.WriteNumber("n_layer", m.Layers);
                w.WriteNumber("n_head", m.Heads);
                w.WriteNumber("n_inner", m.MlpChannels);
                w.WriteString("activation_function", "gelu_new");
                WriteFloat(w, "layer_norm_epsilon", m.NormEpsilon);
            }
            else
            {
                w.WriteNumber("hidden_size", m.Channels);
                w.WriteNumber("intermediate_size", m.MlpChannels);
                w.WriteNumber("num_hidden_layers", m.Layers);
                w.WriteNumber("num_attention_heads", m.Heads);
                w.WriteNumber("num_key_value_heads", m.KvHeadCount);
                if (m.HeadSize > 0)
                {
                    w.WriteNumber("head_dim", m.HeadSize);
                }

                w.WriteNumber("max_position_embeddings", m.MaxSequenceLength);
                WriteFloat(w, "rms_norm_eps", m.NormEpsilon);
                w.WriteNumber("rope_theta", m.RopeTheta);
                w.WriteString("hidden_act", "silu");
                if (type == "llama")
                {
                    w.WriteBoolean("attention_bias", false);
                    w.WriteBoolean("mlp_bias", false);
                }

                if (type == "mistral")
                {
                    // MistralConfig defaults to a 4096-token sliding window; Engine attends to the whole sequence.
                    w.WriteNull("sliding_window");
                }
            }

            w.WriteBoolean("tie_word_embeddings", m.TiedEmbeddings);
            if (config.BosTokenId is int bos)
            {
                w.WriteNumber("bos_token_id", bos);
            }

            if (config.EosTokenIds.Count == 1)
            {
                w.WriteNumber("eos_token_id", config.EosTokenIds[0]);
            }
            else if (config.EosTokenIds.Count > 1)
            {
                w.WriteStartArray("eos_token_id");
                foreach (int id in config.EosTokenIds)
                {
                    w.WriteNumberValue(id);
                }

                w.WriteEndArray();
            }

            if (config.TorchDtype is not null)
            {
                w.WriteString("torch_dtype", config.TorchDtype);
            }

            w.WriteEndObject();
        }

        return Encoding.UTF8.GetString(stream.ToArray()) + "\n";
    }

    /// <summary>Writes the config.json of a model with no special-token ids (see <see cref="ToJson(HfModelConfig)"/>).</summary>
    public static string ToJson(TransformerConfig config, string? torchDtype = "float32") => ToJson(HfModelConfig.For(config, torchDtype));

    /// <summary>The config.json field that holds a <see cref="TransformerConfig"/> property for an architecture (e.g. Layers is n_layer for GPT-2).</summary>
    public static string JsonField(string property, Architecture architecture)
    {
        bool gpt2 = architecture == Architecture.Gpt2;
        return property switch
        {
            nameof(TransformerConfig.VocabSize) => "vocab_size",
            nameof(TransformerConfig.MaxSequenceLength) => gpt2 ? "n_positions" : "max_position_embeddings",
            nameof(TransformerConfig.Layers) => gpt2 ? "n_layer" : "num_hidden_layers",
            nameof(TransformerConfig.Channels) => gpt2 ? "n_embd" : "hidden_size",
            nameof(TransformerConfig.Heads) => gpt2 ? "n_head" : "num_attention_heads",
            nameof(TransformerConfig.KvHeads) => gpt2 ? "n_head" : "num_key_value_heads",
            nameof(TransformerConfig.HeadSize) => gpt2 ? "n_head" : "head_dim",
            nameof(TransformerConfig.HiddenChannels) => gpt2 ? "n_inner" : "intermediate_size",
            nameof(TransformerConfig.NormEpsilon) => gpt2 ? "layer_norm_epsilon" : "rms_norm_eps",
            nameof(TransformerConfig.RopeTheta) => "rope_theta",
            _ => property,
        };
    }

    /// <summary>The model type an architecture is saved as: gpt2, qwen2 (q/k/v bias) or llama.</summary>
    public static string DefaultModelType(TransformerConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        return config.Architecture == Architecture.Gpt2 ? "gpt2" : config.AttentionBias ? "qwen2" : "llama";
    }

    /// <summary>
    /// The <c>architectures</c> entry transformers instantiates for a model type and head: e.g. <c>GPT2LMHeadModel</c>,
    /// <c>Qwen2ForCausalLM</c>, or <c>LlamaForSequenceClassification</c> for a scalar (reward/value) head.
    /// </summary>
    public static string ArchitectureName(string modelType, HeadKind head)
    {
        string family = modelType switch
        {
            "gpt2" => "GPT2",
            "qwen2" => "Qwen2",
            "mistral" => "Mistral",
            "llama" => "Llama",
            _ => throw new ArgumentException($"model_type '{modelType}' is not supported (gpt2, llama, qwen2, mistral are)", nameof(modelType)),
        };
        return head == HeadKind.Scalar ? family + "ForSequenceClassification" : modelType == "gpt2" ? "GPT2LMHeadModel" : family + "ForCausalLM";
    }

    // A *ForSequenceClassification architecture means the scalar head, which Engine supports with one label only
    // (a reward or value model); num_labels comes from id2label when present, as PretrainedConfig reads it.
    private static HeadKind ReadHead(JsonElement root, string source)
    {
        if (!root.TryGetProperty("architectures", out var list) || list.ValueKind == JsonValueKind.Null)
        {
            return HeadKind.LanguageModel;
        }

        if (list.ValueKind != JsonValueKind.Array || list.EnumerateArray().Any(a => a.ValueKind != JsonValueKind.String))
        {
            throw new InputException(source, null, "architectures", $"must be a list of strings, got {Clip(list.GetRawText())}");
        }

        var names = list.EnumerateArray().Select(a => a.GetString()!).ToList();
        bool classifier = names.Any(n => n.EndsWith("ForSequenceClassification", StringComparison.Ordinal));
        if (!classifier)
        {
            return HeadKind.LanguageModel;
        }

        if (names.Count > 1)
        {
            throw new InputException(source, null, "architectures", $"lists {Clip(string.Join(", ", names))}; one head per checkpoint is supported");
        }

        int labels = root.TryGetProperty("id2label", out var id2label) && id2label.ValueKind == JsonValueKind.Object
            ? id2label.EnumerateObject().Count()
            : OptionalInt(root, "num_labels", source) ?? 2;
        if (labels != 1)
        {
            throw new InputException(
                source, null, "id2label", $"{Clip(names[0])} with {labels} labels is a classifier; only one label (a reward or value head) is supported");
        }

        return HeadKind.Scalar;
    }

    // A float written through double would print 9.999999747378752E-06 for 1e-5f; the float's own shortest form
    // reads back to the same float and is what a person wrote.
    private static void WriteFloat(Utf8JsonWriter w, string name, float value) =>
        w.WriteNumber(name, double.Parse(value.ToString("R", CultureInfo.InvariantCulture), CultureInfo.InvariantCulture));

    private static int[] EosIds(JsonElement root, string source)
    {
        if (!root.TryGetProperty("eos_token_id", out var v) || v.ValueKind == JsonValueKind.Null)
        {
            return [];
        }

        if (v.ValueKind == JsonValueKind.Array)
        {
            var ids = new List<int>();
            foreach (var item in v.EnumerateArray())
            {
                ids.Add(item.ValueKind == JsonValueKind.Number && item.TryGetInt32(out int id)
                    ? id
                    : throw new InputException(source, null, "eos_token_id", $"must be an integer or a list of integers, got {Clip(v.GetRawText())}"));
            }

            return [.. ids];
        }

        return [OptionalInt(root, "eos_token_id", source)!.Value];
    }

    private static TransformerConfig Gpt2(JsonElement root, string source)
    {
        string activation = OptionalString(root, "activation_function", source) ?? "gelu_new";
        if (activation is not ("gelu_new" or "gelu_pytorch_tanh"))
        {
            throw new InputException(source, null, "activation_function", $"'{Clip(activation)}' is not supported; only the tanh GELU (gelu_new) is");
        }

        int c = Int(root, "n_embd", source);
        return TransformerConfig.Gpt2(Int(root, "vocab_size", source), Int(root, "n_positions", source), Int(root, "n_layer", source), c, Int(root, "n_head", source)) with
        {
            HiddenChannels = OptionalSize(root, "n_inner", source) ?? 4 * c,
            NormEpsilon = (float)(Fp32(root, "layer_norm_epsilon", source) ?? 1e-5),
            TiedEmbeddings = OptionalBool(root, "tie_word_embeddings", source) ?? true,
        };
    }

    private static TransformerConfig Llama(JsonElement root, string type, string source)
    {
        string activation = OptionalString(root, "hidden_act", source) ?? "silu";
        if (activation != "silu")
        {
            throw new InputException(source, null, "hidden_act", $"'{Clip(activation)}' is not supported; only silu (SwiGLU) is");
        }

        if (root.TryGetProperty("rope_scaling", out var scaling) && scaling.ValueKind != JsonValueKind.Null)
        {
            throw new InputException(source, null, "rope_scaling", "is set; scaled RoPE is not supported yet");
        }

        if (OptionalBool(root, "mlp_bias", source) ?? false)
        {
            throw new InputException(source, null, "mlp_bias", $"is true; MLP biases are not supported for {type}");
        }

        bool bias = type == "qwen2";
        if (type != "qwen2" && (OptionalBool(root, "attention_bias", source) ?? false))
        {
            throw new InputException(source, null, "attention_bias", $"is true for {type}, which adds an o_proj bias; not supported");
        }

        int heads = Int(root, "num_attention_heads", source);
        return new TransformerConfig
        {
            Architecture = Architecture.Llama,
            VocabSize = Int(root, "vocab_size", source),
            MaxSequenceLength = Int(root, "max_position_embeddings", source),
            Layers = Int(root, "num_hidden_layers", source),
            Channels = Int(root, "hidden_size", source),
            Heads = heads,
            KvHeads = OptionalSize(root, "num_key_value_heads", source) ?? heads,
            HeadSize = OptionalSize(root, "head_dim", source) ?? 0,
            HiddenChannels = OptionalSize(root, "intermediate_size", source) ?? throw new InputException(source, null, "intermediate_size", "is missing"),
            NormEpsilon = (float)(Fp32(root, "rms_norm_eps", source) ?? 1e-6),
            RopeTheta = Fp32(root, "rope_theta", source) ?? 10000.0,
            AttentionBias = bias,
            TiedEmbeddings = OptionalBool(root, "tie_word_embeddings", source) ?? false,
        };
    }

    private static JsonElement Field(JsonElement root, string field, string source) =>
        root.TryGetProperty(field, out var value) && value.ValueKind != JsonValueKind.Null
            ? value
            : throw new InputException(source, null, field, "is missing");

    private static int Int(JsonElement root, string field, string source) =>
        OptionalInt(root, field, source) ?? throw new InputException(source, null, field, "is missing");

    private static string String(JsonElement root, string field, string source)
    {
        var value = Field(root, field, source);
        return value.ValueKind == JsonValueKind.String ? value.GetString()! : throw new InputException(source, null, field, $"must be a string, got {Clip(value.GetRawText())}");
    }

    private static string? OptionalString(JsonElement root, string field, string source) =>
        root.TryGetProperty(field, out var v) && v.ValueKind != JsonValueKind.Null ? String(root, field, source) : null;

    private static int? OptionalInt(JsonElement root, string field, string source)
    {
        if (!root.TryGetProperty(field, out var v) || v.ValueKind == JsonValueKind.Null)
        {
            return null;
        }

        return v.ValueKind == JsonValueKind.Number && v.TryGetInt32(out int i)
            ? i
            : throw new InputException(source, null, field, $"must be an integer, got {Clip(v.GetRawText())}");
    }

    // A size whose absence means a default (n_inner, num_key_value_heads, head_dim): when given, it must be positive,
    // not silently replaced by that default.
    private static int? OptionalSize(JsonElement root, string field, string source) =>
        OptionalInt(root, field, source) is int value && value <= 0
            ? throw new InputException(source, null, field, $"must be positive (or absent for the default), got {value}")
            : OptionalInt(root, field, source);

    private static int? TokenId(int? id, string field, int vocabSize, string source) =>
        id is not int i || (i >= 0 && i < vocabSize)
            ? id
            : throw new InputException(source, null, field, $"token id {id} is outside the vocabulary [0, {vocabSize}) of field 'vocab_size'");

    // A norm ε or RoPE θ: finite and positive as the fp32 the kernels use (1e300 and 1e-50 are neither).
    private static double? Fp32(JsonElement root, string field, string source)
    {
        if (!root.TryGetProperty(field, out var v) || v.ValueKind == JsonValueKind.Null)
        {
            return null;
        }

        double value = v.ValueKind == JsonValueKind.Number && v.TryGetDouble(out double d) ? d : double.NaN;
        return (float)value > 0f && float.IsFinite((float)value)
            ? value
            : throw new InputException(source, null, field, $"must be a positive number finite in fp32 (at most {float.MaxValue:G9}, at least {float.Epsilon:G9}), got {Clip(v.GetRawText())}");
    }

    private static string Clip(string text) => text.Length <= 80 ? text : string.Concat(text.AsSpan(0, 77), "...");

    private static bool? OptionalBool(JsonElement root, string field, string source)
    {
        if (!root.TryGetProperty(field, out var v) || v.ValueKind == JsonValueKind.Null)
        {
            return null;
        }

        return v.ValueKind is JsonValueKind.True or JsonValueKind.False
            ? v.GetBoolean()
            : throw new InputException(source, null, field, $"must be true or false, got {Clip(v.GetRawText())}");
    }
}
