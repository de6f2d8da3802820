using System.Text.Json;
using Engine.Models;
using Engine.Training;
using Engine.Training.Data;

namespace Engine.Tests.Rl;

/// <summary>What the RL trainer tests compare between runs: a model's parameters and a run's metrics.</summary>
internal static class RlRunFiles
{
    /// <summary>Every parameter of <paramref name="model"/>, on the host.</summary>
    public static float[] Snapshot(Transformer model)
    {
        var host = new float[model.Parameters.ElementCount];
        model.Backend.CopyToHost<float>(model.Parameters.Values, host);
        return host;
    }

    /// <summary>The lines of <c>metrics.jsonl</c> in <paramref name="directory"/> without the wall-clock fields.</summary>
    public static List<string> Metrics(string directory) =>
        [.. File.ReadAllLines(Path.Combine(directory, Trainer<SequenceBatch>.MetricsFile)).Select(line =>
        {
            var map = JsonSerializer.Deserialize<Dictionary<string, JsonElement>>(line)!;
            foreach (string key in map.Keys.Where(k => k.StartsWith("time/", StringComparison.Ordinal)).ToList())
            {
                map.Remove(key);
            }

            return JsonSerializer.Serialize(map);
        })];
}
