using System.Globalization;
using Engine.Models;
using Engine.Models.HuggingFace;
using Engine.Models.Tokenizers;
using Engine.Training.Data;
using Engine.Training.Options;
using Engine.Training.Rl.Ppo;
using Engine.Training.Rl.Sampling;

namespace Engine.Training.Pipeline;

/// <summary>
/// The pipeline's PPO stage settings, with their defaults here. The rollout size and response length follow the
/// pipeline's <see cref="PipelineOptions.BatchSize"/> and <see cref="PipelineOptions.MaxNewTokens"/>.
/// </summary>
public sealed record PipelinePpoOptions
{
    /// <summary>PPO steps (rollout + updates); null = three tenths of <see cref="PipelineOptions.DpoSteps"/>, at least 2.</summary>
    public int? Steps { get; init; }

    /// <summary>The actor's and the critic's peak learning rates.</summary>
    public double LearningRate { get; init; } = 2e-5;

    /// <inheritdoc cref="LearningRate"/>
    public double CriticLearningRate { get; init; } = 1e-4;

    /// <summary>β's start; the adaptive controller moves it towards <see cref="PipelineOptions.KlTarget"/>.</summary>
    public double KlCoef { get; init; } = 0.05;

    /// <summary>PPO-ptx's weight of the next-token loss on the pretraining corpus (0 = plain PPO).</summary>
    public float PtxCoef { get; init; } = 0.03f;

    /// <summary>
    /// Temperature τ of the rollouts (the policy trained is softmax(logits/τ)). The SFT model is nearly deterministic at
    /// the evaluation's 0.7 (a response carries ~0.1 nat of entropy), so rollouts there would all be alike and leave PPO
    /// no signal; τ = 2 explores.
    /// </summary>
    public float Temperature { get; init; } = 2f;

    /// <summary>Subtracted from the score of a response that runs out of tokens before EOS.</summary>
    public float MissingEosPenalty { get; init; } = 1f;
}

public sealed partial class PipelineRunner
{
    /// <summary>
    /// PPO from the SFT checkpoint: the critic starts from the reward model, which also scores the rollouts (standardised
    /// with its stored statistics), the SFT model in memory is the frozen reference, PPO-ptx runs on the pretraining
    /// corpus, prompts are the training facts' (never the held-out ones). Evaluated on the held-out prompts like the
    /// other policy stages; its loss curve is the policy loss, its reward curves the rollouts' scores and KL.
    /// </summary>
    internal StageReport RunPpo(
        string outDirectory, string sftFinal, string rewardFinal, Transformer sft, Tokenizer tokenizer, ITextEncoder encoder, SyntheticTask task,
        HfSaveOptions save, CancellationToken cancellationToken)
    {
        var o = Options;
        var p = o.Ppo;
        int eos = encoder.EosTokenId ?? throw new InvalidOperationException("the pipeline's encoder has no EOS token");
        var options = new PpoOptions
        {
            MaxSteps = PpoSteps, BatchSize = o.BatchSize, NumMiniBatches = o.BatchSize % 2 == 0 ? 2 : 1, NumPpoEpochs = 4,
            LearningRate = p.LearningRate, CriticLearningRate = p.CriticLearningRate, Schedule = LearningRateSchedule.Constant,
            ResponseLength = o.MaxNewTokens, MaxLength = o.MaxLength, Temperature = p.Temperature,
            KlCoef = p.KlCoef, AdaptiveKl = true, KlTarget = o.KlTarget, KlHorizon = 10 * o.BatchSize,
            NormalizeReward = true, RewardClip = 5f, MissingEosPenalty = p.MissingEosPenalty, PtxCoef = p.PtxCoef,
            Seed = o.Seed, OutputDirectory = Path.Combine(outDirectory, "ppo"), CheckpointInterval = 0, KeepLast = 1, Resume = o.Resume,
        };
        var prompts = RolloutPrompts.Tokenize(task.TrainFacts.Select(f => new PromptExample(TextOrChat.FromText(f.Prompt))), encoder, options.MaxPromptLength);
        var ptx = p.PtxCoef > 0 ? new PretrainBatches(encoder, task.Pretrain, o.MaxLength, PpoTrainer.PtxRows(options)) : null;

        using var actor = HfCheckpoint.Load(sftFinal, sft.Backend, trainable: true);
        using var critic = HfCheckpoint.Load(rewardFinal, sft.Backend, trainable: true);
        using var reward = HfCheckpoint.Load(rewardFinal, sft.Backend, trainable: false);
        using var reference = PolicyReference.Resident(sft);
        var trainer = new PpoTrainer(new PpoModels(actor, critic, reward, reference), prompts, ptx, eos, options)
        {
            CheckpointFormat = save,
            CriticCheckpointFormat = save with { Config = save.Config is { } c ? c with { Model = critic.Config } : null },
        };
        int every = Math.Max(1, options.MaxSteps / 5);
        var result = trainer.Run(
            new InlineProgress<PpoProgress>(r =>
            {
                if (r.Step % every == 0 || r.Step == r.TotalSteps)
                {
                    Say(string.Create(CultureInfo.InvariantCulture, $"ppo: step {r.Step}/{r.TotalSteps} score {r.Score:F3} kl {r.Kl:F3} β {r.KlCoef:F4} length {r.ResponseLength:F1} generation {r.GenerationShare:P0}"));
                }
            }),
            cancellationToken);
        ThrowIfCancelled("ppo", result, cancellationToken);
        Say(string.Create(CultureInfo.InvariantCulture, $"ppo: {result.Steps} steps{(result.SkippedSteps > 0 ? $", {result.SkippedSteps} skipped (a non-finite value)" : "")}, policy loss {result.TrainLoss:F4}, {result.Elapsed.TotalSeconds:F1} s"));
        return FinishRlStage(
            Trained("ppo", result, ReadCurves(options.OutputDirectory, PpoCurves)), actor, options.OutputDirectory, save, sft, tokenizer, encoder, task, task.HeldOutFacts);
    }

    // The PPO stage's steps: its own setting, or three tenths of DPO's.
    private int PpoSteps => Options.Ppo.Steps ?? Math.Max(2, 3 * Options.DpoSteps / 10);
}
