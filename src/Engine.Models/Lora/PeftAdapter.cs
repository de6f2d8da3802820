using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Engine.Core;
using Engine.Core.IO;
using Engine.Models.Formats;

namespace Engine.Models.Lora;

/// <summary>
/// LoRA adapters in PEFT's directory layout: <c>adapter_config.json</c> (peft_type LORA, r, lora_alpha, lora_dropout,
/// target_modules, use_rslora, bias none, task_type CAUSAL_LM, fan_in_fan_out, base_model_name_or_path) and
/// <c>adapter_model.safetensors</c> with <c>base_model.model.&lt;module&gt;.lora_A.weight</c> [r, in] and
/// <c>…lora_B.weight</c> [out, r], so <c>PeftModel.from_pretrained</c> loads what Engine writes and the other way round.
/// </summary>
public static class PeftAdapter
{
    /// <summary>The adapter's settings file.</summary>
    public const string ConfigFile = "adapter_config.json";

    /// <summary>The adapter's weights file.</summary>
    public const string WeightsFile = "adapter_model.safetensors";

    /// <summary>The prefix PEFT's <c>LoraModel</c> puts before every module path of the wrapped model.</summary>
    public const string Prefix = "base_model.model.";

    private const long MaxConfigBytes = 1 << 20;

    /// <summary>Whether <paramref name="directory"/> holds an adapter (its <c>adapter_config.json</c>).</summary>
    public static bool IsAdapter(string directory) => File.Exists(Path.Combine(directory, ConfigFile));

