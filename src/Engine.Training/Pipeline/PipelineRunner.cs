using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Engine.Core;
using Engine.Core.Backends;
using Engine.Core.IO;
using Engine.Core.Tensors;
using Engine.Models;
using Engine.Models.Generation;
using Engine.Models.HuggingFace;
using Engine.Models.Tokenizers;
using Engine.Training.Checkpoints;
using Engine.Training.Data;
using Engine.Training.Objectives;
using Engine.Training.Options;

namespace Engine.Training.Pipeline;

/// <summary>
/// Sizes and steps of an <see cref="PipelineRunner"/> run, with their defaults here and nowhere else. <see cref="Quick"/>
/// gives a seconds-long run of every stage (tests, smoke checks).
/// </summary>
public sealed record PipelineOptions
{
    /// <summary>Seed of the synthetic task, weight initialisation, shuffling and sampling.</summary>
    public ulong Seed { get; init; } = 1;

    /// <summary>BPE vocabulary size.</summary>
    public int VocabSize { get; init; } = 512;

    /// <summary>Context length of the model (and max_length of every stage).</summary>
    public int MaxLength { get; init; } = 64;

    /// <summary>Transformer layers.</summary>
    public int Layers { get; init; } = 4;

    /// <summary>Channels (model width).</summary>
    public int Channels { get; init; } = 128;

    /// <summary>Attention heads.</summary>
    public int Heads { get; init; } = 4;

    /// <summary>Rows per micro-batch (preference groups for RM and DPO).</summary>
    public int BatchSize { get; init; } = 16;

    /// <summary>Pretraining steps and peak learning rate.</summary>
    public int PretrainSteps { get; init; } = 3000;

    /// <inheritdoc cref="PretrainSteps"/>
    public double PretrainLearningRate { get; init; } = 2e-3;

    /// <summary>SFT steps and peak learning rate.</summary>
    public int SftSteps { get; init; } = 200;

    /// <inheritdoc cref="SftSteps"/>
    public double SftLearningRate { get; init; } = 3e-4;

    /// <summary>Reward-model steps and peak learning rate.</summary>
    public int RmSteps { get; init; } = 400;

    /// <inheritdoc cref="RmSteps"/>
    public double RmLearningRate { get; init; } = 3e-4;

    /// <summary>
    /// Residual dropout while the reward model trains: with ~50 training prompts, each met in hundreds of comparisons,
    /// it keeps the model from memorising which answers are right for those prompts instead of judging answers.
    /// </summary>
    public float RmDropout { get; init; } = 0.1f;

    /// <summary>DPO steps, peak learning rate and β.</summary>
    public int DpoSteps { get; init; } = 200;

    /// <inheritdoc cref="DpoSteps"/>
    public double DpoLearningRate { get; init; } = 2e-5;

    /// <inheritdoc cref="DpoSteps"/>
    public float DpoBeta { get; init; } = 0.1f;

    /// <summary>
    /// The mean KL to the SFT model, in nats per held-out response, that the RL stages (PPO, online DPO) must stay within:
    /// PPO's adaptive β aims at it, and each stage's log line says whether its evaluation is within it.
    /// </summary>
    public double KlTarget { get; init; } = 1.0;

    /// <summary>The PPO stage's settings (PipelineRunner.Ppo.cs).</summary>
    public PipelinePpoOptions Ppo { get; init; } = new();

    /// <summary>The online-DPO stage's sizes (PipelineRunner.OnlineDpo.cs).</summary>
    public PipelineOnlineDpoOptions OnlineDpo { get; init; } = new();

    /// <summary>The GRPO stage's settings (PipelineRunner.Grpo.cs).</summary>
    public PipelineGrpoOptions Grpo { get; init; } = new();

    /// <summary>Optional stages run after the default seven, in this order: any of simpo, orpo, kto (<see cref="PipelineRunner.OptionalStages"/>).</summary>
    public IReadOnlyList<string> ExtraStages { get; init; } = [];

