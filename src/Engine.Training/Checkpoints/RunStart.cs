using Engine.Core;
using Engine.Core.Numerics;
using Engine.Training.Options;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.Logging;

namespace Engine.Training.Checkpoints;

/// <summary>
/// How every training loop begins: from the newest complete checkpoint of its output directory when resuming (the
/// models restored by the caller, the random stream and metrics file rewound to the checkpoint's step), or fresh into
/// an output directory that holds no checkpoint of an earlier run.
/// </summary>
internal static class RunStart
{
    /// <summary>
    /// Returns the run's state and random stream, and the checkpoint resumed from (null for a fresh run, whose state has
    /// its first shuffle seed drawn and whose metrics file starts empty; an earlier one is kept as a backup).
    /// <paramref name="restore"/> loads the checkpoint's weights and whatever else the caller keeps in it. Temporaries of
    /// an interrupted save are removed first.
    /// </summary>
    /// <exception cref="InputException">The directory holds checkpoints but resume is off, or none of them is complete.</exception>
    public static (TrainerState State, RandomStream Rng, Checkpoint? Resumed) Begin(
        CheckpointStore store, TrainerOptions options, string metricsPath, ILogger logger, Action<Checkpoint> restore)
    {
        var swept = store.SweepTemporaries();
        if (swept.Count > 0)
        {
            logger.LogWarning("removed {Count} temporary file(s) left by an interrupted save: {Names}", swept.Count, string.Join(", ", swept.Select(Path.GetFileName)));
        }

        var resume = options.Resume ? store.FindLatest() : null;
        if (resume is not null)
        {
            restore(resume);
            var state = resume.State;
            var rng = new RandomStream(0) { State = (state.RngState[0], state.RngState[1], state.RngState[2], state.RngState[3]) };
            RewindMetrics(metricsPath, state.GlobalStep, logger);
            logger.LogInformation("resuming from {Checkpoint} at step {Step} of {Total}", resume.Path, state.GlobalStep, state.TotalSteps);
            return (state, rng, resume);
        }

        if (store.List().Count > 0)
        {
            throw new InputException(store.Directory, null, null, options.Resume
                ? "no complete checkpoint to resume from (each is named in a warning above, with what is wrong)"
                : "holds checkpoints of an earlier run; pass --resume (resume: true in a config) to continue it, or choose another --out directory");
        }

        var fresh = new RandomStream(options.Seed);
        var first = new TrainerState { ShuffleSeed = fresh.NextUInt64() };
        if (File.Exists(metricsPath) && new FileInfo(metricsPath).Length > 0)
        {
            logger.LogWarning("{Metrics} of an earlier run (no checkpoint to continue from) is moved to {Backup}; this run starts a new one", metricsPath, Backup(metricsPath, move: true));
        }

        File.WriteAllText(metricsPath, "");
        return (first, fresh, null);
    }

    /// <summary>
    /// Rewinds <c>metrics.jsonl</c> to the checkpoint's <paramref name="step"/>: every line of a step up to it is kept
    /// (lines after it were written by the interrupted run after its last checkpoint; the resumed run writes them
    /// again). A line that is not a JSON object (torn by a crash, or written over) is dropped with a warning naming it,
    /// and never ends the reading. When anything is dropped, the file as it was is kept as a backup first.
    /// </summary>
    internal static void RewindMetrics(string path, int step, ILogger logger)
    {
        if (!File.Exists(path))
        {
            File.WriteAllText(path, "");
            return;
        }

        var kept = new List<string>();
        int later = 0, damaged = 0, number = 0;
        foreach (string line in File.ReadLines(path))
        {
            number++;
            switch (StepOf(line))
            {
                case null:
                    damaged++;
                    logger.LogWarning("{File}:{Line}: not a JSON metrics object; dropped", path, number);
                    break;
                case double s when s > step:
                    later++;
                    break;
                default:
                    kept.Add(line);
                    break;
            }
        }

        if (later == 0 && damaged == 0)
        {
            return;
        }

        string backup = Backup(path, move: false);
        string temp = $"{path}.{Guid.NewGuid():N}.tmp";
        File.WriteAllLines(temp, kept, new UTF8Encoding(false));
        File.Move(temp, path, overwrite: true);
        logger.LogWarning(
            "{File}: kept {Kept} lines up to step {Step}, dropped {Later} after it (written again by this run) and {Damaged} damaged; the file as it was is {Backup}",
            path, kept.Count, step, later, damaged, backup);
    }

    // The step of a metrics line, +0 for an object without one, null for anything that is not a JSON object.
    private static double? StepOf(string line)
    {
        try
        {
            using var doc = JsonDocument.Parse(line);
            if (doc.RootElement.ValueKind != JsonValueKind.Object)
            {
                return null;
            }

            return !doc.RootElement.TryGetProperty("step", out var s) ? 0
                : s.ValueKind == JsonValueKind.Number ? s.GetDouble()
                : null;
        }
        catch (JsonException)
        {
            return null;
        }
    }

    // metrics.jsonl.bak-<UTC time> (with -2, -3, ... when taken within one second), copied or moved there.
    private static string Backup(string path, bool move)
    {
        string stem = $"{path}.bak-{DateTime.UtcNow:yyyyMMdd'T'HHmmss'Z'}";
        string backup = stem;
        for (int n = 2; File.Exists(backup); n++)
        {
            backup = $"{stem}-{n}";
        }

        if (move)
        {
            File.Move(path, backup);
        }
        else
        {
            File.Copy(path, backup);
        }

        return backup;
    }
}