    /// <summary>Writes <paramref name="adapters"/> (values, F32) and their settings into <paramref name="directory"/>.</summary>
    public static void Save(LoraAdapters adapters, string directory)
    {
        ArgumentNullException.ThrowIfNull(adapters);
        ArgumentException.ThrowIfNullOrEmpty(directory);
        Directory.CreateDirectory(directory);
        var writer = new SafetensorsWriter();
        writer.Metadata["format"] = "pt";
        foreach (var p in adapters.Parameters.Parameters)
        {
            writer.AddF32(Prefix + p.Name, adapters.Read(p.Name), [.. Enumerable.Range(0, p.Shape.Rank).Select(a => p.Shape[a])]);
        }

        writer.Save(Path.Combine(directory, WeightsFile));
        var c = adapters.Config;
        var json = new JsonObject
        {
            ["peft_type"] = "LORA",
            ["task_type"] = c.SavesScoreHead ? "SEQ_CLS" : "CAUSAL_LM",
            ["base_model_name_or_path"] = adapters.BaseModel,
            ["r"] = c.Rank,
            ["lora_alpha"] = c.Alpha,
            ["lora_dropout"] = c.Dropout,
            ["target_modules"] = new JsonArray([.. adapters.Sites.Select(s => (JsonNode)JsonValue.Create(s.ShortName)!).DistinctBy(n => n.GetValue<string>())]),
            ["use_rslora"] = c.UseRsLora,
            ["bias"] = "none",
            ["fan_in_fan_out"] = adapters.Sites.Any(s => s.FanInFanOut),
            ["inference_mode"] = true,
            ["init_lora_weights"] = true,
            ["modules_to_save"] = c.ModulesToSave is { Count: > 0 } saved ? new JsonArray([.. saved.Select(m => (JsonNode)JsonValue.Create(m)!)]) : null,
        };
        string temp = Path.Combine(directory, ConfigFile + ".tmp");
        File.WriteAllText(temp, json.ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n");
        File.Move(temp, Path.Combine(directory, ConfigFile), overwrite: true);
    }

    /// <summary>Reads the settings and the base model name of the adapter in <paramref name="directory"/>.</summary>
    public static (LoraConfig Config, string? BaseModel) ReadConfig(string directory)
    {
        string file = Path.Combine(directory, ConfigFile);
        if (!File.Exists(file))
        {
            throw new InputException(directory, null, null, $"no {ConfigFile} in this directory; a PEFT LoRA adapter needs one");
        }

        byte[] bytes = InputFiles.ReadAllBytes(file, MaxConfigBytes, "the adapter config");
        JsonObject root;
        try
        {
            root = JsonNode.Parse(bytes) as JsonObject ?? throw new InputException(file, null, null, "is not a JSON object");
        }
        catch (JsonException e)
        {
            throw new InputException(file, e.LineNumber + 1, null, $"is not valid JSON: {e.Message}", e);
        }

        string peftType = Get(root, file, "peft_type", n => n.GetValue<string>());
        if (peftType != "LORA")
        {
            throw new InputException(file, null, "peft_type", $"'{peftType}' is not supported; Engine reads LORA adapters");
        }

        string bias = root["bias"] is { } b ? Get(root, file, "bias", _ => b.GetValue<string>()) : "none";
        if (bias != "none")
        {
            throw new InputException(file, null, "bias", $"'{bias}': adapters that train biases are not supported (bias must be none)");
        }

        var targets = Get(root, file, "target_modules", n => n is JsonArray a ? [.. a.Select(x => x!.GetValue<string>())] : new[] { n.GetValue<string>() });
        string[]? saved = root["modules_to_save"] is null ? null : Get(root, file, "modules_to_save", n => n is JsonArray a ? a.Select(x => x!.GetValue<string>()).ToArray() : [n.GetValue<string>()]);
        var config = new LoraConfig(
            Get(root, file, "r", n => n.GetValue<int>()),
            Get(root, file, "lora_alpha", n => n.GetValue<double>()),
            root["lora_dropout"] is null ? 0 : Get(root, file, "lora_dropout", n => n.GetValue<double>()),
            targets,
            root["use_rslora"] is not null && Get(root, file, "use_rslora", n => n.GetValue<bool>()),
            saved);
        config.Validate(file);
        string? baseModel = root["base_model_name_or_path"] is JsonValue v && v.TryGetValue(out string? s) ? s : null;
        return (config, baseModel);
    }

    /// <summary>
    /// Attaches the adapter in <paramref name="directory"/> to <paramref name="model"/> (a frozen base): every tensor the
    /// config's targets call for must be present with PEFT's shape, and no other may be.
    /// </summary>
    public static LoraAdapters Load(Transformer model, string directory)
    {
        ArgumentNullException.ThrowIfNull(model);
        var (config, baseModel) = ReadConfig(directory);
        var adapters = model.AddLora(config, seed: 0, Path.Combine(directory, ConfigFile));
        adapters.BaseModel = baseModel;
        LoadValues(adapters, directory);
        return adapters;
    }

    /// <summary>Reads the A and B values of <paramref name="adapters"/> from the weights file in <paramref name="directory"/>; all are checked before any is copied.</summary>
    public static void LoadValues(LoraAdapters adapters, string directory)
    {
        ArgumentNullException.ThrowIfNull(adapters);
        string file = Path.Combine(directory, WeightsFile);
        InputFiles.RegularFile(file, "the adapter weights");
        using var weights = SafetensorsFile.Open(file);
        var expected = adapters.Parameters.Parameters.ToDictionary(p => Prefix + p.Name, StringComparer.Ordinal);
        foreach (var name in weights.Names)
        {
            if (!expected.ContainsKey(name))
            {
                throw new InputException(file, null, name, "is not a LoRA tensor of this model and adapter config (a different base model?)");
            }
        }

        foreach (var (name, info) in expected)
        {
            if (!weights.TryGetTensor(name, out var stored))
            {
                throw new InputException(file, null, name, $"is missing (expected shape {info.Shape})");
            }

            if (stored.Shape.Count != info.Shape.Rank || Enumerable.Range(0, info.Shape.Rank).Any(a => stored.Shape[a] != info.Shape[a]))
            {
                throw new InputException(file, null, name,
                    string.Create(CultureInfo.InvariantCulture, $"has shape [{string.Join(", ", stored.Shape)}], this model needs {info.Shape}"));
            }
        }

        foreach (var (name, info) in expected)
        {
            adapters.Write(info.Name, weights.ReadF32(name));
        }
    }

    private static T Get<T>(JsonObject root, string file, string field, Func<JsonNode, T> read)
    {
        var node = root[field] ?? throw new InputException(file, null, field, "is missing");
        try
        {
            return read(node);
        }
        catch (Exception e) when (e is InvalidOperationException or FormatException or NullReferenceException)
        {
            throw new InputException(file, null, field, $"has the wrong type ({node.ToJsonString()})", e);
        }
    }
}
