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
    /// its first shuffle seed drawn and whose metrics file is emptied). <paramref name="restore"/> loads the
    /// checkpoint's weights and whatever else the caller keeps in it.
    /// </summary>
    /// <exception cref="InvalidOperationException">The directory holds checkpoints but resume is off, or none of them is complete.</exception>
    public static (TrainerState State, RandomStream Rng, Checkpoint? Resumed) Begin(
        CheckpointStore store, TrainerOptions options, string metricsPath, ILogger logger, Action<Checkpoint> restore)
    {
        var resume = options.Resume ? store.FindLatest() : null;
        if (resume is not null)
        {
            restore(resume);
            var state = resume.State;
            var rng = new RandomStream(0) { State = (state.RngState[0], state.RngState[1], state.RngState[2], state.RngState[3]) };
            TruncateMetrics(metricsPath, state.GlobalStep);
            logger.LogInformation("resuming from {Checkpoint} at step {Step} of {Total}", resume.Path, state.GlobalStep, state.TotalSteps);
            return (state, rng, resume);
        }

        if (store.List().Count > 0)
        {
            throw new Engine.Core.InputException(options.Resume
                ? $"{store.Directory}: no complete checkpoint to resume from (see the warnings logged for each)"
                : $"{store.Directory} holds checkpoints of an earlier run; set resume to continue it, or choose another output_directory");
        }

        var fresh = new RandomStream(options.Seed);
        var first = new TrainerState { ShuffleSeed = fresh.NextUInt64() };
        File.WriteAllText(metricsPath, "");
        return (first, fresh, null);
    }

    // Lines past the checkpoint's step were written by the interrupted run after its last checkpoint; the resumed run
    // writes them again. A torn last line is dropped too.
    internal static void TruncateMetrics(string path, int step)
    {
        if (!File.Exists(path))
        {
            File.WriteAllText(path, "");
            return;
        }

        var kept = new List<string>();
        foreach (string line in File.ReadLines(path))
        {
            try
            {
                using var doc = JsonDocument.Parse(line);
                if (doc.RootElement.TryGetProperty("step", out var s) && s.GetDouble() <= step)
                {
                    kept.Add(line);
                }
            }
            catch (JsonException)
            {
                break;
            }
        }

        string temp = $"{path}.{Guid.NewGuid():N}.tmp";
        File.WriteAllLines(temp, kept, new UTF8Encoding(false));
        File.Move(temp, path, overwrite: true);
    }
}