    /// <summary>Answers sampled per held-out prompt in each policy evaluation.</summary>
    public int SamplesPerPrompt { get; init; } = 8;

    /// <summary>Sampling temperature of the evaluation.</summary>
    public float Temperature { get; init; } = 0.7f;

    /// <summary>Longest sampled answer in tokens.</summary>
    public int MaxNewTokens { get; init; } = 24;

    /// <summary>The synthetic task's options (null: its defaults).</summary>
    public SyntheticTaskOptions? Task { get; init; }

    /// <summary>
    /// Continue each stage from its newest complete checkpoint in the output directory (a run stopped by Ctrl+C); stages
    /// that finished are not trained again. The other options must be those of the interrupted run.
    /// </summary>
    public bool Resume { get; init; }

    /// <summary>
    /// A smoke test: the report, summary.json and the console say that its numbers mean nothing (<see cref="Quick"/>
    /// sets it).
    /// </summary>
    public bool SmokeTest { get; init; }

    /// <summary>A tiny run, a smoke test: every stage a few steps, a small world and corpus.</summary>
    public static PipelineOptions Quick(ulong seed = 1) => new()
    {
        Seed = seed,
        SmokeTest = true,
        VocabSize = 300,
        MaxLength = 48,
        Channels = 32,
        Heads = 2,
        Layers = 1,
        BatchSize = 4,
        PretrainSteps = 6,
        SftSteps = 4,
        RmSteps = 4,
        DpoSteps = 4,
        OnlineDpo = new PipelineOnlineDpoOptions { Steps = 2, PromptsPerRound = 4, SamplesPerPrompt = 2 },
        Grpo = new PipelineGrpoOptions { Steps = 2, PromptsPerStep = 4, Generations = 2 },
        SamplesPerPrompt = 1,
        MaxNewTokens = 8,
        Task = new SyntheticTaskOptions { Countries = 6, Animals = 4, Sums = 4, CorpusDocuments = 100 },
    };
}

/// <summary>
/// <c>engine pipeline</c>: the InstructGPT story on the <see cref="SyntheticTask"/> — BPE tokenizer, pretraining from
/// scratch, SFT, a reward model from the SFT trunk, DPO against the SFT model — each stage checkpointed under
/// <c>out/&lt;stage&gt;/</c>, every policy stage evaluated on the held-out prompts with the gold reward, and the
/// <see cref="PipelineReport"/> written to <c>out/summary.json</c> and <c>out/report.html</c>.
/// </summary>
public sealed partial class PipelineRunner(PipelineOptions options, Backend backend, TextWriter? log = null)
{
    private const string Eos = "<|endoftext|>";
    private readonly TextWriter log = log ?? TextWriter.Null;

    /// <summary>The options of the run.</summary>
    public PipelineOptions Options { get; } = options ?? throw new ArgumentNullException(nameof(options));

