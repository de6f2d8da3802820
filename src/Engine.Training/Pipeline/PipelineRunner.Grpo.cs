using System.Globalization;
using Engine.Models;
using Engine.Models.HuggingFace;
using Engine.Models.Tokenizers;
using Engine.Training.Data;
using Engine.Training.Options;
using Engine.Training.Rl.Grpo;
using Engine.Training.Rl.Rewards;
using Engine.Training.Rl.Ppo;

namespace Engine.Training.Pipeline;

/// <summary>The GRPO stage of <see cref="PipelineRunner"/>, with its defaults here and nowhere else.</summary>
public sealed record PipelineGrpoOptions
{
    /// <summary>GRPO steps (one round of sampling and one update each).</summary>
    public int Steps { get; init; } = 20;

    /// <summary>Peak learning rate (constant after a short warmup).</summary>
    public double LearningRate { get; init; } = 5e-5;

    /// <summary>Training prompts per step.</summary>
    public int PromptsPerStep { get; init; } = 16;

    /// <summary>G, completions sampled per prompt.</summary>
    public int Generations { get; init; } = 8;

    /// <summary>
    /// Sampling temperature τ. The SFT model is nearly deterministic at the evaluation's 0.7: a group of 8 samples would
    /// mostly be alike, with zero reward spread and no advantage; a higher τ gives the groups answers that differ.
    /// </summary>
    public float Temperature { get; init; } = 1.5f;

    /// <summary>β of the k3 KL to the SFT model in the loss (0: no reference is loaded; the evaluation still reports the KL).</summary>
    public float Beta { get; init; }
}

public sealed partial class PipelineRunner
{
    /// <summary>
    /// GRPO from the SFT checkpoint with verifiable rewards: the training facts' prompts with their answers
    /// (<see cref="SyntheticTask.RlPrompts"/>) and <see cref="VerifiableRewards"/>, whose total is the gold reward — no
    /// reward model, no critic. Evaluated on the held-out prompts like every policy stage, with its KL to SFT.
    /// </summary>
    internal StageReport GrpoStage(
        string outDirectory, Transformer sft, string sftFinal, Tokenizer tokenizer, ITextEncoder encoder, SyntheticTask task,
        IReadOnlyList<SyntheticFact> evalFacts, HfSaveOptions save, CancellationToken cancellationToken)
    {
        var o = Options;
        var g = o.Grpo;
        int eos = encoder.EosTokenId ?? throw new InvalidOperationException("the pipeline's encoder has no EOS token");
        var options = new GrpoOptions
        {
            MaxSteps = g.Steps, BatchSize = g.PromptsPerStep, NumGenerations = g.Generations, LearningRate = g.LearningRate,
            Schedule = LearningRateSchedule.Constant, WarmupSteps = Math.Min(3, g.Steps / 10), MaxLength = o.MaxLength,
            MaxCompletionLength = o.MaxNewTokens, Temperature = g.Temperature, Beta = g.Beta, Seed = o.Seed,
            OutputDirectory = Path.Combine(outDirectory, "grpo"), CheckpointInterval = 0, KeepLast = 1, Resume = o.Resume,
        };
        var prompts = GrpoPrompt.Tokenize([.. task.RlPrompts], encoder, options.MaxPromptLength);
        var (functions, weights) = VerifiableRewards.For(task.Gold);
        using var policy = HfCheckpoint.Load(sftFinal, backend, trainable: true);
        using var reference = options.NeedsReference ? PolicyReference.Resident(sft) : null;
        var trainer = new GrpoTrainer(policy, reference, new RewardSet(functions, weights), prompts, GrpoGroups.Decoder(tokenizer), eos, options) { CheckpointFormat = save };
        int every = Math.Max(1, options.MaxSteps / 5);
        var result = trainer.Run(
            new InlineProgress<GrpoProgress>(r =>
            {
                if (r.Step == 1 || r.Step % every == 0 || r.Step == r.TotalSteps)
                {
                    Say(string.Create(CultureInfo.InvariantCulture, $"grpo: step {r.Step}/{r.TotalSteps} reward {r.Reward:F3} groups tied {r.ZeroStdFraction:P0} loss {r.Loss:F4} length {r.CompletionLength:F1} generation {r.GenerationShare:P0}"));
                }
            }),
            cancellationToken);
        ThrowIfCancelled("grpo", result, cancellationToken);
        Say(string.Create(CultureInfo.InvariantCulture, $"grpo: {result.Steps} steps{(result.SkippedSteps > 0 ? $", {result.SkippedSteps} skipped (a non-finite value)" : "")}, loss {result.TrainLoss:F4}, {result.Elapsed.TotalSeconds:F1} s"));
        return FinishRlStage(
            Trained("grpo", result, ReadCurves(options.OutputDirectory, GrpoCurves)), policy, options.OutputDirectory, save, sft, tokenizer, encoder, task, evalFacts);
    }

    private const string VerifiableReward = "verifiable reward (= gold reward)";

    private static readonly Series[] GrpoCurves =
    [
        new("loss", "GRPO loss (clipped surrogate)", "GRPO loss"),
        new("reward", "mean reward of the samples", VerifiableReward),
        new("rewards/accuracy/mean", "accuracy term (first word ±1)", VerifiableReward),
        new("rewards/words/mean", "length term (words after the first)", VerifiableReward),
        new("reward_std", "reward std within a group", "reward std"),
        new("frac_reward_zero_std", "groups whose samples all tied", "share of groups"),
        new("kl", "KL of the samples to SFT (k3)", "KL (nats per token)"),
        new("completions/mean_length", "sample length", "tokens"),
    ];
}
