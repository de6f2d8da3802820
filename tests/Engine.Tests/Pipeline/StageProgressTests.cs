using System.Text.RegularExpressions;
using Engine.Training;
using Engine.Training.Pipeline;
using Xunit;

namespace Engine.Tests.Pipeline;

public sealed partial class StageProgressTests
{
    [Fact]
    public void Lines_give_window_means_without_skipped_steps_and_the_summary_repeats_the_last()
    {
        var lines = new List<string>();
        var progress = new StageProgress("online_dpo", lines.Add);
        int skipped = 0;
        for (int step = 1; step <= 10; step++)
        {
            // Steps 4, 9 and 10 have nothing to learn from: the trainer reports them with a NaN loss and counts them.
            bool skip = step is 4 or 9 or 10;
            skipped += skip ? 1 : 0;
            progress.Report(new TrainingProgress(step, 10, 0, skip ? double.NaN : step / 10.0, 1e-3, 1, 100, null, skipped));
        }

        progress.Finish(new TrainingResult(TrainingStatus.Completed, 10, 3, 0.75, null, 1000, TimeSpan.FromSeconds(2), null, null));
        Assert.Equal(
        [
            "online_dpo: step 1/10 loss 0.1000",
            "online_dpo: step 2/10 loss 0.2000 (step 2)",
            "online_dpo: step 4/10 loss 0.3000 (mean of steps 3–4), 1 skipped (update dropped: nothing to learn from)",
            "online_dpo: step 6/10 loss 0.5500 (mean of steps 5–6), 1 skipped (update dropped: nothing to learn from)",
            "online_dpo: step 8/10 loss 0.7500 (mean of steps 7–8), 1 skipped (update dropped: nothing to learn from)",
            "online_dpo: step 10/10 loss - (steps 9–10 skipped), 3 skipped (update dropped: nothing to learn from)",
            "online_dpo: 10 steps, 3 skipped (update dropped: nothing to learn from), loss - (steps 9–10 skipped), 2.0 s",
        ],
            lines);
        Assert.Equal(LossOf(lines[^2]), LossOf(lines[^1]));
    }

    [Fact]
    public void The_summary_repeats_the_last_lines_mean_loss()
    {
        var lines = new List<string>();
        var progress = new StageProgress("dpo", lines.Add);
        for (int step = 1; step <= 100; step++)
        {
            progress.Report(new TrainingProgress(step, 100, 0, step == 100 ? double.NaN : 0.5, 1e-3, 1, 100, null, step == 100 ? 1 : 0));
        }

        progress.Finish(new TrainingResult(TrainingStatus.Completed, 100, 1, 0.6871, null, 1000, TimeSpan.FromSeconds(2), null, null));
        Assert.Equal(7, lines.Count);
        Assert.StartsWith("dpo: step 100/100 loss 0.5000 (mean of steps 81–100), 1 skipped", lines[^2], StringComparison.Ordinal);
        Assert.Equal("0.5000", LossOf(lines[^1]));

        // A stage resumed at its end reports no step: its summary gives the loss its metrics last logged.
        var resumed = new List<string>();
        new StageProgress("sft", resumed.Add).Finish(new TrainingResult(TrainingStatus.Completed, 200, 0, 0.25, null, 0, TimeSpan.Zero, null, "sft/checkpoint-200"));
        Assert.Equal(["sft: 200 steps, loss 0.2500, 0.0 s (resumed from sft/checkpoint-200)"], resumed);
    }

    private static string LossOf(string line) => LossPattern().Match(line).Groups[1].Value;

    [GeneratedRegex(@"loss (\S+)")]
    private static partial Regex LossPattern();
}
