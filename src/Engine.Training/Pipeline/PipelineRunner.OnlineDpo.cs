using System.Globalization;
using Engine.Models;
using Engine.Models.HuggingFace;
using Engine.Models.Tokenizers;
using Engine.Training.Data;
using Engine.Training.Objectives;
using Engine.Training.Options;
using Engine.Training.Rl.OnlineDpo;
using Engine.Training.Rl.Sampling;

namespace Engine.Training.Pipeline;

/// <summary>The online-DPO stage of <see cref="PipelineRunner"/>, with its defaults here and nowhere else.</summary>
public sealed record PipelineOnlineDpoOptions
{
    /// <summary>Optimizer steps (one round of sampling each).</summary>
    public int Steps { get; init; } = 100;

    /// <summary>Peak learning rate.</summary>
    public double LearningRate { get; init; } = 5e-5;

    /// <summary>DPO's β.</summary>
    public float Beta { get; init; } = 0.1f;

    /// <summary>Training prompts sampled per round.</summary>
    public int PromptsPerRound { get; init; } = 16;

    /// <summary>K, responses sampled per prompt; chosen is the best by the reward model, rejected the worst.</summary>
    public int SamplesPerPrompt { get; init; } = 4;

    /// <summary>Sampling temperature of the rounds.</summary>
    public float Temperature { get; init; } = 1.5f;

    /// <summary>Subtracted from the reward-model score of a sample without EOS.</summary>
    public float MissingEosPenalty { get; init; }

}

public sealed partial class PipelineRunner
{
    /// <summary>
    /// Online DPO from the SFT checkpoint against the frozen SFT model, the pipeline's reward model labelling samples of
    /// the training prompts; evaluated on the held-out prompts like every policy stage.
    /// </summary>
    internal StageReport OnlineDpoStage(
        string outDirectory, Transformer sft, string sftFinal, string rmFinal, SequenceCollator collator, Tokenizer tokenizer, ITextEncoder encoder,
        SyntheticTask task, IReadOnlyList<SyntheticFact> evalFacts, HfSaveOptions save, CancellationToken cancellationToken)
    {
        var o = Options;
        var s = o.OnlineDpo;
        var options = new OnlineDpoOptions
        {
            MaxSteps = s.Steps, BatchSize = s.PromptsPerRound, LearningRate = s.LearningRate, MaxLength = o.MaxLength,
            WarmupSteps = Math.Min(5, s.Steps / 10), Seed = o.Seed, OutputDirectory = Path.Combine(outDirectory, "online_dpo"),
            CheckpointInterval = 0, KeepLast = 1, LogInterval = LogInterval(s.Steps), Resume = o.Resume,
            Dpo = new DpoOptions { Beta = s.Beta }, SamplesPerPrompt = s.SamplesPerPrompt, Temperature = s.Temperature, MaxNewTokens = o.MaxNewTokens,
            MissingEosPenalty = s.MissingEosPenalty,
        };
        var prompts = RolloutPrompts.Tokenize(task.TrainFacts.Select(f => new PromptExample(TextOrChat.FromText(f.Prompt))), encoder, options.MaxPromptLength);
        int[] stops = encoder.EosTokenId is int eos ? [eos] : [];
        using var policy = HfCheckpoint.Load(sftFinal, backend, trainable: true);
        using var rm = HfCheckpoint.Load(rmFinal, backend, trainable: false);
        TrainingResult run;
        using (var trainer = new OnlineDpoTrainer(policy, sft, rm, prompts, collator, options, stops) { CheckpointFormat = save })
        {
            run = RunStage("online_dpo", trainer.Run, cancellationToken);
            Say($"online_dpo: {trainer.TimeSummary()}");
        }

        return FinishRlStage(
            Trained("online_dpo", run, ReadCurves(options.OutputDirectory, OnlineDpoCurves)), policy, options.OutputDirectory, save, sft, tokenizer, encoder, task, evalFacts);
    }
}
