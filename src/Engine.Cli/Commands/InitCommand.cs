using System.CommandLine;
using System.Globalization;
using Engine.Core.Cpu;
using Engine.Models;
using Engine.Models.HuggingFace;
using Engine.Models.Presets;

namespace Engine.Cli.Commands;

/// <summary>
/// <c>engine init</c>: writes a fresh Hugging Face checkpoint (config.json, randomly initialised model.safetensors and
/// the tokenizer's files) from a preset or from explicit sizes, to start <c>engine pretrain</c> or <c>engine sft</c> from.
/// </summary>
internal static class InitCommand
{
    public static Command Create()
    {
        var arch = new Option<string?>("--arch") { Description = "gpt2, llama or qwen2 (with --preset: must match it)" };
        arch.AcceptOnlyFromAmong("gpt2", "llama", "qwen2");
        var preset = new Option<string?>("--preset") { Description = "a published model's shape: " + string.Join(", ", ModelPresets.All.Select(p => p.Name)) };
        preset.AcceptOnlyFromAmong([.. ModelPresets.All.Select(p => p.Name)]);
        var layers = new Option<int?>("--layers") { Description = "L, transformer blocks" };
        var dim = new Option<int?>("--dim") { Description = "C, channels of the residual stream" };
        var heads = new Option<int?>("--heads") { Description = "NH, attention heads" };
        var kvHeads = new Option<int?>("--kv-heads") { Description = "NKV, key/value heads (llama, qwen2; default: --heads)" };
        var intermediate = new Option<int?>("--intermediate") { Description = "F, MLP width (default: 4·C for gpt2, ≈8C/3 for llama and qwen2)" };
        var vocab = new Option<int?>("--vocab") { Description = "V, vocabulary size (default: the preset's, raised to the tokenizer's when that is larger)" };
        var tokenizer = new Option<string?>("--tokenizer") { Description = "a tokenizer.json (or its directory): copied into --out with its tokenizer_config.json; gives V and the bos/eos ids" };
        var maxLength = new Option<int?>("--max-length") { Description = "T, the longest sequence (default: the preset's, else 1024)" };
        var seed = new Option<ulong>("--seed") { Description = "seed of the initial weights", DefaultValueFactory = _ => 0 };
        var output = new Option<string>("--out") { Description = "the new checkpoint directory (must not exist or be empty)", Required = true };
        var saveDType = SaveDTypeOption.Create();
        var command = new Command("init", Summary())
        {
            arch, preset, layers, dim, heads, kvHeads, intermediate, vocab, tokenizer, maxLength, seed, output, saveDType,
        };
        command.SetAction(parse =>
        {
            string? tokenizerPath = parse.GetValue(tokenizer) is string t ? TokenizerFile(t) : null;
            var tok = tokenizerPath is null ? null : ModelInputs.LoadTokenizer(tokenizerPath);
            HfModelConfig config;
            if (parse.GetValue(preset) is string name)
            {
                if (new[] { layers, dim, heads, kvHeads, intermediate }.FirstOrDefault(o => parse.GetResult(o) is not null) is { } extra)
                {
                    throw new CommandException($"{extra.Name}: --preset sets the model's shape; give one or the other");
                }

                config = ModelPresets.Get(name).Config;
                if (parse.GetValue(arch) is string a && a != (config.ModelType == "qwen2" ? "qwen2" : config.Model.Architecture == Architecture.Gpt2 ? "gpt2" : "llama"))
                {
                    throw new CommandException($"--arch {a}: preset '{name}' is a {config.ModelType} model");
                }
            }
            else
            {
                config = Custom(
                    parse.GetValue(arch) ?? throw new CommandException("--arch is required without --preset (gpt2, llama or qwen2)"),
                    Required(parse.GetValue(layers), "--layers"),
                    Required(parse.GetValue(dim), "--dim"),
                    Required(parse.GetValue(heads), "--heads"),
                    parse.GetValue(kvHeads),
                    parse.GetValue(intermediate));
            }

            int tokenizerVocabulary = tok?.VocabSize ?? 0;
            int v = parse.GetValue(vocab) ?? Math.Max(config.Model.VocabSize, tokenizerVocabulary);
            if (v <= 0)
            {
                throw new CommandException("--vocab: give the vocabulary size, or --tokenizer to take it from the tokenizer");
            }

            if (tokenizerVocabulary > v)
            {
                throw new CommandException($"--vocab {v}: the tokenizer has {tokenizerVocabulary} tokens; the vocabulary must hold them all");
            }

            var model = config.Model with { VocabSize = v, MaxSequenceLength = parse.GetValue(maxLength) ?? config.Model.MaxSequenceLength };
            config = config with { Model = model };
            if (tok is not null)
            {
                // The tokenizer's own special tokens, not the preset's ids (which belong to the preset's tokenizer).
                int? eos = ModelInputs.EosTokenId(null, tok);
                config = config with { BosTokenId = ModelInputs.Encoder(tok, eos).BosTokenId, EosTokenIds = eos is int e ? [e] : [] };
            }
            try
            {
                model.Validate();
            }
            catch (ArgumentException ex)
            {
                throw new CommandException($"the sizes do not make a model: {ex.Message.Replace("model config: ", "", StringComparison.Ordinal)}", ex);
            }

            string dir = parse.GetValue(output)!;
            using var backend = new CpuBackend(Environment.ProcessorCount);
            ModelPresets.Init(
                dir, config, backend, parse.GetValue(seed), tokenizerPath is null ? null : Path.GetDirectoryName(Path.GetFullPath(tokenizerPath)),
                SaveDTypeOption.Parse(parse.GetValue(saveDType)));
            if (tokenizerPath is not null && Path.GetFileName(tokenizerPath) != "tokenizer.json")
            {
                File.Copy(tokenizerPath, Path.Combine(dir, "tokenizer.json"));
            }

            Console.Out.WriteLine(string.Create(
                CultureInfo.InvariantCulture,
                $"wrote {dir}: {config.ModelType}, {model.Layers} layers, C={model.Channels}, NH={model.Heads}, NKV={model.KvHeadCount}, F={model.MlpChannels}, V={model.VocabSize}, T={model.MaxSequenceLength}, {Transformer.ParameterCount(model):N0} parameters{(tokenizerPath is null ? "; no tokenizer (pass --tokenizer to training commands)" : "")}"));
            return 0;
        });
        return command;
    }

