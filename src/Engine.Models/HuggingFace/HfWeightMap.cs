using System.Globalization;
using Engine.Core.Tensors;

namespace Engine.Models.HuggingFace;

/// <summary>
/// One Hugging Face tensor and where it lives in Engine's parameters: rows [RowStart, RowStart + rows) of
/// <see cref="EngineName"/>, stored transposed when HF keeps it as [in, out] (GPT-2's Conv1D).
/// </summary>
/// <param name="HfName">The name in a Hugging Face state dict, e.g. <c>model.layers.0.self_attn.k_proj.weight</c>.</param>
/// <param name="EngineName">Engine's parameter, e.g. <c>layers.0.attn.qkv.weight</c>.</param>
/// <param name="HfShape">The shape Hugging Face stores.</param>
/// <param name="RowStart">First row of the Engine parameter this tensor fills.</param>
/// <param name="Transposed">True when HF stores [in, out] and Engine [out, in].</param>
public sealed record HfTensor(string HfName, string EngineName, Shape HfShape, long RowStart, bool Transposed)
{
    /// <summary>Number of Engine rows covered.</summary>
    public long EngineRows => Transposed ? HfShape[1] : HfShape[0];
}

/// <summary>
/// The name and layout mapping between Hugging Face checkpoints (<c>gpt2</c>, <c>llama</c>, <c>qwen2</c>,
/// <c>mistral</c>) and Engine's fused parameters, written once and used in both directions.
/// </summary>
public static class HfWeightMap
{
    /// <summary>The Hugging Face name of an untied LM head.</summary>
    public const string LmHead = "lm_head.weight";

    /// <summary>The Hugging Face name of a sequence-classification (reward/value) head, [num_labels = 1, C].</summary>
    public const string ScoreWeight = "score.weight";

    /// <summary>
    /// Every Hugging Face tensor a model of <paramref name="config"/> has (tied heads have no <c>lm_head.weight</c>; a
    /// scalar head has <c>score.weight</c> and no LM head).
    /// </summary>
    public static IReadOnlyList<HfTensor> For(TransformerConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        return config.Architecture == Architecture.Gpt2 ? Gpt2(config) : Llama(config);
    }

    /// <summary>Copies an HF tensor's data into the host copy <paramref name="engine"/> of its Engine parameter (shape [rows, cols]).</summary>
    public static void Import(HfTensor map, ReadOnlySpan<float> hf, Span<float> engine, Shape engineShape)
    {
        ArgumentNullException.ThrowIfNull(map);
        long cols = engineShape.Rank == 1 ? 1 : engineShape[1];
        CheckSizes(map, hf.Length, engine.Length, cols);
        if (!map.Transposed)
        {
            hf.CopyTo(engine[(int)(map.RowStart * cols)..]);
            return;
        }

        // HF [in, out] → Engine rows [out, in].
        int inDim = (int)map.HfShape[0], outDim = (int)map.HfShape[1];
        for (int i = 0; i < inDim; i++)
        {
            for (int o = 0; o < outDim; o++)
            {
                engine[(int)(((map.RowStart + o) * cols) + i)] = hf[(i * outDim) + o];
            }
        }
    }

    /// <summary>Copies the part of an Engine parameter that <paramref name="map"/> covers into HF layout.</summary>
    public static void Export(HfTensor map, ReadOnlySpan<float> engine, Shape engineShape, Span<float> hf)
    {
        ArgumentNullException.ThrowIfNull(map);
        long cols = engineShape.Rank == 1 ? 1 : engineShape[1];
        CheckSizes(map, hf.Length, engine.Length, cols);
        if (!map.Transposed)
        {
            engine.Slice((int)(map.RowStart * cols), hf.Length).CopyTo(hf);
            return;
        }

        int inDim = (int)map.HfShape[0], outDim = (int)map.HfShape[1];
        for (int i = 0; i < inDim; i++)
        {
            for (int o = 0; o < outDim; o++)
            {
                hf[(i * outDim) + o] = engine[(int)(((map.RowStart + o) * cols) + i)];
            }
        }
    }

    private static void CheckSizes(HfTensor map, int hfLength, int engineLength, long cols)
    {
        if (hfLength != map.HfShape.ElementCount)
        {
            throw new ArgumentException($"{map.HfName}: expected {map.HfShape} ({map.HfShape.ElementCount} values), got {hfLength}");
        }

        if ((map.RowStart + map.EngineRows) * cols > engineLength)
        {
            throw new ArgumentException($"{map.HfName}: does not fit Engine parameter {map.EngineName} of {engineLength} values");
        }
    }

    private static string L(string format, int layer) => string.Format(CultureInfo.InvariantCulture, format, layer);

