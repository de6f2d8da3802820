namespace Engine.Training;

/// <summary>How a run ended.</summary>
public enum TrainingStatus
{
    /// <summary>Every step ran.</summary>
    Completed,
    /// <summary>The cancellation token fired; a checkpoint of the last completed step was written.</summary>
    Cancelled,
}

/// <summary>One report of a running trainer, sent after every step and every evaluation.</summary>
/// <param name="Step">Steps completed.</param>
/// <param name="TotalSteps">Steps the run takes.</param>
/// <param name="Epoch">Fractional epoch: completed epochs plus the share of the current one consumed.</param>
/// <param name="Loss">This step's loss (NaN for a skipped step: a non-finite value, or nothing to learn from).</param>
/// <param name="LearningRate">This step's learning rate.</param>
/// <param name="GradNorm">This step's gradient norm before clipping.</param>
/// <param name="TokensPerSecond">Throughput since the run (or the resume) started.</param>
/// <param name="EvalLoss">The latest validation loss, if any.</param>
/// <param name="SkippedSteps">Steps whose update was dropped so far (this one included when it was).</param>
public sealed record TrainingProgress(
    int Step, int TotalSteps, double Epoch, double Loss, double LearningRate, double GradNorm, double TokensPerSecond, double? EvalLoss, int SkippedSteps = 0);

/// <summary>The summary of a run.</summary>
/// <param name="Status">Completed or cancelled.</param>
/// <param name="Steps">Steps completed (skipped ones included).</param>
/// <param name="SkippedSteps">Steps whose update was dropped: a non-finite loss or gradient norm, or no micro-batch that counts (all weigh 0).</param>
/// <param name="TrainLoss">The loss of the last metrics line (mean over its steps).</param>
/// <param name="EvalLoss">The last validation loss, if a validation set was given.</param>
/// <param name="TokensSeen">Tokens processed, over the whole run including before a resume.</param>
/// <param name="Elapsed">Wall time of this call.</param>
/// <param name="LastCheckpoint">The newest complete checkpoint, if any.</param>
/// <param name="ResumedFrom">The checkpoint this call resumed from, if any.</param>
public sealed record TrainingResult(
    TrainingStatus Status, int Steps, int SkippedSteps, double TrainLoss, double? EvalLoss, long TokensSeen, TimeSpan Elapsed,
    string? LastCheckpoint, string? ResumedFrom);

/// <summary>
/// A step's loss or gradient norm was NaN or infinite under <see cref="Options.NanPolicy.Stop"/>. The parameters and
/// the checkpoints are those of the last good step.
/// </summary>
public sealed class TrainingDivergedException : Engine.Core.InputException
{
    /// <summary>Creates an exception with no details.</summary>
    public TrainingDivergedException()
    {
    }

    /// <summary>Creates an exception with a message.</summary>
    public TrainingDivergedException(string message)
        : base(message)
    {
    }

    /// <summary>Creates an exception with a message and its cause.</summary>
    public TrainingDivergedException(string message, Exception innerException)
        : base(message, innerException)
    {
    }

    /// <summary>Creates an exception for <paramref name="step"/>.</summary>
    public TrainingDivergedException(int step, string message, string? lastCheckpoint)
        : base(message)
    {
        Step = step;
        LastCheckpoint = lastCheckpoint;
    }

    /// <summary>The step whose loss or gradient norm was not finite.</summary>
    public int Step { get; }

    /// <summary>The newest complete checkpoint, if any.</summary>
    public string? LastCheckpoint { get; }
}
