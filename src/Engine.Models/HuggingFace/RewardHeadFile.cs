using System.Globalization;
using System.Text;
using System.Text.Json;
using Engine.Core;

namespace Engine.Models.HuggingFace;

/// <summary>
/// <c>reward_head.json</c>: what a scalar-head checkpoint keeps beside <c>score.weight</c>, which Hugging Face's
/// <c>*ForSequenceClassification</c> layout has no place for: the head's bias (InstructGPT's calibration offset) and
/// the reward statistics over the calibration demonstrations. transformers ignores the file; a model loaded there
/// scores without the bias, i.e. shifted by a constant, which no pairwise use of the scores sees.
/// </summary>
public static class RewardHeadFile
{
    /// <summary>The file name inside a checkpoint directory.</summary>
    public const string FileName = "reward_head.json";

    /// <summary>The <c>format</c> field this version writes and reads.</summary>
    public const string Format = "engine-reward-head/1";

    /// <summary>Largest file accepted, in bytes (a real one is a few hundred).</summary>
    public const int MaxFileBytes = 64 << 10;

    /// <summary>Writes the file into <paramref name="directory"/> (replaced atomically).</summary>
    public static void Write(string directory, float bias, RewardStatistics? statistics)
    {
        ArgumentException.ThrowIfNullOrEmpty(directory);
        using var stream = new MemoryStream();
        using (var w = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = true }))
        {
            w.WriteStartObject();
            w.WriteString("format", Format);
            w.WriteNumber("bias", double.Parse(bias.ToString("R", CultureInfo.InvariantCulture), CultureInfo.InvariantCulture));
            if (statistics is not null)
            {
                w.WriteNumber("reward_mean", statistics.Mean);
                w.WriteNumber("reward_std", statistics.Std);
                w.WriteNumber("calibration_count", statistics.Count);
            }

            w.WriteEndObject();
        }

        string path = Path.Combine(directory, FileName);
        string temp = $"{Path.GetFullPath(path)}.{Guid.NewGuid():N}.tmp";
        try
        {
            File.WriteAllBytes(temp, [.. stream.ToArray(), (byte)'\n']);
            File.Move(temp, path, overwrite: true);
        }
        catch
        {
            File.Delete(temp);
            throw;
        }
    }

    /// <summary>
    /// Reads the file of <paramref name="directory"/>: (bias 0, no statistics) when it is absent, as for a reward model
    /// trained elsewhere. Throws <see cref="InputException"/> naming the file and field when it is malformed.
    /// </summary>
    public static (float Bias, RewardStatistics? Statistics) Read(string directory)
    {
        ArgumentException.ThrowIfNullOrEmpty(directory);
        string path = Path.Combine(directory, FileName);
        if (!File.Exists(path))
        {
            return (0f, null);
        }

        using (var doc = JsonFiles.Read(path, MaxFileBytes, 8, "a reward head file"))
        {
            var root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
            {
                throw new InputException(path, null, null, "expected a JSON object");
            }

            if (!root.TryGetProperty("format", out var format) || format.ValueKind != JsonValueKind.String || format.GetString() != Format)
            {
                throw new InputException(path, null, "format", $"must be \"{Format}\"");
            }

            double bias = Number(root, "bias", path) ?? throw new InputException(path, null, "bias", "is missing");
            if (!float.IsFinite((float)bias))
            {
                throw new InputException(path, null, "bias", $"must be a finite float, got {bias}");
            }

            double? mean = Number(root, "reward_mean", path), std = Number(root, "reward_std", path), count = Number(root, "calibration_count", path);
            if (mean is null && std is null && count is null)
            {
                return ((float)bias, null);
            }

            if (mean is null || std is null || count is null)
            {
                throw new InputException(path, null, mean is null ? "reward_mean" : std is null ? "reward_std" : "calibration_count", "is missing; 'reward_mean', 'reward_std' and 'calibration_count' go together");
            }

            if (!(std >= 0))
            {
                throw new InputException(path, null, "reward_std", $"must be ≥ 0, got {std}");
            }

            if (!(count >= 0 && count <= long.MaxValue) || count != Math.Floor(count.Value))
            {
                throw new InputException(path, null, "calibration_count", $"must be a whole number ≥ 0, got {count}");
            }

            return ((float)bias, new RewardStatistics(mean.Value, std.Value, (long)count.Value));
        }
    }

    private static double? Number(JsonElement root, string field, string path)
    {
        if (!root.TryGetProperty(field, out var v) || v.ValueKind == JsonValueKind.Null)
        {
            return null;
        }

        return v.ValueKind == JsonValueKind.Number && v.TryGetDouble(out double value) && double.IsFinite(value)
            ? value
            : throw new InputException(path, null, field, $"must be a finite number, got {(v.GetRawText() is { Length: > 80 } raw ? raw[..77] + "..." : v.GetRawText())}");
    }
}
