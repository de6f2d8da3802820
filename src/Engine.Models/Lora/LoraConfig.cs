using System.Globalization;
using Engine.Core;

namespace Engine.Models.Lora;

/// <summary>
/// A LoRA adapter's settings, named as PEFT's <c>LoraConfig</c> names them: y = x·Wᵀ + s·(drop(x)·Aᵀ)·Bᵀ with A [r, in],
/// B [out, r] and s = α/r (α/√r with rsLoRA), on the linear layers named by <see cref="Targets"/>.
/// </summary>
/// <param name="Rank">r, the rank of every adapter.</param>
/// <param name="Alpha">lora_alpha, α.</param>
/// <param name="Dropout">lora_dropout: dropout on the adapter's input in training passes only.</param>
/// <param name="Targets">PEFT module names (<c>q_proj</c>, <c>c_attn</c>, …) or the single entry <c>all-linear</c>.</param>
/// <param name="UseRsLora">use_rslora: s = α/√r instead of α/r.</param>
/// <param name="ModulesToSave">
/// modules_to_save: modules trained in full and saved with the adapter; Engine supports <c>score</c>, the scalar head of a
/// reward model (<c>engine rm --lora</c>). Null or empty: none.
/// </param>
public sealed record LoraConfig(
    int Rank = 16, double Alpha = 32, double Dropout = 0.05, IReadOnlyList<string>? Targets = null, bool UseRsLora = false, IReadOnlyList<string>? ModulesToSave = null)
{
    /// <summary>The module name of the scalar head in <see cref="ModulesToSave"/> (Hugging Face's <c>score</c>).</summary>
    public const string ScoreModule = "score";

    /// <summary>Whether the scalar head is trained in full and saved with the adapter.</summary>
    public bool SavesScoreHead => ModulesToSave?.Contains(ScoreModule) == true;

    /// <summary>The target meaning every linear layer of the trunk (not the LM head or a scalar head).</summary>
    public const string AllLinear = "all-linear";

    /// <summary>The targets, <c>all-linear</c> when none were given.</summary>
    public IReadOnlyList<string> TargetModules => Targets is { Count: > 0 } t ? t : [AllLinear];

    /// <summary>s, the factor of the adapter's product: α/r, or α/√r with rsLoRA.</summary>
    public double Scale => UseRsLora ? Alpha / Math.Sqrt(Rank) : Alpha / Rank;

    /// <summary>Whether a module (its last path component, e.g. <c>q_proj</c>) is a target.</summary>
    public bool IsTarget(string module) => TargetModules.Any(t => t == AllLinear || t == module);

    /// <summary>
    /// Checks the values, naming <paramref name="source"/> (a flag or file) in the error and each field by its
    /// command-line key, or by its PEFT key under <c>lora.</c> when <paramref name="peftNames"/> (a configuration file's block).
    /// </summary>
    public void Validate(string source, bool peftNames = false)
    {
        if (Rank < 1 || Rank > 4096)
        {
            throw new InputException(source, null, peftNames ? "lora.r" : "r", $"rank {Rank} must be in [1, 4096]");
        }

        if (!(Alpha > 0) || !double.IsFinite(Alpha))
        {
            throw new InputException(source, null, peftNames ? "lora.lora_alpha" : "alpha", $"{Alpha} must be a positive number");
        }

        if (!(Dropout >= 0 && Dropout < 1))
        {
            throw new InputException(source, null, peftNames ? "lora.lora_dropout" : "dropout", $"{Dropout} must be in [0, 1)");
        }

        if (ModulesToSave?.FirstOrDefault(m => m != ScoreModule) is { } module)
        {
            throw new InputException(source, null, "modules_to_save", $"'{module}' is not supported; Engine saves only the scalar head ({ScoreModule}) with an adapter");
        }
    }

    /// <summary>
    /// Parses the command-line form <c>r=16,alpha=32,dropout=0.05,targets=all-linear,rslora=false</c>; several targets are
    /// joined with <c>+</c> (<c>targets=q_proj+v_proj</c>). Keys left out keep the values of <paramref name="start"/>
    /// (e.g. a configuration file's <c>lora:</c> block), or the defaults.
    /// </summary>
    public static LoraConfig Parse(string text, string flag = "--lora", LoraConfig? start = null)
    {
        ArgumentNullException.ThrowIfNull(text);
        var config = start ?? new LoraConfig();
        foreach (var part in text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            int eq = part.IndexOf('=', StringComparison.Ordinal);
            if (eq <= 0)
            {
                throw new InputException(flag, null, part, "expected key=value (keys: r, alpha, dropout, targets, rslora)");
            }

            string key = part[..eq].Trim(), value = part[(eq + 1)..].Trim();
            config = key switch
            {
                "r" or "rank" => config with { Rank = ParseInt(flag, key, value) },
                "alpha" or "lora_alpha" => config with { Alpha = ParseDouble(flag, key, value) },
                "dropout" or "lora_dropout" => config with { Dropout = ParseDouble(flag, key, value) },
                "targets" or "target_modules" => config with { Targets = value.Split('+', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries) },
                "rslora" or "use_rslora" => config with { UseRsLora = ParseBool(flag, key, value) },
                _ => throw new InputException(flag, null, key, "unknown key (keys: r, alpha, dropout, targets, rslora)"),
            };
        }

        config.Validate(flag);
        return config;
    }

    private static int ParseInt(string flag, string key, string value) =>
        int.TryParse(value, NumberStyles.Integer, CultureInfo.InvariantCulture, out int v) ? v : throw new InputException(flag, null, key, $"'{value}' is not an integer");

    private static double ParseDouble(string flag, string key, string value) =>
        double.TryParse(value, NumberStyles.Float, CultureInfo.InvariantCulture, out double v) ? v : throw new InputException(flag, null, key, $"'{value}' is not a number");

    private static bool ParseBool(string flag, string key, string value) =>
        bool.TryParse(value, out bool v) ? v : throw new InputException(flag, null, key, $"'{value}' is not true or false");
}