    /// <summary>Runs every stage into <paramref name="outDirectory"/> and returns the report (already written there).</summary>
    public PipelineReport Run(string outDirectory, CancellationToken cancellationToken = default)
    {
        var clock = Stopwatch.StartNew();
        var o = Options;
        if (o.ExtraStages.FirstOrDefault(e => !OptionalStages.Contains(e)) is { } unknown || o.ExtraStages.Distinct().Count() != o.ExtraStages.Count)
        {
            throw new ArgumentException($"extra stages must be distinct, among {string.Join(", ", OptionalStages)}: got {string.Join(",", o.ExtraStages)}");
        }

        using var runLock = RunDirectoryLock.Acquire(outDirectory);
        CheckOptionsOfEarlierRun(outDirectory);
        var task = SyntheticTask.Generate(o.Seed, o.Task);
        task.WriteAll(Path.Combine(outDirectory, "data"));
        Say($"task: {task.Describe()}");

        // Tokenizer.
        string tokenizerDir = Path.Combine(outDirectory, "tokenizer");
        Directory.CreateDirectory(tokenizerDir);
        var tokenizer = BpeTrainer.Train(task.Pretrain.Select(t => t.Text), new BpeTrainerOptions { VocabSize = o.VocabSize, SpecialTokens = [Eos] });
        tokenizer.Save(Path.Combine(tokenizerDir, "tokenizer.json"));
        int eos = tokenizer.TokenToId(Eos) ?? throw new InvalidOperationException("the tokenizer lost its EOS token");
        ITextEncoder encoder = FuncTextEncoder.ForTokenizer(tokenizer, eos);
        Say($"tokenizer: {tokenizer.VocabSize} tokens ({clock.Elapsed.TotalSeconds:F1} s)");

        var config = TransformerConfig.Gpt2(tokenizer.VocabSize, o.MaxLength, o.Layers, o.Channels, o.Heads);
        var save = new HfSaveOptions { TokenizerDirectory = tokenizerDir, Config = HfModelConfig.For(config) with { EosTokenIds = [eos] } };
        var stages = new List<StageReport>();
        var evalFacts = task.HeldOutFacts;

        // Pretrain.
        using var pretrained = new Transformer(config, backend);
        pretrained.InitializeWeights(o.Seed);
        var pretrainOptions = new PretrainOptions
        {
            MaxSteps = o.PretrainSteps, BatchSize = o.BatchSize, LearningRate = o.PretrainLearningRate, MaxLength = o.MaxLength,
            WarmupSteps = Math.Min(50, o.PretrainSteps / 10), Seed = o.Seed, OutputDirectory = Path.Combine(outDirectory, "pretrain"),
            CheckpointInterval = 0, KeepLast = 1, LogInterval = LogInterval(o.PretrainSteps), Resume = o.Resume,
        };
        // A twentieth of the corpus for validation, at least 40 documents so that it fills a batch.
        var pretrainSplit = Math.Min(task.Pretrain.Count / 2, Math.Max(task.Pretrain.Count / 20, 40));
        var pretrainRun = RunStage("pretrain", LanguageModelTrainers.Pretrain(
            pretrained, encoder, task.Pretrain.Skip(pretrainSplit), task.Pretrain.Take(Math.Max(1, pretrainSplit)), pretrainOptions, save), cancellationToken);
        string pretrainFinal = SaveFinal(pretrained, pretrainOptions.OutputDirectory, save);

        // SFT from the pretrained weights.
        using var sft = HfCheckpoint.Load(pretrainFinal, backend, trainable: true);
        var sftOptions = new SftOptions
        {
            MaxSteps = o.SftSteps, BatchSize = o.BatchSize, LearningRate = o.SftLearningRate, MaxLength = o.MaxLength,
            WarmupSteps = Math.Min(20, o.SftSteps / 10), Seed = o.Seed, OutputDirectory = Path.Combine(outDirectory, "sft"),
            CheckpointInterval = 0, KeepLast = 1, LogInterval = LogInterval(o.SftSteps), Resume = o.Resume,
        };
        var sftRun = RunStage("sft", LanguageModelTrainers.Sft(sft, encoder, task.Sft, null, sftOptions, null, eos, save), cancellationToken);
        string sftFinal = SaveFinal(sft, sftOptions.OutputDirectory, save);

        // Policy evaluations that need the SFT model as the KL anchor.
        stages.Add(Evaluated(Trained("pretrain", pretrainRun, ReadCurves(pretrainOptions.OutputDirectory, LanguageModelCurves)), pretrained, sft, tokenizer, encoder, task, evalFacts, klIsZero: false));
        stages.Add(Evaluated(Trained("sft", sftRun, ReadCurves(sftOptions.OutputDirectory, LanguageModelCurves)), sft, sft, tokenizer, encoder, task, evalFacts, klIsZero: true));

        var collator = new SequenceCollator(encoder, new CollatorOptions { MaxLength = o.MaxLength, PadTokenId = eos });
        var preferenceData = task.Preferences.Cast<Example>().Concat(task.Rankings).ToList();

        // Reward model from the SFT trunk.
        var rmOptions = new TrainerOptions
        {
            MaxSteps = o.RmSteps, BatchSize = o.BatchSize, LearningRate = o.RmLearningRate, MaxLength = o.MaxLength,
            WarmupSteps = Math.Min(20, o.RmSteps / 10), Seed = o.Seed, OutputDirectory = Path.Combine(outDirectory, "rm"),
            CheckpointInterval = 0, KeepLast = 1, LogInterval = LogInterval(o.RmSteps), Resume = o.Resume, Dropout = o.RmDropout,
        };
        double pairwise;
        TrainingResult rmRun;
        using (var rm = HfCheckpoint.Load(sftFinal, backend, trainable: true, new HfLoadOptions { Head = HeadKind.Scalar, HeadSeed = o.Seed }))
        using (var rmObjective = new RewardModelObjective(rm))
        {
            var evalPairs = new PreferenceBatches(collator, task.EvalPreferences, o.BatchSize);
            rmRun = RunStage("rm", new Trainer<PreferenceBatch>(rm, rmObjective, new PreferenceBatches(collator, preferenceData, o.BatchSize), evalPairs, rmOptions) { CheckpointFormat = save }, cancellationToken);
            var demos = new SftBatches(new SequenceCollator(encoder, sftOptions.CollatorOptions(eos) with { Packing = false }), task.Sft, o.BatchSize);
            var stats = rmObjective.Calibrate(demos.Batches(null));
            Say(string.Create(CultureInfo.InvariantCulture, $"rm: calibrated on {stats.Count} demonstrations, reward std {stats.Std:F4}"));
            pairwise = PairwiseAccuracy(rmObjective, evalPairs);
            SaveFinal(rm, rmOptions.OutputDirectory, save);
        }

        stages.Add(Trained("rm", rmRun, ReadCurves(rmOptions.OutputDirectory, RmCurves)) with { Evaluation = new StageEvaluation { PairwiseAccuracy = pairwise } });
        Say(string.Create(CultureInfo.InvariantCulture, $"rm: held-out pairwise accuracy {pairwise:P1}"));
        stages.Add(RunPpo(outDirectory, sftFinal, Path.Combine(rmOptions.OutputDirectory, "final"), sft, tokenizer, encoder, task, save, cancellationToken));

        // DPO from the SFT model, against the SFT model's cached log-probs.
        var dpoOptions = new TrainerOptions
        {
            MaxSteps = o.DpoSteps, BatchSize = o.BatchSize, LearningRate = o.DpoLearningRate, MaxLength = o.MaxLength,
            WarmupSteps = Math.Min(20, o.DpoSteps / 10), Seed = o.Seed, OutputDirectory = Path.Combine(outDirectory, "dpo"),
            CheckpointInterval = 0, KeepLast = 1, LogInterval = LogInterval(o.DpoSteps), Resume = o.Resume,
        };
        using (var policy = HfCheckpoint.Load(sftFinal, backend, trainable: true))
        {
            var train = new PreferenceBatches(collator, preferenceData, o.BatchSize);
            var validation = new PreferenceBatches(collator, task.EvalPreferences, o.BatchSize);
            var cache = ReferenceLogProbCache.Compute(sft, [.. train.All(), .. validation.All()]);
            TrainingResult dpoRun;
            using (var objective = new DpoObjective(policy, cache, new DpoOptions { Beta = o.DpoBeta }))
            {
                dpoRun = RunStage("dpo", new Trainer<PreferenceBatch>(policy, objective, train, validation, dpoOptions) { CheckpointFormat = save }, cancellationToken);
            }

            SaveFinal(policy, dpoOptions.OutputDirectory, save);
            stages.Add(Evaluated(
                Trained("dpo", dpoRun, ReadCurves(dpoOptions.OutputDirectory, DpoCurves)),
                policy, sft, tokenizer, encoder, task, evalFacts, klIsZero: false));
        }

        // Online DPO from the SFT model, with the reward model above labelling its samples.
        stages.Add(OnlineDpoStage(outDirectory, sft, sftFinal, Path.Combine(rmOptions.OutputDirectory, "final"), collator, tokenizer, encoder, task, evalFacts, save, cancellationToken));

        // GRPO from the SFT model with verifiable rewards: no reward model, no critic.
        stages.Add(GrpoStage(outDirectory, sft, sftFinal, tokenizer, encoder, task, evalFacts, save, cancellationToken));
        foreach (string extra in o.ExtraStages)
        {
            stages.Add(PreferenceStage(extra, outDirectory, sft, sftFinal, collator, preferenceData, tokenizer, encoder, task, evalFacts, save, cancellationToken));
        }

        var report = new PipelineReport(stages)
        {
            SmokeTest = o.SmokeTest,
            Setup = new EvaluationSetup(evalFacts.Count, o.SamplesPerPrompt, o.Temperature, task.EvalPreferences.Count),
            Notes =
            [
                string.Create(CultureInfo.InvariantCulture, $"seed {o.Seed}; GPT-2 L={o.Layers} C={o.Channels} H={o.Heads} T={o.MaxLength}, vocab {tokenizer.VocabSize}; steps pretrain {o.PretrainSteps}, sft {o.SftSteps}, rm {o.RmSteps} (dropout {o.RmDropout}), ppo {PpoSteps}, dpo {o.DpoSteps}, online_dpo {o.OnlineDpo.Steps}, grpo {o.Grpo.Steps}"),
                string.Create(CultureInfo.InvariantCulture, $"{evalFacts.Count} held-out prompts × {o.SamplesPerPrompt} samples at temperature {o.Temperature}; wall time {clock.Elapsed.TotalSeconds:F0} s"),
            ],
        };
        report.Write(outDirectory);
        return report;
    }