    private static List<HfTensor> Gpt2(TransformerConfig cfg)
    {
        int c = cfg.Channels, f = cfg.MlpChannels;
        var list = new List<HfTensor>
        {
            new("transformer.wte.weight", Names.Embedding, new Shape(cfg.VocabSize, c), 0, false),
            new("transformer.wpe.weight", Names.PositionEmbedding, new Shape(cfg.MaxSequenceLength, c), 0, false),
        };
        for (int l = 0; l < cfg.Layers; l++)
        {
            string h = L("transformer.h.{0}.", l);
            list.Add(new(h + "ln_1.weight", Names.Layer(l, Names.Norm1Weight), new Shape(c), 0, false));
            list.Add(new(h + "ln_1.bias", Names.Layer(l, Names.Norm1Bias), new Shape(c), 0, false));
            list.Add(new(h + "attn.c_attn.weight", Names.Layer(l, Names.QkvWeight), new Shape(c, 3 * c), 0, true));
            list.Add(new(h + "attn.c_attn.bias", Names.Layer(l, Names.QkvBias), new Shape(3 * c), 0, false));
            list.Add(new(h + "attn.c_proj.weight", Names.Layer(l, Names.OutWeight), new Shape(c, c), 0, true));
            list.Add(new(h + "attn.c_proj.bias", Names.Layer(l, Names.OutBias), new Shape(c), 0, false));
            list.Add(new(h + "ln_2.weight", Names.Layer(l, Names.Norm2Weight), new Shape(c), 0, false));
            list.Add(new(h + "ln_2.bias", Names.Layer(l, Names.Norm2Bias), new Shape(c), 0, false));
            list.Add(new(h + "mlp.c_fc.weight", Names.Layer(l, Names.UpWeight), new Shape(c, f), 0, true));
            list.Add(new(h + "mlp.c_fc.bias", Names.Layer(l, Names.UpBias), new Shape(f), 0, false));
            list.Add(new(h + "mlp.c_proj.weight", Names.Layer(l, Names.DownWeight), new Shape(f, c), 0, true));
            list.Add(new(h + "mlp.c_proj.bias", Names.Layer(l, Names.DownBias), new Shape(c), 0, false));
        }

        list.Add(new("transformer.ln_f.weight", Names.FinalNormWeight, new Shape(c), 0, false));
        list.Add(new("transformer.ln_f.bias", Names.FinalNormBias, new Shape(c), 0, false));
        AddHead(cfg, list);
        return list;
    }

    private static List<HfTensor> Llama(TransformerConfig cfg)
    {
        int c = cfg.Channels, f = cfg.MlpChannels, q = cfg.Heads * cfg.HeadChannels, kv = cfg.KvHeadCount * cfg.HeadChannels;
        var list = new List<HfTensor> { new("model.embed_tokens.weight", Names.Embedding, new Shape(cfg.VocabSize, c), 0, false) };
        for (int l = 0; l < cfg.Layers; l++)
        {
            string h = L("model.layers.{0}.", l);
            string qkv = Names.Layer(l, Names.QkvWeight), qkvBias = Names.Layer(l, Names.QkvBias);
            list.Add(new(h + "input_layernorm.weight", Names.Layer(l, Names.Norm1Weight), new Shape(c), 0, false));
            list.Add(new(h + "self_attn.q_proj.weight", qkv, new Shape(q, c), 0, false));
            list.Add(new(h + "self_attn.k_proj.weight", qkv, new Shape(kv, c), q, false));
            list.Add(new(h + "self_attn.v_proj.weight", qkv, new Shape(kv, c), q + kv, false));
            if (cfg.AttentionBias)
            {
                list.Add(new(h + "self_attn.q_proj.bias", qkvBias, new Shape(q), 0, false));
                list.Add(new(h + "self_attn.k_proj.bias", qkvBias, new Shape(kv), q, false));
                list.Add(new(h + "self_attn.v_proj.bias", qkvBias, new Shape(kv), q + kv, false));
            }

            list.Add(new(h + "self_attn.o_proj.weight", Names.Layer(l, Names.OutWeight), new Shape(c, q), 0, false));
            list.Add(new(h + "post_attention_layernorm.weight", Names.Layer(l, Names.Norm2Weight), new Shape(c), 0, false));
            list.Add(new(h + "mlp.gate_proj.weight", Names.Layer(l, Names.UpWeight), new Shape(f, c), 0, false));
            list.Add(new(h + "mlp.up_proj.weight", Names.Layer(l, Names.UpWeight), new Shape(f, c), f, false));
            list.Add(new(h + "mlp.down_proj.weight", Names.Layer(l, Names.DownWeight), new Shape(c, f), 0, false));
        }

        list.Add(new("model.norm.weight", Names.FinalNormWeight, new Shape(c), 0, false));
        AddHead(cfg, list);
        return list;
    }

    // *ForSequenceClassification keeps its head as a top-level nn.Linear(C, num_labels, bias=False) named "score";
    // Engine's score bias has no Hugging Face tensor (it lives in reward_head.json).
    private static void AddHead(TransformerConfig cfg, List<HfTensor> list)
    {
        if (cfg.Head == HeadKind.Scalar)
        {
            list.Add(new(ScoreWeight, Names.ScoreWeight, new Shape(1, cfg.Channels), 0, false));
        }
        else if (!cfg.TiedEmbeddings)
        {
            list.Add(new(LmHead, Names.LmHead, new Shape(cfg.VocabSize, cfg.Channels), 0, false));
        }
    }
}
