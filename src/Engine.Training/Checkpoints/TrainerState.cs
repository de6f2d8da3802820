using System.Text.Json;
using System.Text.Json.Serialization;

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

    /// <summary>The last validation loss, if any.</summary>
    public double? LastEvalLoss { get; set; }

    /// <summary>The options of the run, as <see cref="Options.OptionsReader.ToJson"/> writes them.</summary>
    public JsonElement? Options { get; set; }

    /// <summary>The last metrics lines (as in <c>metrics.jsonl</c>).</summary>
    public List<Dictionary<string, double>> LogHistory { get; set; } = [];

    /// <summary>Size and SHA-256 of every other file of the checkpoint, checked before it is trusted.</summary>
    public Dictionary<string, FileDigest> Files { get; set; } = [];

    /// <summary>A deep copy (through JSON, the form it is saved in).</summary>
    public TrainerState Clone() => JsonSerializer.Deserialize<TrainerState>(JsonSerializer.SerializeToUtf8Bytes(this, Json), Json)!;
}

/// <summary>Length and SHA-256 (lower-case hex) of one checkpoint file.</summary>
/// <param name="Size">Bytes.</param>
/// <param name="Sha256">Digest of the contents.</param>
public sealed record FileDigest(long Size, string Sha256);
