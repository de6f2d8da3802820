using System.Text.Json;
using Engine.Training.Data;
using Engine.Training.Rl.Rewards;

namespace Engine.Tests.Rl.Rewards;

/// <summary>Hand-made samples: a prompt row read from <c>prompts.jsonl</c> at a line, with columns, and one completion.</summary>
internal static class RewardSamples
{
    public static PromptExample Row(long line = 3, string? columnsJson = null) =>
        new(TextOrChat.FromText("Q?"))
        {
            Source = "prompts.jsonl",
            Line = line,
            Columns = columnsJson is null
                ? new Dictionary<string, JsonElement>()
                : JsonSerializer.Deserialize<Dictionary<string, JsonElement>>(columnsJson)!,
        };

    public static RewardSample Of(string completion, Example? row = null, int[]? completionIds = null, bool endedWithEos = true) =>
        new(row ?? Row(), "Q?", [1, 2], completion, completionIds ?? [5, 6, 7], endedWithEos);

    /// <summary>One function's scores of <paramref name="samples"/>.</summary>
    public static float[] Scores(IRewardFunction function, params RewardSample[] samples)
    {
        var scores = new float[samples.Length];
        function.Score(samples, scores);
        return scores;
    }
}
