using System.ComponentModel;
using Engine.Models.Lora;

namespace Engine.Training.Options;

/// <summary>
/// The <c>lora:</c> block of a trainer's configuration file, with PEFT's <c>LoraConfig</c> key names (<c>r</c>,
/// <c>lora_alpha</c>, <c>lora_dropout</c>, <c>target_modules</c>, <c>use_rslora</c>): present, the run trains LoRA
/// adapters as <c>--lora</c> does (the flag's keys override the block's). Absent (null): full training.
/// </summary>
public sealed record LoraOptions
{
    /// <summary>r, the rank of every adapter.</summary>
    [Description("LoRA rank r (with a lora: block or --lora)")]
    public int R { get; init; } = new LoraConfig().Rank;

    /// <summary>α: the adapters' product is scaled by α/r (α/√r with <see cref="UseRslora"/>).</summary>
    [Description("LoRA alpha: the adapters' product is scaled by alpha/r")]
    public double LoraAlpha { get; init; } = new LoraConfig().Alpha;

    /// <summary>Dropout on the adapters' input in training passes.</summary>
    [Description("dropout on the adapters' input while training")]
    public double LoraDropout { get; init; } = new LoraConfig().Dropout;

    /// <summary>PEFT module names (<c>q_proj</c>, <c>c_attn</c>, …) or <c>all-linear</c>; a list, or names joined with <c>+</c>.</summary>
    [Description("the linear layers adapted: all-linear, or module names (a list, or joined with +)")]
    public IReadOnlyList<string> TargetModules { get; init; } = [LoraConfig.AllLinear];

    /// <summary>rsLoRA: scale by α/√r instead of α/r.</summary>
    [Description("scale by alpha/sqrt(r) instead of alpha/r")]
    public bool UseRslora { get; init; }

    /// <summary>The adapter settings, checked; <paramref name="source"/> (the configuration file) is named in errors.</summary>
    public LoraConfig ToConfig(string source)
    {
        var config = new LoraConfig(R, LoraAlpha, LoraDropout, TargetModules, UseRslora);
        config.Validate(source, peftNames: true);
        return config;
    }
}
