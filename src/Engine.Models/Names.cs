using System.Globalization;

namespace Engine.Models;

/// <summary>Engine's parameter names (the Hugging Face names are mapped onto these in <c>HuggingFace/HfWeightMap</c>).</summary>
public static class Names
{
    /// <summary>Token embedding table [V,C].</summary>
    public const string Embedding = "embed.weight";
    /// <summary>Learned positions [maxT,C] (GPT-2).</summary>
    public const string PositionEmbedding = "pos_embed.weight";
    /// <summary>Final norm gain [C].</summary>
    public const string FinalNormWeight = "final_norm.weight";
    /// <summary>Final norm bias [C] (GPT-2).</summary>
    public const string FinalNormBias = "final_norm.bias";
    /// <summary>Untied LM head [V,C].</summary>
    public const string LmHead = "lm_head.weight";
    /// <summary>Scalar head weight [1,C] (reward or value head; Hugging Face's <c>score.weight</c>).</summary>
    public const string ScoreWeight = "score.weight";
    /// <summary>Scalar head bias [1] (not in Hugging Face's layout: kept in the checkpoint's reward_head.json).</summary>
    public const string ScoreBias = "score.bias";
    /// <summary>Pre-attention norm gain.</summary>
    public const string Norm1Weight = "norm1.weight";
    /// <summary>Pre-attention norm bias (GPT-2).</summary>
    public const string Norm1Bias = "norm1.bias";
    /// <summary>Fused q/k/v projection [(NH+2·NKV)·HS, C].</summary>
    public const string QkvWeight = "attn.qkv.weight";
    /// <summary>Fused q/k/v bias.</summary>
    public const string QkvBias = "attn.qkv.bias";
    /// <summary>Attention output projection [C, NH·HS].</summary>
    public const string OutWeight = "attn.out.weight";
    /// <summary>Attention output bias (GPT-2).</summary>
    public const string OutBias = "attn.out.bias";
    /// <summary>Pre-MLP norm gain.</summary>
    public const string Norm2Weight = "norm2.weight";
    /// <summary>Pre-MLP norm bias (GPT-2).</summary>
    public const string Norm2Bias = "norm2.bias";
    /// <summary>MLP input projection [F,C] (GPT-2) or fused gate+up [2F,C] (Llama).</summary>
    public const string UpWeight = "mlp.up.weight";
    /// <summary>MLP input bias (GPT-2).</summary>
    public const string UpBias = "mlp.up.bias";
    /// <summary>MLP output projection [C,F].</summary>
    public const string DownWeight = "mlp.down.weight";
    /// <summary>MLP output bias (GPT-2).</summary>
    public const string DownBias = "mlp.down.bias";

    /// <summary>The full name of a per-layer parameter, e.g. <c>layers.3.attn.qkv.weight</c>.</summary>
    public static string Layer(int layer, string suffix) => string.Create(CultureInfo.InvariantCulture, $"layers.{layer}.{suffix}");
}
