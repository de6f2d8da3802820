using Engine.Core.Backends;
using Engine.Models;
using Engine.Models.HuggingFace;
using Engine.Models.Tokenizers;
using Engine.Training.Data;
using Engine.Training.Objectives;
using Engine.Training.Objectives.Preference;
using Engine.Training.Options;

namespace Engine.Training.Pipeline;

public sealed partial class PipelineRunner
{
    /// <summary>The optional stages <see cref="PipelineOptions.ExtraStages"/> may name, run after the default seven.</summary>
    public static IReadOnlyList<string> OptionalStages { get; } = ["simpo", "orpo", "kto"];

    private static readonly Series[] KtoCurves =
    [
        new("loss", "train loss", "KTO loss"), new("eval_loss", "held-out loss", "KTO loss"),
        new("rewards/chosen", "desirable answer", ImplicitReward), new("rewards/rejected", "undesirable answer", ImplicitReward),
        new("kl", "KL baseline z₀", "nats"),
    ];

    /// <summary>
    /// An optional stage from the SFT checkpoint on the DPO stage's data, with DPO's steps and learning rate: SimPO
    /// (β = 2, γ = 0.5) or ORPO (λ = 0.1), reference-free, or KTO against the SFT model's cached log-probs, each pair's
    /// chosen answer a desirable example and its rejected one (a ranking's best and worst) an undesirable one.
    /// Evaluated on the held-out prompts like every policy stage.
    /// </summary>
    internal StageReport PreferenceStage(
        string name, string outDirectory, Transformer sft, string sftFinal, SequenceCollator collator, IReadOnlyList<Example> preferenceData,
        Tokenizer tokenizer, ITextEncoder encoder, SyntheticTask task, IReadOnlyList<SyntheticFact> evalFacts, HfSaveOptions save,
        CancellationToken cancellationToken)
    {
        var o = Options;
        var options = new TrainerOptions
        {
            MaxSteps = o.DpoSteps, BatchSize = o.BatchSize, LearningRate = o.DpoLearningRate, MaxLength = o.MaxLength,
            WarmupSteps = Math.Min(20, o.DpoSteps / 10), Seed = o.Seed, OutputDirectory = Path.Combine(outDirectory, name),
            CheckpointInterval = 0, KeepLast = 1, LogInterval = LogInterval(o.DpoSteps), Resume = o.Resume,
        };
        using var policy = HfCheckpoint.Load(sftFinal, backend, trainable: true);
        TrainingResult run;
        Series[] curves;
        if (name == "kto")
        {
            var train = new KtoBatches(collator, Unpaired(preferenceData), o.BatchSize);
            var validation = new KtoBatches(collator, Unpaired(task.EvalPreferences), o.BatchSize);
            var cache = ReferenceLogProbCache.Compute(sft, [.. train.All().Concat(validation.All()).Select(b => b.Rows)]);
            using var objective = new KtoObjective(policy, cache, new PreferenceOptions { Losses = [new(PreferenceLossType.Kto)], Beta = o.DpoBeta });
            run = RunStage(name, new Trainer<KtoBatch>(policy, objective, train, validation, options) { CheckpointFormat = save }, cancellationToken);
            curves = KtoCurves;
        }
        else
        {
            var preference = name == "simpo"
                ? new PreferenceOptions { Losses = [new(PreferenceLossType.Simpo)], Beta = 2f, SimpoGamma = 0.5f }
                : new PreferenceOptions { Losses = [new(PreferenceLossType.Orpo)], Beta = 0.1f };
            var train = new PreferenceBatches(collator, preferenceData, o.BatchSize);
            var validation = new PreferenceBatches(collator, task.EvalPreferences, o.BatchSize);
            using var objective = new PreferenceObjective(policy, (IReferenceLogProbs?)null, preference);
            run = RunStage(name, new Trainer<PreferenceBatch>(policy, objective, train, validation, options) { CheckpointFormat = save }, cancellationToken);
            curves = DpoCurves;
        }

        SaveFinal(policy, options.OutputDirectory, save);
        return Evaluated(Trained(name, run, ReadCurves(options.OutputDirectory, curves)), policy, sft, tokenizer, encoder, task, evalFacts, klIsZero: false);
    }

    // KTO's data from preferences: a pair's chosen answer is desirable and its rejected one undesirable; a ranking gives
    // its best answer and its worst.
    private static List<UnpairedPreferenceExample> Unpaired(IEnumerable<Example> preferences) =>
    [
        .. preferences.SelectMany<Example, UnpairedPreferenceExample>(e => e switch
        {
            PreferenceExample p => [new(p.Prompt, p.Chosen, true) { Source = e.Source, Line = e.Line }, new(p.Prompt, p.Rejected, false) { Source = e.Source, Line = e.Line }],
            RankingExample r =>
            [
                new(r.Prompt, r.Responses[r.Ranking[0]], true) { Source = e.Source, Line = e.Line },
                new(r.Prompt, r.Responses[r.Ranking[^1]], false) { Source = e.Source, Line = e.Line },
            ],
            _ => [],
        }),
    ];
}
