using System.CommandLine;
using Engine.Core.Backends;
using Engine.Models;
using Engine.Models.HuggingFace;
using Engine.Models.Lora;

namespace Engine.Cli.Commands;

/// <summary>
/// <c>engine lora merge</c>, and the <c>--adapter DIR</c> option of the inference commands (generate, logprobs, score,
/// info): a PEFT LoRA adapter applied over the model given as MODEL_DIR.
/// </summary>
internal static class LoraCommand
{
    /// <summary>The --adapter option: a PEFT LoRA adapter directory applied over MODEL_DIR.</summary>
    public static Option<string?> AdapterOption() =>
        new("--adapter") { Description = "a PEFT LoRA adapter directory (adapter_config.json + adapter_model.safetensors) applied over MODEL_DIR" };

    /// <summary>
    /// Loads the base checkpoint in <paramref name="directory"/> for <paramref name="adapter"/> (or none): with the scalar
    /// head when the adapter saves one (modules_to_save: score, from <c>engine rm --lora</c>), whose values it then replaces.
    /// </summary>
    public static Transformer LoadBase(string directory, Backend backend, string? adapter)
    {
        bool scalar = adapter is not null && PeftAdapter.ReadConfig(ModelInputs.ExistingDirectory(adapter, "--adapter")).Config.SavesScoreHead;
        return HfCheckpoint.Load(directory, backend, trainable: false, scalar ? new HfLoadOptions { Head = HeadKind.Scalar } : null);
    }

    /// <summary>Attaches the adapter named by --adapter (if any) to <paramref name="model"/>, loaded frozen.</summary>
    public static void Apply(Transformer model, string? adapter)
    {
        if (adapter is not null)
        {
            PeftAdapter.Load(model, ModelInputs.ExistingDirectory(adapter, "--adapter"));
        }
    }

    public static Command Create()
    {
        var baseModel = new Option<string>("--base") { Description = "the base model's checkpoint directory", Required = true };
        var adapter = new Option<string>("--adapter") { Description = "the PEFT LoRA adapter directory", Required = true };
        var output = new Option<string>("--out") { Description = "where the merged Hugging Face checkpoint is written", Required = true };
        var device = DeviceOption.Create();
        var tf32 = DeviceOption.CreateTf32();
        var merge = new Command("merge", "Fold a LoRA adapter into its base model (W += s·B·A) and write a plain Hugging Face checkpoint.")
        {
            baseModel, adapter, output, device, tf32,
        };
        merge.SetAction(parse =>
        {
            string baseDir = ModelInputs.ExistingDirectory(parse.GetValue(baseModel)!, "--base");
            string adapterDir = ModelInputs.ExistingDirectory(parse.GetValue(adapter)!, "--adapter");
            string outDir = parse.GetValue(output)!;
            ModelInputs.WritableDirectory(outDir, "--out");
            using var backend = DeviceOption.CreateBackend(parse.GetValue(device), Environment.ProcessorCount, tf32: parse.GetValue(tf32));
            using var model = LoadBase(baseDir, backend, adapterDir);
            var lora = PeftAdapter.Load(model, adapterDir);
            int sites = lora.Sites.Count;
            model.MergeLora();

            // The adapter directory's tokenizer files (a run's final/ carries them, with its chat template) win over the base's.
            bool adapterHasTokenizer = File.Exists(Path.Combine(adapterDir, "tokenizer.json"));
            HfCheckpoint.Save(model, outDir, new HfSaveOptions
            {
                Config = HfCheckpoint.ReadConfig(baseDir) with { Model = model.Config },
                TokenizerDirectory = adapterHasTokenizer ? adapterDir : baseDir,
            });
            Console.Out.WriteLine($"merged {sites} adapted layers of {adapterDir} into {baseDir}: saved {outDir}");
            return 0;
        });
        return new Command("lora", "LoRA adapters: merge one into its base model.") { merge };
    }
}
