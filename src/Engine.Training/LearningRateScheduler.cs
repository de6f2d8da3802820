using Engine.Training.Options;

namespace Engine.Training;

/// <summary>
/// The learning rate of each optimizer step (1-based s of S), as llm.c computes it: linear warmup peak·s/W for s ≤ W,
/// then with p = (s − 1 − W)/(S − W) and floor m = ratio·peak: constant peak; linear peak − (peak − m)·p; cosine
/// m + (peak − m)·½(1 + cos πp). The first step after warmup runs at the peak (so does a one-step run), the last one just
/// above m.
/// </summary>
public static class LearningRateScheduler
{
    /// <summary>The rate at <paramref name="step"/> of <paramref name="totalSteps"/> under <paramref name="options"/>.</summary>
    public static double At(TrainerOptions options, int step, int totalSteps)
    {
        ArgumentNullException.ThrowIfNull(options);
        return At(options.Schedule, options.LearningRate, options.WarmupSteps, options.MinLearningRateRatio, step, totalSteps);
    }

    /// <summary>The rate at <paramref name="step"/> (1-based) of <paramref name="totalSteps"/>.</summary>
    public static double At(LearningRateSchedule schedule, double peak, int warmupSteps, double minRatio, int step, int totalSteps)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(step);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(totalSteps);
        if (step <= warmupSteps)
        {
            return peak * step / warmupSteps;
        }

        if (schedule == LearningRateSchedule.Constant || totalSteps <= warmupSteps)
        {
            return peak;
        }

        double progress = Math.Min(1.0, (double)(step - 1 - warmupSteps) / (totalSteps - warmupSteps));
        double floor = minRatio * peak;
        return schedule switch
        {
            LearningRateSchedule.Linear => peak - ((peak - floor) * progress),
            LearningRateSchedule.Cosine => floor + ((peak - floor) * 0.5 * (1 + Math.Cos(Math.PI * progress))),
            _ => throw new ArgumentOutOfRangeException(nameof(schedule), schedule, "unknown schedule"),
        };
    }
}
