using Engine.Training.Options;
using Microsoft.Extensions.Logging;

namespace Engine.Training.Checkpoints;

/// <summary>
/// A training loop's newest checkpoint and the step it holds, shared by <see cref="Trainer{TBatch}"/> and the PPO
/// trainer: writes and logs each save, saves once more on cancellation only when steps were taken since the last one,
/// and names the last good checkpoint when a run diverges.
/// </summary>
internal sealed class CheckpointCursor(string? resumedFrom, int step, ILogger logger, Func<string> write)
{
    private int savedStep = step;

    /// <summary>The newest checkpoint written or resumed from, or null.</summary>
    public string? Last { get; private set; } = resumedFrom;

    /// <summary>Writes a checkpoint of <paramref name="step"/> and returns its directory.</summary>
    public string Save(int step)
    {
        Last = write();
        savedStep = step;
        logger.LogInformation("saved {Checkpoint}", Last);
        return Last;
    }

    /// <summary>On Ctrl+C: saves <paramref name="step"/> unless it is already saved, and says where the run stands.</summary>
    public void Cancelled(int step)
    {
        if (step > savedStep)
        {
            Save(step);
        }

        logger.LogWarning("cancelled at step {Step}; checkpoint {Checkpoint}", step, Last);
    }

    /// <summary>The error of a run stopped by a non-finite value at <paramref name="step"/> (nan_policy: stop), logged.</summary>
    public TrainingDivergedException Diverged(int step, string fault)
    {
        string message = $"step {step}: {fault}; training stopped (nan_policy: stop). " +
            (Last is null ? "No checkpoint was written yet." : $"The last good checkpoint is {Last}.");
        logger.LogError("{Message}", message);
        return new TrainingDivergedException(step, message, Last);
    }

    /// <summary>
    /// An RL update at <paramref name="step"/> with a non-finite value: throws <see cref="Diverged"/> under
    /// <see cref="NanPolicy.Stop"/>, else counts the update as skipped in <paramref name="state"/> and warns.
    /// </summary>
    public void SkipOrStop(int step, string fault, NanPolicy policy, TrainerState state)
    {
        if (policy == NanPolicy.Stop)
        {
            throw Diverged(step, fault);
        }

        state.SkippedSteps++;
        logger.LogWarning("step {Step}: {Fault}; the update with a non-finite value was skipped ({Skipped} so far)", step, fault, state.SkippedSteps);
    }
}
