using System.Globalization;

namespace Engine.Training.Options;

/// <summary>What a run's options and data add up to before it starts, and the warning a too-short run deserves.</summary>
public static class TrainingPlan
{
    /// <summary>Runs with fewer optimizer steps than this (derived from epochs, not set by max_steps) are warned about.</summary>
    public const int FewSteps = 20;

    /// <summary>
    /// The warning for a run of <paramref name="totalSteps"/> steps that <c>epochs</c> passes over
    /// <paramref name="batchesPerEpoch"/> micro-batches gave (null when max_steps was set or the run is long enough), e.g.
    /// <c>this run is 3 optimizer steps (1 epoch of 3 batches of 4 rows, ...); ... raise epochs or max_steps (--set epochs=7)</c>.
    /// </summary>
    public static string? FewStepsWarning(TrainerOptions options, int totalSteps, int batchesPerEpoch, string unit = "batch")
    {
        ArgumentNullException.ThrowIfNull(options);
        if (options.MaxSteps > 0 || totalSteps >= FewSteps)
        {
            return null;
        }

        int rowsPerStep = options.BatchSize * options.GradientAccumulationSteps;
        int epochs = (int)Math.Ceiling((double)FewSteps * options.Epochs / Math.Max(1, totalSteps));
        return string.Create(
            CultureInfo.InvariantCulture,
            $"this run is {totalSteps} optimizer step{(totalSteps == 1 ? "" : "s")} ({options.Epochs} epoch{(options.Epochs == 1 ? "" : "s")} of {batchesPerEpoch} {unit}{(batchesPerEpoch == 1 ? "" : unit.EndsWith('h') ? "es" : "s")} of {options.BatchSize} rows, {rowsPerStep} rows and up to {(long)rowsPerStep * options.MaxLength:N0} tokens per step); " +
            $"too few for a model to learn much: raise epochs or max_steps (--set epochs={epochs})");
    }
}
