using System.Text.Json;

namespace Engine.Models.HuggingFace;

/// <summary>Reads a Hugging Face <c>config.json</c> (model types gpt2, llama, qwen2, mistral) into a <see cref="TransformerConfig"/>.</summary>
public static class HfConfig
{
    /// <summary>Parses the JSON text; <paramref name="source"/> names the file in error messages.</summary>
    public static TransformerConfig Parse(string json, string source = "config.json")
    {
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(json);
        }
        catch (JsonException e)
        {
            throw new FormatException($"{source}: not valid JSON (line {e.LineNumber + 1}): {e.Message}", e);
        }

        using (doc)
        {
            var root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
            {
                throw new FormatException($"{source}: expected a JSON object");
            }

            string type = String(root, "model_type", source);
            TransformerConfig config = type switch
            {
                "gpt2" => Gpt2(root, source),
                "llama" or "mistral" or "qwen2" => Llama(root, type, source),
                _ => throw new NotSupportedException($"{source}: model_type '{type}' is not supported (gpt2, llama, qwen2, mistral are)"),
            };
            try
            {
                config.Validate();
            }
            catch (ArgumentException e)
            {
                throw new FormatException($"{source}: {e.Message}", e);
            }

            return config;
        }
    }

    private static TransformerConfig Gpt2(JsonElement root, string source)
    {
        string activation = OptionalString(root, "activation_function", source) ?? "gelu_new";
        if (activation is not ("gelu_new" or "gelu_pytorch_tanh"))
        {
            throw new NotSupportedException($"{source}: field 'activation_function' is '{activation}'; only the tanh GELU (gelu_new) is supported");
        }

        int c = Int(root, "n_embd", source);
        return TransformerConfig.Gpt2(Int(root, "vocab_size", source), Int(root, "n_positions", source), Int(root, "n_layer", source), c, Int(root, "n_head", source)) with
        {
            HiddenChannels = OptionalInt(root, "n_inner", source) ?? 4 * c,
            NormEpsilon = (float)(OptionalDouble(root, "layer_norm_epsilon", source) ?? 1e-5),
            TiedEmbeddings = OptionalBool(root, "tie_word_embeddings", source) ?? true,
        };
    }

    private static TransformerConfig Llama(JsonElement root, string type, string source)
    {
        string activation = OptionalString(root, "hidden_act", source) ?? "silu";
        if (activation != "silu")
        {
            throw new NotSupportedException($"{source}: field 'hidden_act' is '{activation}'; only silu (SwiGLU) is supported");
        }

        if (root.TryGetProperty("rope_scaling", out var scaling) && scaling.ValueKind != JsonValueKind.Null)
        {
            throw new NotSupportedException($"{source}: field 'rope_scaling' is set; scaled RoPE is not supported yet");
        }

        bool bias = type == "qwen2";
        if (type != "qwen2" && (OptionalBool(root, "attention_bias", source) ?? false))
        {
            throw new NotSupportedException($"{source}: field 'attention_bias' is true for {type}, which adds an o_proj bias; not supported");
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
            KvHeads = OptionalInt(root, "num_key_value_heads", source) ?? heads,
            HeadSize = OptionalInt(root, "head_dim", source) ?? 0,
            HiddenChannels = Int(root, "intermediate_size", source),
            NormEpsilon = (float)(OptionalDouble(root, "rms_norm_eps", source) ?? 1e-6),
            RopeTheta = OptionalDouble(root, "rope_theta", source) ?? 10000.0,
            AttentionBias = bias,
            TiedEmbeddings = OptionalBool(root, "tie_word_embeddings", source) ?? false,
        };
    }

    private static JsonElement Field(JsonElement root, string field, string source) =>
        root.TryGetProperty(field, out var value) && value.ValueKind != JsonValueKind.Null
            ? value
            : throw new FormatException($"{source}: field '{field}' is missing");

    private static int Int(JsonElement root, string field, string source) =>
        OptionalInt(root, field, source) ?? throw new FormatException($"{source}: field '{field}' is missing");

    private static string String(JsonElement root, string field, string source)
    {
        var value = Field(root, field, source);
        return value.ValueKind == JsonValueKind.String ? value.GetString()! : throw new FormatException($"{source}: field '{field}' must be a string");
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
            : throw new FormatException($"{source}: field '{field}' must be an integer, got {v.GetRawText()}");
    }

    private static double? OptionalDouble(JsonElement root, string field, string source)
    {
        if (!root.TryGetProperty(field, out var v) || v.ValueKind == JsonValueKind.Null)
        {
            return null;
        }

        return v.ValueKind == JsonValueKind.Number ? v.GetDouble() : throw new FormatException($"{source}: field '{field}' must be a number, got {v.GetRawText()}");
    }

    private static bool? OptionalBool(JsonElement root, string field, string source)
    {
        if (!root.TryGetProperty(field, out var v) || v.ValueKind == JsonValueKind.Null)
        {
            return null;
        }

        return v.ValueKind is JsonValueKind.True or JsonValueKind.False
            ? v.GetBoolean()
            : throw new FormatException($"{source}: field '{field}' must be true or false, got {v.GetRawText()}");
    }
}
