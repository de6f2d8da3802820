using System.CommandLine;
using Engine.Models.Formats;

namespace Engine.Cli.Commands;

/// <summary>The shared <c>--save-dtype fp32|bf16|fp16</c> option of every command that saves a model.</summary>
internal static class SaveDTypeOption
{
    public static Option<string?> Create()
    {
        var option = new Option<string?>("--save-dtype")
        {
            Description = "dtype of the saved weights: fp32, bf16 or fp16 (default: the dtype the --model checkpoint came in; fp32 for a new model). Training checkpoints stay fp32 so a resume is exact",
        };
        option.CompletionSources.Add("fp32", "bf16", "fp16");
        option.Validators.Add(r =>
        {
            // Checked when the command line is parsed, not when the model is saved at the end of a run.
            string? value = r.GetValueOrDefault<string?>();
            if (value is not null && !SafetensorsDTypes.TryParseStorage(value, out _))
            {
                r.AddError($"--save-dtype: '{value}' is not fp32, bf16 or fp16");
            }
        });
        return option;
    }

    /// <summary>The dtype a --save-dtype value names, or null when the flag was not given.</summary>
    public static SafetensorsDType? Parse(string? value) =>
        value is null ? null
        : SafetensorsDTypes.TryParseStorage(value, out var dtype) ? dtype
        : throw new CommandException($"--save-dtype: '{value}' is not fp32, bf16 or fp16");
}