    /// <summary>The options of the run in its output directory, compared with those of a run continued there.</summary>
    public const string OptionsFile = "pipeline_options.json";

    // Before anything is written: a directory of an earlier run is continued only with --resume and the same options
    // (other ones would regenerate the data and tokenizer under the finished stages); then this run's options are saved.
    private void CheckOptionsOfEarlierRun(string outDirectory)
    {
        string path = Path.Combine(outDirectory, OptionsFile);
        string current = JsonSerializer.Serialize(Options with { Resume = false });
        if (File.Exists(path))
        {
            string saved = InputFiles.ReadAllText(path, 1 << 20, OptionsFile).Trim();
            if (saved != current)
            {
                var earlier = TryRead(saved);
                string flag = earlier is not null && earlier.Seed != Options.Seed ? "--seed" : "--quick";
                string detail = flag == "--seed" ? $"--seed {earlier!.Seed}, this run has --seed {Options.Seed}" : "other sizes (--quick differs)";
                throw new InputException(outDirectory, null, null, $"--out holds a pipeline run with {detail}; give the same options to continue it, or another --out");
            }

            if (!Options.Resume)
            {
                throw new InputException(outDirectory, null, null, "--out holds an earlier pipeline run; continue it with --resume, or give another --out");
            }

            return;
        }

        File.WriteAllText(path, current + "\n");

        static PipelineOptions? TryRead(string json)
        {
            try
            {
                return JsonSerializer.Deserialize<PipelineOptions>(json);
            }
            catch (JsonException)
            {
                return null;
            }
        }
    }

