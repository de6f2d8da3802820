using System.Diagnostics;
using System.Globalization;
using Engine.Training;
using Spectre.Console;

namespace Engine.Cli.Commands;

/// <summary>
/// Progress of the RL trainers on the console: plain lines (every <c>log_interval</c> steps, with an ETA) when the output
/// is redirected, a Spectre bar otherwise. Each trainer gives its own progress type and its one-line summary of it.
/// </summary>
internal static class RlProgressConsole
{
    /// <summary>Runs <paramref name="run"/> with its progress shown under <paramref name="name"/>.</summary>
    public static TrainingResult Run<TProgress>(
        Func<IProgress<TProgress>, CancellationToken, TrainingResult> run, string name, int logInterval,
        Func<TProgress, (int Step, int Total)> position, Func<TProgress, string> line, CancellationToken token)
    {
        if (Console.IsOutputRedirected)
        {
            var clock = Stopwatch.StartNew();
            int first = -1;
            return run(new InlineProgress<TProgress>(p =>
            {
                var (step, total) = position(p);
                first = first < 0 ? step - 1 : first;
                if (step % logInterval == 0 || step == total)
                {
                    double eta = clock.Elapsed.TotalSeconds / Math.Max(1, step - first) * Math.Max(0, total - step);
                    Console.Out.WriteLine(line(p) + string.Create(CultureInfo.InvariantCulture, $"  eta {TimeSpan.FromSeconds(eta):hh\\:mm\\:ss}"));
                }
            }), token);
        }

        return AnsiConsole.Progress()
            .AutoClear(false)
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new RemainingTimeColumn())
            .Start(ctx =>
            {
                var task = ctx.AddTask(name);
                return run(new InlineProgress<TProgress>(p =>
                {
                    (int step, int total) = position(p);
                    task.MaxValue = total;
                    task.Value = step;
                    task.Description = Markup.Escape($"{name} {line(p)}");
                }), token);
            });
    }
}
