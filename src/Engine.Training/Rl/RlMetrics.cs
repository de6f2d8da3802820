using Engine.Training.Checkpoints;

namespace Engine.Training.Rl;

/// <summary>The metrics of the RL trainers' steps, averaged over <c>log_interval</c> steps in the run state (so a resumed run logs the same lines).</summary>
internal static class RlMetrics
{
    /// <summary>
    /// Adds step <paramref name="step"/>'s metrics to the pending sums; on a logging step (every
    /// <paramref name="logInterval"/>-th, and the last) returns the line of their means with <c>step</c> set and clears
    /// them, else null. The line starts with <c>step</c>, then <paramref name="first"/>.
    /// </summary>
    public static Dictionary<string, double>? Accumulate(
        TrainerState state, Dictionary<string, double> stepMetrics, int step, int logInterval, params (string Name, double Value)[] first)
    {
        foreach (var (k, v) in stepMetrics)
        {
            state.PendingMetrics[k] = state.PendingMetrics.GetValueOrDefault(k) + v;
        }

        state.PendingSteps++;
        if (step % logInterval != 0 && step != state.TotalSteps)
        {
            return null;
        }

        var line = new Dictionary<string, double>(StringComparer.Ordinal) { ["step"] = step };
        foreach (var (k, v) in first)
        {
            line[k] = v;
        }

        foreach (var (k, v) in state.PendingMetrics)
        {
            line[k] = v / state.PendingSteps;
        }

        state.PendingMetrics.Clear();
        state.PendingSteps = 0;
        state.PendingTokens = 0;
        return line;
    }
}