    private void Say(string line)
    {
        log.WriteLine(line);
        log.Flush();
    }

    private static int LogInterval(int steps) => Math.Max(1, Math.Min(10, steps / 20));

    /// <exception cref="OperationCanceledException">Cancelled: its message names the stage, the step and the checkpoint written.</exception>
    private TrainingResult RunStage<TBatch>(string name, Trainer<TBatch> trainer, CancellationToken token) => RunStage(name, trainer.Run, token);

    /// <summary>Runs a stage's trainer with its console lines (<see cref="StageProgress"/>) and returns its result.</summary>
    /// <exception cref="OperationCanceledException">Cancelled: its message names the stage, the step and the checkpoint written.</exception>
    private TrainingResult RunStage(string name, Func<IProgress<TrainingProgress>?, CancellationToken, TrainingResult> run, CancellationToken token)
    {
        var lines = new StageProgress(name, Say);
        var result = run(new InlineProgress<TrainingProgress>(lines.Report), token);
        ThrowIfCancelled(name, result, token);
        lines.Finish(result);
        return result;
    }

    /// <exception cref="OperationCanceledException">Cancelled: its message names the stage, the step and the checkpoint written.</exception>
    private static void ThrowIfCancelled(string name, TrainingResult result, CancellationToken token)
    {
        if (result.Status == TrainingStatus.Cancelled)
        {
            throw new OperationCanceledException($"{name} stopped at step {result.Steps}; checkpoint {result.LastCheckpoint ?? "(none)"}", token);
        }

        token.ThrowIfCancellationRequested();
    }

