using System.Text.Json;
using Engine.Core;
using Engine.Core.IO;
using Engine.Training.Checkpoints;

namespace Engine.Training.Rl.Ppo;

/// <summary>
/// What a PPO checkpoint keeps besides the shared <see cref="TrainerState"/> (whose step counters, prompt position and
/// random state PPO uses as every trainer does; its optimizer-step count is the actor's): the KL controller's β, the
/// critic's AdamW step count, and the position in the PPO-ptx data. Saved as <see cref="PpoTrainer.StateFile"/>.
/// </summary>
internal sealed class PpoRunState
{
    public const int CurrentFormat = 1;

    public int Format { get; set; } = CurrentFormat;

    /// <summary>β for the next rollout.</summary>
    public double KlCoef { get; set; }

    /// <summary>AdamW updates applied to the critic.</summary>
    public int CriticOptimizerSteps { get; set; }

    /// <summary>Passes over the pretraining data completed.</summary>
    public int PtxEpoch { get; set; }

    /// <summary>Index of the next pretraining batch in the current pass's order.</summary>
    public int PtxBatchIndex { get; set; }

    /// <summary>Seed of the current pass's order of pretraining batches.</summary>
    public ulong PtxShuffleSeed { get; set; }

    /// <summary>Reads the state of the checkpoint at <paramref name="path"/> (whose files were verified into <paramref name="state"/>).</summary>
    public static PpoRunState Read(string path, TrainerState state)
    {
        string file = Path.Combine(path, PpoTrainer.StateFile);
        if (!state.Files.ContainsKey(PpoTrainer.StateFile) || !state.Files.ContainsKey($"{PpoTrainer.CriticDirectory}/{CheckpointStore.OptimizerFile}"))
        {
            throw new InputException(Path.Combine(path, CheckpointStore.StateFile), null, "files", $"not a PPO checkpoint (it lists no {PpoTrainer.StateFile} or critic); resume a PPO run from its own --out");
        }

        PpoRunState run;
        try
        {
            run = JsonSerializer.Deserialize<PpoRunState>(InputFiles.ReadAllBytes(file, CheckpointStore.MaxStateBytes, PpoTrainer.StateFile), TrainerState.Json)
                ?? throw new InputException(file, null, null, "empty");
        }
        catch (JsonException e)
        {
            throw new InputException(file, null, null, $"unreadable ({e.Message})", e);
        }

        if (run.Format != CurrentFormat)
        {
            throw new InputException(file, null, "format", $"{run.Format}, this version reads {CurrentFormat}");
        }

        return run.PtxEpoch >= 0 && run.PtxBatchIndex >= 0 && run.CriticOptimizerSteps >= 0 && double.IsFinite(run.KlCoef) && run.KlCoef >= 0
            ? run
            : throw new InputException(file, null, null, "kl_coef, critic_optimizer_steps, ptx_epoch and ptx_batch_index must be finite and not negative");
    }

    /// <summary>Writes the state into a checkpoint directory being assembled.</summary>
    public void Write(string directory) =>
        File.WriteAllBytes(Path.Combine(directory, PpoTrainer.StateFile), JsonSerializer.SerializeToUtf8Bytes(this, TrainerState.Json));
}
