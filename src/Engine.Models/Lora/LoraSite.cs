using Engine.Models.HuggingFace;

namespace Engine.Models.Lora;

/// <summary>Which linear layer of a transformer block a site sits on (its input and its fused output).</summary>
public enum LinearKind
{
    /// <summary>The fused q/k/v projection (input: the first norm's output).</summary>
    Qkv,
    /// <summary>The attention output projection (input: the attention output).</summary>
    Out,
    /// <summary>The MLP input projection, fused gate+up for the Llama family (input: the second norm's output).</summary>
    Up,
    /// <summary>The MLP output projection (input: the activation).</summary>
    Down,
}

/// <summary>
/// One adapted linear layer as PEFT sees it: the module path (<c>model.layers.0.self_attn.k_proj</c>), and where its
/// output sits in Engine's fused projection: columns [<see cref="Column"/>, +<see cref="OutFeatures"/>) of the output of
/// <see cref="Linear"/> in layer <see cref="Layer"/>.
/// </summary>
/// <param name="Module">The PEFT module path, without the <c>base_model.model.</c> prefix.</param>
/// <param name="Layer">The transformer block.</param>
/// <param name="Linear">The fused Engine linear layer.</param>
/// <param name="Column">First output column inside the fused projection.</param>
/// <param name="InFeatures">in, the columns of A.</param>
/// <param name="OutFeatures">out, the rows of B.</param>
/// <param name="FanInFanOut">True for GPT-2's Conv1D, which stores its weight [in, out] (PEFT's fan_in_fan_out).</param>
public sealed record LoraSite(string Module, int Layer, LinearKind Linear, int Column, int InFeatures, int OutFeatures, bool FanInFanOut)
{
    /// <summary>The last component of the module path, the name targets match (<c>q_proj</c>, <c>c_attn</c>).</summary>
    public string ShortName => Module[(Module.LastIndexOf('.') + 1)..];

    /// <summary>Engine's name of the fused weight this site adapts, e.g. <c>layers.0.attn.qkv.weight</c>.</summary>
    public string EngineWeight => Names.Layer(Layer, Linear switch
    {
        LinearKind.Qkv => Names.QkvWeight,
        LinearKind.Out => Names.OutWeight,
        LinearKind.Up => Names.UpWeight,
        _ => Names.DownWeight,
    });

    /// <summary>PEFT's name of A inside the model, without the <c>base_model.model.</c> prefix.</summary>
    public string AName => Module + ".lora_A.weight";

    /// <summary>PEFT's name of B inside the model, without the <c>base_model.model.</c> prefix.</summary>
    public string BName => Module + ".lora_B.weight";

    /// <summary>Every linear layer of the trunk a model of <paramref name="config"/> has, from the Hugging Face weight map.</summary>
    public static IReadOnlyList<LoraSite> All(TransformerConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        var sites = new List<LoraSite>();
        foreach (var t in HfWeightMap.For(config))
        {
            if (!t.HfName.EndsWith(".weight", StringComparison.Ordinal) || LinearOf(t.EngineName) is not (int layer, LinearKind kind))
            {
                continue;
            }

            var shape = t.HfShape;
            int inFeatures = (int)(t.Transposed ? shape[0] : shape[1]), outFeatures = (int)(t.Transposed ? shape[1] : shape[0]);
            sites.Add(new LoraSite(t.HfName[..^".weight".Length], layer, kind, (int)t.RowStart, inFeatures, outFeatures, t.Transposed));
        }

        return sites;
    }

    /// <summary>The sites <paramref name="lora"/> targets; an input error names <paramref name="source"/> when a target matches nothing.</summary>
    public static IReadOnlyList<LoraSite> Targeted(TransformerConfig config, LoraConfig lora, string source)
    {
        ArgumentNullException.ThrowIfNull(lora);
        var all = All(config);
        foreach (var target in lora.TargetModules)
        {
            if (target != LoraConfig.AllLinear && !all.Any(s => s.ShortName == target))
            {
                var names = string.Join(", ", all.Select(s => s.ShortName).Distinct());
                throw new Engine.Core.InputException(source, null, "targets", $"'{target}' is not a linear layer of this model (it has {names}, or all-linear)");
            }
        }

        return [.. all.Where(s => lora.IsTarget(s.ShortName))];
    }

    private static (int, LinearKind)? LinearOf(string engineName)
    {
        if (!engineName.StartsWith("layers.", StringComparison.Ordinal))
        {
            return null;
        }

        int dot = engineName.IndexOf('.', "layers.".Length);
        int layer = int.Parse(engineName["layers.".Length..dot], System.Globalization.CultureInfo.InvariantCulture);
        string suffix = engineName[(dot + 1)..];
        LinearKind? kind = suffix switch
        {
            Names.QkvWeight => LinearKind.Qkv,
            Names.OutWeight => LinearKind.Out,
            Names.UpWeight => LinearKind.Up,
            Names.DownWeight => LinearKind.Down,
            _ => null,
        };
        return kind is LinearKind k ? (layer, k) : null;
    }
}