    /// <summary>A stage's report before its evaluation: its curves and how many steps it trained and skipped.</summary>
    private static StageReport Trained(string stage, TrainingResult run, List<Curve> curves) =>
        new(stage) { Curves = curves, Steps = run.Steps, SkippedSteps = run.SkippedSteps };

    private static string SaveFinal(Transformer model, string stageDirectory, HfSaveOptions save)
    {
        string final = Path.Combine(stageDirectory, "final");
        HfCheckpoint.Save(model, final, save);
        return final;
    }

    /// <summary>
    /// The end of an RL stage: its policy saved to <c>final</c>, its evaluation on <paramref name="facts"/> with its KL to
    /// SFT, and a line saying whether that KL is within <see cref="PipelineOptions.KlTarget"/>.
    /// </summary>
    private StageReport FinishRlStage(
        StageReport trained, Transformer policy, string stageDirectory, HfSaveOptions save, Transformer sft, Tokenizer tokenizer, ITextEncoder encoder,
        SyntheticTask task, IReadOnlyList<SyntheticFact> facts)
    {
        SaveFinal(policy, stageDirectory, save);
        var stage = Evaluated(trained, policy, sft, tokenizer, encoder, task, facts, klIsZero: false);
        double kl = stage.Evaluation.KlToSft ?? double.NaN, target = Options.KlTarget;
        Say(string.Create(CultureInfo.InvariantCulture, $"{stage.Stage}: KL to SFT {kl:F3} {(kl <= target ? "within" : "ABOVE")} the target {target:F3}"));
        return stage;
    }

    private static double PairwiseAccuracy(RewardModelObjective objective, PreferenceBatches pairs)
    {
        int right = 0, total = 0;
        foreach (var batch in pairs.All())
        {
            var rewards = objective.Rewards(batch);
            for (int i = 0; i < batch.Pairs; i++)
            {
                right += rewards[batch.Chosen[i]] > rewards[batch.Rejected[i]] ? 1 : 0;
                total++;
            }
        }

        return total == 0 ? double.NaN : (double)right / total;
    }

