using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using Engine.Models;
using Engine.Models.Formats;
using Engine.Models.HuggingFace;

namespace Engine.Cli.Commands;

/// <summary><c>engine info MODEL_DIR</c>: a checkpoint's config, parameter count and the memory training it takes.</summary>
internal static class InfoCommand
{
    public static Command Create()
    {
        var path = new Argument<string>("MODEL_DIR") { Description = "a Hugging Face checkpoint directory, or a config.json" };
        var batch = new Option<int>("--batch") { Description = "B, sequences per step, for the memory estimate", DefaultValueFactory = _ => 1 };
        var seq = new Option<int>("--seq") { Description = "T, tokens per sequence (default: the model's maximum, at most 1024)" };
        var json = new Option<bool>("--json") { Description = "print one JSON object" };
        var command = new Command("info", "Show a model's config, parameter count and the memory AdamW training in fp32 needs.") { path, batch, seq, json };
        command.SetAction(parse =>
        {
            var info = Describe(parse.GetValue(path)!, parse.GetValue(batch), parse.GetValue(seq));
            Console.Out.Write(parse.GetValue(json) ? ToJson(info) + Environment.NewLine : ToText(info));
            return 0;
        });
        return command;
    }

    /// <summary>Everything the command prints.</summary>
    internal sealed record ModelInfo(string ConfigPath, HfModelConfig Config, string? WeightsDescription, int Batch, int Time, TrainingMemory Memory);

    internal static ModelInfo Describe(string path, int batch, int seq)
    {
        if (batch <= 0 || seq < 0)
        {
            throw new CommandException($"--batch must be positive and --seq non-negative, got {batch} and {seq}");
        }

        HfModelConfig config;
        try
        {
            config = HfCheckpoint.ReadConfig(path);
        }
        catch (Exception e) when (e is FormatException or NotSupportedException)
        {
            throw new CommandException(e.Message, e);
        }

        var model = config.Model;
        int time = seq > 0 ? seq : Math.Min(model.MaxSequenceLength, 1024);
        if (time > model.MaxSequenceLength)
        {
            throw new CommandException($"--seq {time} exceeds the model's maximum sequence length of {model.MaxSequenceLength}");
        }

        string configPath = Directory.Exists(path) ? Path.Combine(path, HfCheckpoint.ConfigFile) : path;
        return new ModelInfo(configPath, config, DescribeWeights(Path.GetDirectoryName(Path.GetFullPath(configPath))!), batch, time, TrainingMemory.For(model, batch, time));
    }

    internal static string ToText(ModelInfo info)
    {
        var m = info.Config.Model;
        var mem = info.Memory;
        var w = new StringWriter(CultureInfo.InvariantCulture);
        w.WriteLine($"config: {info.ConfigPath}");
        w.WriteLine($"model_type: {info.Config.ModelType} ({m.Architecture})");
        w.WriteLine($"  vocab V={m.VocabSize}, layers L={m.Layers}, channels C={m.Channels}, heads NH={m.Heads}, kv heads NKV={m.KvHeadCount}, head size HS={m.HeadChannels}, MLP F={m.MlpChannels}");
        w.WriteLine($"  max sequence {m.MaxSequenceLength}, norm eps {m.NormEpsilon:R}{(m.Architecture == Architecture.Llama ? $", rope theta {m.RopeTheta:R}" : "")}, q/k/v bias {Yes(m.AttentionBias || m.Architecture == Architecture.Gpt2)}, tied embeddings {Yes(m.TiedEmbeddings)}");
        w.WriteLine($"  torch_dtype {info.Config.TorchDtype ?? "-"}, bos {info.Config.BosTokenId?.ToString(CultureInfo.InvariantCulture) ?? "-"}, eos {(info.Config.EosTokenIds.Count == 0 ? "-" : string.Join(",", info.Config.EosTokenIds))}");
        w.WriteLine($"weights: {info.WeightsDescription ?? "none (config only)"}");
        w.WriteLine($"parameters: {mem.Parameters:N0} ({mem.Parameters / 1e6:F2}M)");
        w.WriteLine($"training memory, AdamW in fp32, B={info.Batch} T={info.Time}:");
        w.WriteLine($"  weights      {Bytes(mem.Weights)}");
        w.WriteLine($"  gradients    {Bytes(mem.Gradients)}");
        w.WriteLine($"  moments      {Bytes(mem.Moments)}");
        w.WriteLine($"  activations  {Bytes(mem.Activations)}");
        w.WriteLine($"  total        {Bytes(mem.Total)}");
        return w.ToString();
    }

    internal static string ToJson(ModelInfo info)
    {
        var m = info.Config.Model;
        var mem = info.Memory;
        return JsonSerializer.Serialize(new Dictionary<string, object?>
        {
            ["config"] = info.ConfigPath,
            ["model_type"] = info.Config.ModelType,
            ["vocab_size"] = m.VocabSize,
            ["layers"] = m.Layers,
            ["channels"] = m.Channels,
            ["heads"] = m.Heads,
            ["kv_heads"] = m.KvHeadCount,
            ["head_size"] = m.HeadChannels,
            ["mlp_channels"] = m.MlpChannels,
            ["max_sequence_length"] = m.MaxSequenceLength,
            ["tied_embeddings"] = m.TiedEmbeddings,
            ["weights"] = info.WeightsDescription,
            ["parameters"] = mem.Parameters,
            ["batch"] = info.Batch,
            ["seq"] = info.Time,
            ["memory_bytes"] = new Dictionary<string, long>
            {
                ["weights"] = mem.Weights, ["gradients"] = mem.Gradients, ["moments"] = mem.Moments, ["activations"] = mem.Activations, ["total"] = mem.Total,
            },
        });
    }

    private static string Yes(bool value) => value ? "yes" : "no";

    private static string Bytes(long bytes) => bytes switch
    {
        >= 1L << 30 => string.Create(CultureInfo.InvariantCulture, $"{bytes / (double)(1L << 30),10:F2} GiB"),
        >= 1L << 20 => string.Create(CultureInfo.InvariantCulture, $"{bytes / (double)(1L << 20),10:F2} MiB"),
        _ => string.Create(CultureInfo.InvariantCulture, $"{bytes / 1024.0,10:F2} KiB"),
    };

    // Reads only the safetensors headers: how the weights are stored, not whether they fit the config (loading checks that).
    private static string? DescribeWeights(string directory)
    {
        string single = Path.Combine(directory, HfCheckpoint.WeightsFile);
        string index = Path.Combine(directory, HfCheckpoint.IndexFile);
        string[] files = File.Exists(single)
            ? [single]
            : File.Exists(index) ? Directory.GetFiles(directory, "model-*-of-*.safetensors").Order(StringComparer.Ordinal).ToArray() : [];
        if (files.Length == 0)
        {
            return null;
        }

        var dtypes = new SortedSet<string>(StringComparer.Ordinal);
        long tensors = 0, bytes = 0;
        foreach (string f in files)
        {
            try
            {
                using var file = SafetensorsFile.Open(f);
                tensors += file.Tensors.Count;
                bytes += file.DataLength;
                foreach (var t in file.Tensors)
                {
                    dtypes.Add(t.DType.HeaderName());
                }
            }
            catch (SafetensorsException e)
            {
                throw new CommandException(e.Message, e);
            }
        }

        return string.Create(CultureInfo.InvariantCulture, $"{(files.Length == 1 ? Path.GetFileName(files[0]) : $"{files.Length} shards")}, {tensors} tensors, {string.Join("/", dtypes)}, {Bytes(bytes).Trim()}");
    }
}
