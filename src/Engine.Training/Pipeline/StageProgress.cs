using System.Globalization;

namespace Engine.Training.Pipeline;

/// <summary>
/// The console lines of one pipeline stage: about five progress lines (the first step, every fifth of the run, the
/// last step) and a summary line. Each progress line gives the mean loss of the steps since the previous line, skipped
/// steps left out (their update was dropped, so their loss is not a loss the model was trained on), and the skipped
/// steps so far; the summary line repeats the last line's loss, so the two always agree (a stage resumed at its end
/// reports no step, and its summary gives the last logged loss).
/// </summary>
internal sealed class StageProgress(string stage, Action<string> say)
{
    private int every, first, from, skipped, counted;
    private double sum;

    /// <summary>The mean loss of the last progress line (NaN before the first, or when all its steps were skipped).</summary>
    public double LastLoss { get; private set; } = double.NaN;

    /// <summary>The steps the last progress line's loss is the mean of, as "81–100".</summary>
    public string LastWindow { get; private set; } = "";

    /// <summary>Takes one step's report; says a line when the step is the first, a fifth of the run, or the last.</summary>
    public void Report(TrainingProgress p)
    {
        ArgumentNullException.ThrowIfNull(p);
        if (every == 0)
        {
            every = Math.Max(1, p.TotalSteps / 5);
            first = from = p.Step;
        }

        bool skippedNow = p.SkippedSteps > skipped || !double.IsFinite(p.Loss);
        skipped = p.SkippedSteps;
        if (!skippedNow)
        {
            sum += p.Loss;
            counted++;
        }

        // The first step too, so a long stage shows at once that it is under way.
        if (p.Step % every != 0 && p.Step != p.TotalSteps && p.Step != first)
        {
            return;
        }

        LastLoss = counted > 0 ? sum / counted : double.NaN;
        LastWindow = p.Step == from ? $"{p.Step}" : $"{from}–{p.Step}";
        say(string.Create(
            CultureInfo.InvariantCulture,
            $"{stage}: step {p.Step}/{p.TotalSteps} loss {Loss(LastLoss, p.Step == first ? "" : LastWindow)}{(p.EvalLoss is double e ? $" eval {e:F4}" : "")}{Skipped(skipped)}"));
        from = p.Step + 1;
        sum = 0;
        counted = 0;
    }

    /// <summary>The stage's summary line: steps, skipped steps, the last progress line's loss, wall time.</summary>
    public void Finish(TrainingResult result)
    {
        ArgumentNullException.ThrowIfNull(result);
        // A stage resumed at its last step reports no step in this call: its loss is the last one its metrics logged.
        string loss = LastWindow.Length == 0 ? Loss(result.TrainLoss, "") : Loss(LastLoss, LastWindow);
        say(string.Create(
            CultureInfo.InvariantCulture,
            $"{stage}: {result.Steps} steps{Skipped(result.SkippedSteps)}, loss {loss}, {result.Elapsed.TotalSeconds:F1} s{(result.ResumedFrom is null ? "" : $" (resumed from {result.ResumedFrom})")}"));
    }

    // "0.5000 (mean of steps 81–100)", "0.5000 (step 7)", or "- (steps 81–100 skipped)" when no step of the window counted.
    private static string Loss(double loss, string window)
    {
        bool several = window.Contains('–', StringComparison.Ordinal);
        if (!double.IsFinite(loss))
        {
            return window.Length == 0 ? "-" : $"- ({(several ? "steps" : "step")} {window} skipped)";
        }

        string value = loss.ToString("F4", CultureInfo.InvariantCulture);
        return window.Length == 0 ? value : $"{value} ({(several ? "mean of steps" : "step")} {window})";
    }

    private static string Skipped(int count) => count == 0 ? "" : string.Create(CultureInfo.InvariantCulture, $", {count} skipped (update dropped: nothing to learn from)");
}