    private StageReport Evaluated(
        StageReport stage, Transformer model, Transformer sft, Tokenizer tokenizer, ITextEncoder encoder, SyntheticTask task,
        IReadOnlyList<SyntheticFact> facts, bool klIsZero)
    {
        var o = Options;
        var prompts = new List<IReadOnlyList<int>>();
        var promptTexts = new List<string>();
        foreach (var fact in facts)
        {
            int[] ids = encoder.Encode(fact.Prompt);
            int[] prompt = encoder.BosTokenId is int bos ? [bos, .. ids] : ids;
            for (int s = 0; s < o.SamplesPerPrompt; s++)
            {
                prompts.Add(prompt);
                promptTexts.Add(fact.Prompt);
            }
        }

        int eos = encoder.EosTokenId ?? -1;
        IReadOnlyList<GenerationResult> results;
        using (var generator = new Generator(model))
        {
            results = generator.Generate(prompts, new GenerationOptions
            {
                MaxNewTokens = o.MaxNewTokens, Temperature = o.Temperature, Seed = o.Seed ^ 0x45564C, StopTokens = eos >= 0 ? [eos] : [],
            });
        }

        var answers = new List<(string Prompt, string Response)>();
        var samples = new List<SampledAnswer>();
        double tokens = 0, kl = 0;
        for (int i = 0; i < results.Count; i++)
        {
            var generated = results[i].Tokens;
            int[] response = [.. generated.Where(t => t != eos)];
            string text = tokenizer.Decode(response, skipSpecialTokens: true);
            answers.Add((promptTexts[i], text));
            tokens += generated.Count;
            if (!klIsZero && generated.Count > 0)
            {
                kl += SequenceKl(model, sft, prompts[i], generated);
            }

            if (i % o.SamplesPerPrompt == 0)
            {
                var score = task.Gold.Score(promptTexts[i], text);
                samples.Add(new SampledAnswer(promptTexts[i], text, score.Reward, score.Correct));
            }
        }

        var (mean, accuracy, _) = task.Gold.Evaluate(answers);
        var evaluation = new StageEvaluation
        {
            GoldRewardMean = mean,
            Accuracy = accuracy,
            MeanResponseTokens = results.Count == 0 ? double.NaN : tokens / results.Count,
            KlToSft = results.Count == 0 ? double.NaN : kl / results.Count,
        };
        Say(string.Create(CultureInfo.InvariantCulture, $"{stage.Stage}: held-out gold reward {mean:F3}, accuracy {accuracy:P1}, {evaluation.MeanResponseTokens:F1} tokens, KL to SFT {evaluation.KlToSft:F3}"));
        return stage with { Evaluation = evaluation, Samples = samples };
    }

    /// <summary>Σ over the response tokens of log π(token) − log π_sft(token), both under teacher forcing.</summary>
    private static double SequenceKl(Transformer policy, Transformer sft, IReadOnlyList<int> prompt, IReadOnlyList<int> response)
    {
        int[] tokens = [.. prompt, .. response];
        int time = Math.Min(tokens.Length, policy.Config.MaxSequenceLength);
        tokens = tokens[..time];
        var a = TokenLogProbs(policy, tokens);
        var b = TokenLogProbs(sft, tokens);
        double sum = 0;
        for (int t = prompt.Count; t < time; t++)
        {
            sum += a[t - 1] - b[t - 1];
        }

        return sum;
    }

    /// <summary>log p(tokens[t+1] | tokens[..t]) for t = 0..T−2, by the fused token log-prob kernel on the hidden states.</summary>
    private static double[] TokenLogProbs(Transformer model, int[] tokens)
    {
        int time = tokens.Length;
        if (time < 2)
        {
            return [];
        }

        var backend = model.Backend;
        var hidden = model.Forward(tokens, 1, time);
        var next = new int[time];
        for (int t = 0; t < time; t++)
        {
            next[t] = t + 1 < time ? tokens[t + 1] : -1;
        }

        var targets = backend.AllocateTensor(DType.I32, time);
        var logProbs = backend.AllocateTensor(DType.F32, time);
        var rowStats = backend.AllocateTensor(DType.F32, time, 2);
        try
        {
            backend.CopyFromHost<int>(targets, next);
            backend.TokenLogProbsForward(new TokenLogProbOutputs(logProbs, rowStats), hidden, model.HeadWeight, new TokenLogProbInputs(targets));
            var host = new float[time];
            backend.CopyToHost<float>(logProbs, host);
            return [.. host.Take(time - 1).Select(x => (double)x)];
        }
        finally
        {
            targets.Buffer?.Dispose();
            logProbs.Buffer?.Dispose();
            rowStats.Buffer?.Dispose();
        }
    }

