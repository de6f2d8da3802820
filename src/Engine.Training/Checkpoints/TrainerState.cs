using System.Text.Json;
using System.Text.Json.Serialization;
using Engine.Core;
using Engine.Core.IO;

namespace Engine.Training.Checkpoints;

/// <summary>
/// Everything besides the weights and optimizer moments that a run needs to continue to the bits an uninterrupted run
/// reaches: step counters, the schedule position, the data position (epoch, index in that epoch's shuffled order), the
/// random state, the logging accumulators, the options and the tail of the metrics. Saved as <c>trainer_state.json</c>.
/// </summary>
public sealed class TrainerState
{
    /// <summary>The layout version of this file.</summary>
    public const int CurrentFormat = 1;

    internal static readonly JsonSerializerOptions Json = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        WriteIndented = true,
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
    };

    /// <summary>Layout version (<see cref="CurrentFormat"/>).</summary>
    public int Format { get; set; } = CurrentFormat;

    /// <summary>Steps completed, skipped ones included (the schedule position).</summary>
    public int GlobalStep { get; set; }

    /// <summary>Steps the run will take in all.</summary>
    public int TotalSteps { get; set; }

    /// <summary>AdamW updates applied (its bias-correction step count; excludes skipped steps).</summary>
    public int OptimizerSteps { get; set; }

    /// <summary>Steps dropped for a non-finite loss or gradient norm, or because every micro-batch weighed 0.</summary>
    public int SkippedSteps { get; set; }

    /// <summary>The current epoch, 0-based.</summary>
    public int Epoch { get; set; }

    /// <summary>Index of the next micro-batch in the current epoch's order.</summary>
    public int BatchIndex { get; set; }

    /// <summary>Micro-batches in the current epoch.</summary>
    public int BatchesInEpoch { get; set; }

    /// <summary>Seed of the current epoch's order.</summary>
    public ulong ShuffleSeed { get; set; }

    /// <summary>The trainer's xoshiro256** state (epoch seeds and per-step dropout seeds are drawn from it).</summary>
    public ulong[] RngState { get; set; } = new ulong[4];

    /// <summary>Tokens processed so far.</summary>
    public long TokensSeen { get; set; }

    /// <summary>Sum of step losses since the last metrics line.</summary>
    public double PendingLoss { get; set; }

    /// <summary>Steps since the last metrics line (skipped ones not counted).</summary>
    public int PendingSteps { get; set; }

    /// <summary>Tokens since the last metrics line.</summary>
    public long PendingTokens { get; set; }

    /// <summary>Sums of the objective's metrics since the last metrics line.</summary>
    public Dictionary<string, double> PendingMetrics { get; set; } = [];

    /// <summary>The objective's own state (<see cref="Objectives.IStatefulObjective"/>, e.g. BCO's running reward baseline); empty for most.</summary>
    public Dictionary<string, double> ObjectiveState { get; set; } = [];

    /// <summary>The last validation loss, if any.</summary>
    public double? LastEvalLoss { get; set; }

    /// <summary>The options of the run, as <see cref="Options.OptionsReader.ToJson"/> writes them.</summary>
    public JsonElement? Options { get; set; }

    /// <summary>A reward-function run's rewards by name, in order, with their weights (GRPO); null for other runs.</summary>
    public List<NamedWeight>? Rewards { get; set; }

    /// <summary>The last metrics lines (as in <c>metrics.jsonl</c>).</summary>
    public List<Dictionary<string, double>> LogHistory { get; set; } = [];

    /// <summary>Size and SHA-256 of every other file of the checkpoint, checked before it is trusted.</summary>
    public Dictionary<string, FileDigest> Files { get; set; } = [];

    /// <summary>The most <see cref="LogHistory"/> entries a state file may hold (a run writes the last 100).</summary>
    public const int MaxLogHistory = 1000;

    /// <summary>
    /// Reads a <c>trainer_state.json</c>: a regular file of at most <see cref="CheckpointStore.MaxStateBytes"/>, at most
    /// <see cref="MaxLogHistory"/> log entries, counters in range.
    /// </summary>
    /// <exception cref="InvalidDataException">Not JSON, or of another format version.</exception>
    /// <exception cref="InputException">Over a limit or a field out of range; the message names the file and the field.</exception>
    public static TrainerState Read(string path)
    {
        byte[] bytes = InputFiles.ReadAllBytes(path, CheckpointStore.MaxStateBytes, CheckpointStore.StateFile);
        TrainerState state;
        try
        {
            using var document = JsonDocument.Parse(bytes);
            if (document.RootElement.ValueKind != JsonValueKind.Object)
            {
                throw new InvalidDataException($"{path}: not a JSON object");
            }

            if (document.RootElement.TryGetProperty("log_history", out var history) && history.ValueKind == JsonValueKind.Array
                && history.GetArrayLength() > MaxLogHistory)
            {
                throw new InputException(path, null, "log_history", $"{history.GetArrayLength():N0} entries, over the limit of {MaxLogHistory}");
            }

            state = document.RootElement.Deserialize<TrainerState>(Json) ?? throw new InvalidDataException($"{path}: empty");
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{path}: unreadable ({e.Message})", e);
        }

        if (state.Format != CurrentFormat)
        {
            throw new InvalidDataException($"{path}: format {state.Format}, this version reads {CurrentFormat}");
        }

        state.Check(path);
        return state;
    }

    // Counters a resume indexes or loops with: out of range, they would fail far from the file (or never end).
    private void Check(string path)
    {
        void Require(bool ok, string field, string detail)
        {
            if (!ok)
            {
                throw new InputException(path, null, field, detail);
            }
        }

        Require(RngState is { Length: 4 }, "rng_state", "must be 4 numbers");
        Require(TotalSteps >= 0, "total_steps", $"{TotalSteps} is negative");
        Require(GlobalStep >= 0 && GlobalStep <= TotalSteps, "global_step", $"{GlobalStep} is not within 0..total_steps ({TotalSteps})");
        Require(OptimizerSteps >= 0, "optimizer_steps", $"{OptimizerSteps} is negative");
        Require(SkippedSteps >= 0, "skipped_steps", $"{SkippedSteps} is negative");
        Require(Epoch >= 0, "epoch", $"{Epoch} is negative");
        Require(BatchesInEpoch >= 0, "batches_in_epoch", $"{BatchesInEpoch} is negative");
        Require(BatchIndex >= 0 && BatchIndex <= BatchesInEpoch, "batch_index", $"{BatchIndex} is not within 0..batches_in_epoch ({BatchesInEpoch})");
        Require(PendingSteps >= 0 && TokensSeen >= 0 && PendingTokens >= 0, "pending_steps", "counters must not be negative");
        Require(Files is not null && PendingMetrics is not null && LogHistory is not null, "files", "must be present");
        Require(LogHistory!.All(h => h is not null), "log_history", "holds a null entry");
        Require(Files!.Values.All(d => d is { Size: >= 0, Sha256: not null }), "files", "every entry needs a size and a sha256");
        Require(Rewards is null || Rewards.All(r => r is { Name.Length: > 0 }), "rewards", "every entry needs a name");
    }

    /// <summary>A deep copy (through JSON, the form it is saved in).</summary>
    public TrainerState Clone() => JsonSerializer.Deserialize<TrainerState>(JsonSerializer.SerializeToUtf8Bytes(this, Json), Json)!;
}

/// <summary>Length and SHA-256 (lower-case hex) of one checkpoint file.</summary>
/// <param name="Size">Bytes.</param>
/// <param name="Sha256">Digest of the contents.</param>
public sealed record FileDigest(long Size, string Sha256);

/// <summary>A reward function's name and weight.</summary>
/// <param name="Name">The name its metrics use.</param>
/// <param name="Weight">Its weight in the total.</param>
public sealed record NamedWeight(string Name, double Weight);
