using System.Globalization;
using Engine.Core;
using Engine.Training.Checkpoints;
using Engine.Training.Rl.Rewards;
using Microsoft.Extensions.Logging;

namespace Engine.Training.Rl.Grpo;

/// <summary>
/// The reward functions of a run as its checkpoints record them (<see cref="TrainerState.Rewards"/>), so that a resumed
/// run scores with the rewards it started with and its <c>rewards/&lt;name&gt;/mean</c> metrics keep their names.
/// </summary>
internal static class CheckpointedRewards
{
    /// <summary>The names and weights of <paramref name="rewards"/>, in order.</summary>
    public static List<NamedWeight> Of(RewardSet rewards) =>
        [.. rewards.Functions.Select((f, i) => new NamedWeight(f.Name, rewards.Weights[i]))];

    /// <summary>
    /// Called before <paramref name="checkpoint"/> is restored: refuses to resume with rewards named otherwise, or in another order, than the checkpoint's run; warns when only
    /// their weights differ. A checkpoint that records no rewards (written before they were recorded) is not checked.
    /// </summary>
    /// <exception cref="InputException">The names differ (names the checkpoint's state file and both lists).</exception>
    public static void CheckResumed(Checkpoint checkpoint, RewardSet rewards, ILogger logger)
    {
        if (checkpoint.State.Rewards is not { } saved)
        {
            return;
        }

        var now = Of(rewards);
        if (!saved.Select(r => r.Name).SequenceEqual(now.Select(r => r.Name), StringComparer.Ordinal))
        {
            throw new InputException(Path.Combine(checkpoint.Path, CheckpointStore.StateFile), null, "rewards",
                $"the run had the rewards {Names(saved)}, this one has {Names(now)}; resume with the same --reward list, in order (a reward without NAME= is named after its kind: format, format_2, …)");
        }

        if (!saved.SequenceEqual(now))
        {
            logger.LogWarning("resuming with reward weights that differ from the checkpoint's run ({Saved} → {Now}); the run will not match an uninterrupted one",
                Weights(saved), Weights(now));
        }
    }

    private static string Names(List<NamedWeight> rewards) => string.Join(", ", rewards.Select(r => r.Name));

    private static string Weights(List<NamedWeight> rewards) =>
        string.Join(", ", rewards.Select(r => string.Create(CultureInfo.InvariantCulture, $"{r.Name} {r.Weight:R}")));
}