    /// <summary>A metric of a stage's metrics.jsonl to chart: its key, its legend name and its axis title, in words.</summary>
    private readonly record struct Series(string Key, string Name, string Axis);

    private const string PerToken = "loss (nats per token)", ImplicitReward = "implicit reward β·log(π/π_SFT)", PairsRight = "share of pairs ordered right";

    private static readonly Series[] LanguageModelCurves = [new("loss", "train loss", PerToken), new("eval_loss", "eval loss", PerToken)];

    private static readonly Series[] RmCurves =
    [
        new("loss", "train loss", "pairwise loss"), new("eval_loss", "held-out loss", "pairwise loss"),
        new("rewards/chosen", "chosen answer", "RM score"), new("rewards/rejected", "rejected answer", "RM score"),
        new("rewards/margins", "margin (chosen − rejected)", "RM score"), new("eval_rewards/accuracies", "held-out pairs", PairsRight),
    ];

    private static readonly Series[] DpoCurves =
    [
        new("loss", "train loss", "DPO loss"), new("eval_loss", "held-out loss", "DPO loss"),
        new("rewards/chosen", "chosen answer", ImplicitReward), new("rewards/rejected", "rejected answer", ImplicitReward),
        new("rewards/margins", "margin (chosen − rejected)", ImplicitReward), new("eval_rewards/accuracies", "held-out pairs", PairsRight),
    ];

    private static readonly Series[] OnlineDpoCurves =
    [
        new("loss", "train loss", "DPO loss"),
        new("rewards/chosen", "chosen sample", ImplicitReward), new("rewards/rejected", "rejected sample", ImplicitReward),
        new("rewards/margins", "margin (chosen − rejected)", ImplicitReward), new("objective/scores", "mean RM score of the samples", "RM score"),
        new("objective/scores_margin", "best − worst sample of a prompt", "RM score"),
        new("objective/tied_prompts", "prompts whose samples all tied", "share of prompts"),
    ];

    private static readonly Series[] PpoCurves =
    [
        new("loss/policy_avg", "policy loss (clipped surrogate)", "policy loss"), new("loss/ptx_avg", "pretraining loss (PPO-ptx)", PerToken),
        new("objective/scores", "mean RM score of the samples", "RM score (normalised)"),
        new("objective/kl", "KL of the samples to SFT", "KL (nats per response)"),
    ];

    // The named metrics of a stage's metrics.jsonl as curves over steps, in the order given; absent ones are left out.
    private static List<Curve> ReadCurves(string directory, IReadOnlyList<Series> metrics)
    {
        string path = Path.Combine(directory, Trainer<SequenceBatch>.MetricsFile);
        var series = new Dictionary<string, List<CurvePoint>>(StringComparer.Ordinal);
        if (!File.Exists(path))
        {
            return [];
        }

        foreach (string line in File.ReadLines(path))
        {
            if (string.IsNullOrWhiteSpace(line))
            {
                continue;
            }

            using var doc = JsonDocument.Parse(line);
            if (!doc.RootElement.TryGetProperty("step", out var stepElement) || stepElement.ValueKind != JsonValueKind.Number)
            {
                continue;
            }

            long step = (long)stepElement.GetDouble();
            foreach (string metric in metrics.Select(m => m.Key))
            {
                if (doc.RootElement.TryGetProperty(metric, out var value) && value.ValueKind == JsonValueKind.Number && double.IsFinite(value.GetDouble()))
                {
                    (series.TryGetValue(metric, out var points) ? points : series[metric] = []).Add(new CurvePoint(step, value.GetDouble()));
                }
            }
        }

        return [.. metrics.Where(m => series.ContainsKey(m.Key)).Select(m => new Curve(m.Name, series[m.Key]) { Axis = m.Axis })];
    }
}
