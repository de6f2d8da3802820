using Engine.Models;
using Engine.Training.Data;
using Engine.Training.Options;
using Engine.Training.Rl.Grpo;
using Engine.Training.Rl.Rewards;

namespace Engine.Tests.Rl.Grpo;

/// <summary>
/// A tiny GRPO problem on <see cref="PpoHarness"/>'s policy (16 tokens, context 12): prompts of 2–4 tokens read from a
/// pretend prompts.jsonl (line i + 1), completions of up to 4 tokens, and rewards written as C# delegates.
/// </summary>
internal static class GrpoHarness
{
    public const string PromptsFile = "prompts.jsonl";

    public static List<GrpoPrompt> Prompts(int count, int seed) =>
        [.. PpoHarness.Prompts(count, seed).Select((ids, i) => new GrpoPrompt(new PromptExample(TextOrChat.FromText($"p{i}")) { Source = PromptsFile, Line = i + 1 }, ids))];

    /// <summary>Ids as text, "3 7 1".</summary>
    public static string Decode(int[] ids) => string.Join(' ', ids);

    /// <summary>1 when the completion starts with <see cref="PpoHarness.Rewarded"/>, else 0.</summary>
    public static RewardSet FirstTokenReward() =>
        new([new DelegateReward("first_token", s => s.CompletionIds.Length > 0 && s.CompletionIds[0] == PpoHarness.Rewarded ? 1f : 0f)]);

    public static GrpoOptions Options(string output, int steps) => new()
    {
        OutputDirectory = output,
        MaxSteps = steps,
        BatchSize = 8,
        NumGenerations = 4,
        LearningRate = 3e-3,
        Schedule = LearningRateSchedule.Constant,
        MaxCompletionLength = 4,
        MaxLength = PpoHarness.Context,
        Optimizer = new AdamWSettings { WeightDecay = 0f, MaxGradNorm = 1f },
        CheckpointInterval = 0,
        Seed = 5,
    };
}

/// <summary>A logger that keeps every message, for asserting on warnings.</summary>
internal sealed class ListLogger : Microsoft.Extensions.Logging.ILogger
{
    public List<string> Messages { get; } = [];

    public IDisposable? BeginScope<TState>(TState state)
        where TState : notnull => null;

    public bool IsEnabled(Microsoft.Extensions.Logging.LogLevel logLevel) => true;

    public void Log<TState>(
        Microsoft.Extensions.Logging.LogLevel logLevel, Microsoft.Extensions.Logging.EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
    {
        ArgumentNullException.ThrowIfNull(formatter);
        Messages.Add(formatter(state, exception));
    }
}