    private static string Summary() =>
        "Write a fresh checkpoint (config.json, random weights, tokenizer files) to train from. Presets (published shapes):\n" +
        string.Join("\n", ModelPresets.All.Select(p => string.Create(CultureInfo.InvariantCulture, $"  {p.Name,-14} {p.Description}, {p.ParameterCount / 1e6:F1}M parameters")));

    private static HfModelConfig Custom(string arch, int layers, int dim, int heads, int? kvHeads, int? intermediate)
    {
        foreach (var (value, flag) in new[] { (layers, "--layers"), (dim, "--dim"), (heads, "--heads"), (kvHeads ?? 1, "--kv-heads"), (intermediate ?? 1, "--intermediate") })
        {
            if (value <= 0)
            {
                throw new CommandException($"{flag} must be positive, got {value}");
            }
        }

        var model = arch == "gpt2"
            ? TransformerConfig.Gpt2(0, 1024, layers, dim, heads) with { HiddenChannels = intermediate ?? 0 }
            : TransformerConfig.Llama(0, 1024, layers, dim, heads, kvHeads ?? heads, intermediate ?? 0) with { AttentionBias = arch == "qwen2", NormEpsilon = 1e-6f };
        if (arch == "gpt2" && kvHeads is int k && k != heads)
        {
            throw new CommandException("--kv-heads: gpt2 has no grouped-query attention (leave it out)");
        }

        if (dim % heads != 0)
        {
            throw new CommandException($"--dim {dim} is not divisible by --heads {heads}");
        }

        if (heads % (kvHeads ?? heads) != 0)
        {
            throw new CommandException($"--heads {heads} is not a multiple of --kv-heads {kvHeads}");
        }

        return new HfModelConfig(model, arch, "float32", null, []);
    }

    private static int Required(int? value, string flag) =>
        value ?? throw new CommandException($"{flag} is required without --preset");

    // --tokenizer names a tokenizer.json or a directory holding one.
    private static string TokenizerFile(string path)
    {
        string file = Directory.Exists(path) ? Path.Combine(path, "tokenizer.json") : path;
        return File.Exists(file) ? file : throw new CommandException($"--tokenizer: file '{file}' does not exist");
    }
}
