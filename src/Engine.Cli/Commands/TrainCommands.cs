using System.CommandLine;
using System.Globalization;
using Engine.Core.Backends;
using Engine.Models;
using Engine.Models.HuggingFace;
using Engine.Models.Lora;
using Engine.Training;
using Engine.Training.Data;
using Engine.Training.Objectives;
using Engine.Training.Objectives.Preference;
using Engine.Training.Options;
using Engine.Training.Rl.OnlineDpo;
using Engine.Training.Rl.Sampling;

namespace Engine.Cli.Commands;

/// <summary><c>engine pretrain</c>, <c>engine sft</c>, <c>engine rm</c> and <c>engine dpo</c>: the trainers behind one set of flags.</summary>
internal static class TrainCommands
{
    private static readonly DpoOptions DpoDefaults = new();
    private static readonly PreferenceOptions PreferenceDefaults = new();

    public static void AddTo(RootCommand root)
    {
        root.Add(CreatePretrain());
        root.Add(CreateSft());
        root.Add(CreateRewardModel());
        root.Add(CreateDpo());
        root.Add(PreferenceCommands.CreateKto());
    }

    private static Command CreatePretrain()
    {
        var flags = new TrainingFlags();
        var configModel = new Option<string?>("--config-model") { Description = "a config.json: create the model from scratch with these dimensions (instead of --model)" };
        var command = new Command("pretrain", TrainingFlags.Describe("Pretrain a language model on text JSONL (documents joined by EOS, cut into max_length rows).", new PretrainOptions()));
        flags.AddTo(command, requireModel: false);
        command.Add(configModel);
        command.SetAction(parse =>
        {
            string? fromConfig = parse.GetValue(configModel);
            if ((fromConfig is null) == (parse.GetValue(flags.Model) is null))
            {
                throw new CommandException("give exactly one of --model and --config-model");
            }

            if (fromConfig is not null && !File.Exists(fromConfig))
            {
                throw new CommandException($"--config-model: file '{fromConfig}' does not exist");
            }

            var created = fromConfig is null ? null : HfConfig.ReadFile(fromConfig);
            using var session = TrainingSession<PretrainOptions>.Open(flags, parse, fromConfig is null ? null : Path.GetDirectoryName(Path.GetFullPath(fromConfig)), created?.Model.MaxSequenceLength);
            var train = session.TrainData();
            var validation = session.EvalData();
            Transformer model;
            if (fromConfig is null)
            {
                model = session.LoadPolicy();
            }
            else if (session.Lora is not null)
            {
                throw new CommandException("--lora adapts a trained model: give --model (LoRA over the random weights of --config-model would train almost nothing)");
            }
            else
            {
                var config = created!;
                session.ModelConfig = config;
                model = new Transformer(config.Model, session.Backend);
                model.InitializeWeights(session.Options.Seed);
            }

            using (model)
            {
                CheckVocabulary(model, session.Tokenizer.VocabSize);
                var trainer = LanguageModelTrainers.Pretrain(model, session.Encoder, train, validation, session.Options, session.SaveOptions(model));
                return Finish(session, model, session.Run(trainer, "pretrain"));
            }
        });
        return command;
    }

    private static Command CreateSft()
    {
        var flags = new TrainingFlags();
        var command = new Command("sft", TrainingFlags.Describe("Supervised fine-tuning on text, prompt/completion, Alpaca or messages JSONL (loss on responses only).", new SftOptions()));
        flags.AddTo(command);
        command.SetAction(parse =>
        {
            using var session = TrainingSession<SftOptions>.Open(flags, parse);
            var train = session.TrainData();
            var validation = session.EvalData();
            using var model = session.LoadPolicy();
            CheckVocabulary(model, session.Tokenizer.VocabSize);
            var trainer = LanguageModelTrainers.Sft(model, session.Encoder, train, validation, session.Options, session.Template, session.PadTokenId, session.SaveOptions(model));
            return Finish(session, model, session.Run(trainer, "sft"));
        });
        return command;
    }

    private static Command CreateRewardModel()
    {
        var flags = new TrainingFlags();
        var demos = new Option<string?>("--demos") { Description = "SFT demonstrations (JSONL or Parquet): after training, shift the reward bias so their mean reward is 0" };
        var center = new Option<float>("--center-rewards") { Description = "center_rewards_coefficient: penalty on (r_chosen + r_rejected)²", DefaultValueFactory = _ => 0f };
        var command = new Command("rm", TrainingFlags.Describe("Train a reward model (scalar head) on preference pairs or rankings, starting from an SFT checkpoint.", new TrainerOptions()));
        flags.AddTo(command);
        command.Add(demos);
        command.Add(center);
        command.SetAction(parse =>
        {
            using var session = TrainingSession<TrainerOptions>.Open(flags, parse);
            var train = session.TrainData();
            var validation = session.EvalData();
            var demonstrations = session.Read(parse.GetValue(demos), "--demos");
            var rmOptions = new RewardModelOptions { CenterRewardsCoefficient = parse.GetValue(center) };
            OptionChecks.Validate(rmOptions.Validate, null);
            // With LoRA the new scalar head trains in full beside the adapters and is saved with them (PEFT's modules_to_save).
            var scalarHead = new HfLoadOptions { Head = HeadKind.Scalar, HeadSeed = session.Options.Seed };
            using var model = session.LoadPolicy(load: scalarHead, lora: session.Lora is { } l ? l with { ModulesToSave = [LoraConfig.ScoreModule] } : null);
            CheckVocabulary(model, session.Tokenizer.VocabSize);
            var collator = session.Collator();
            using var objective = new RewardModelObjective(model, rmOptions);
            var trainer = new Trainer<PreferenceBatch>(
                model, objective, Preferences(collator, train, session.Options), validation is null ? null : Preferences(collator, validation, session.Options), session.Options)
            {
                CheckpointFormat = session.SaveOptions(model),
            };
            var result = session.Run(trainer, "rm");
            if (result is not null && demonstrations is not null)
            {
                var sft = new SftBatches(session.Collator(new CollatorOptions { Packing = false }), demonstrations, session.Options.BatchSize);
                var stats = objective.Calibrate(sft.Batches(null));
                Console.Out.WriteLine(string.Create(
                    CultureInfo.InvariantCulture,
                    $"calibrated on {stats.Count} demonstrations: bias {model.ScoreBias:F4}, reward std {stats.Std:F4}"));
            }

            return Finish(session, model, result);
        });
        return command;
    }

    private static Command CreateDpo()
    {
        var flags = new TrainingFlags();
        var reference = new Option<string?>("--ref") { Description = "the frozen reference checkpoint (default: --model)" };
        var precompute = new Option<bool>("--precompute-ref") { Description = "compute the reference log-probs once, cache them in --out, and release the reference" };
        var defaults = DpoDefaults;
        var loss = new Option<string>("--loss")
        {
            Description = $"a loss or a comma-separated list (with --loss-weights): {string.Join(", ", PreferenceOptions.Names.Where(n => n != "kto"))}; simpo, cpo, orpo and sft alone need no reference",
            DefaultValueFactory = _ => "sigmoid",
        };
        var family = new PreferenceCommands.Flags();
        var beta = new Option<float>("--beta") { Description = "β: strength of the KL penalty to the reference", DefaultValueFactory = _ => defaults.Beta };
        var smoothing = new Option<float>("--label-smoothing") { Description = "label smoothing (sigmoid and robust losses)", DefaultValueFactory = _ => defaults.LabelSmoothing };
        var online = new Option<bool>("--online") { Description = "online DPO: sample pairs from the policy each round and label them with --reward; --data holds the prompts" };
        var reward = new Option<string?>("--reward") { Description = "--online: the reward model's checkpoint (a scalar head) that picks chosen and rejected" };
        var command = new Command("dpo", TrainingFlags.Describe("Direct preference optimisation of a policy against a frozen reference on preference pairs or rankings (or, with --online, on pairs sampled from the policy).", new TrainerOptions())
            + "\n\nWith --online:\n" + OptionsReader.HelpText(new OnlineDpoOptions()));
        flags.AddTo(command);
        flags.Model.Aliases.Add("--policy");
        flags.Data.Aliases.Add("--prompts");
        command.Add(reference);
        command.Add(precompute);
        command.Add(loss);
        command.Add(beta);
        command.Add(smoothing);
        command.Add(online);
        command.Add(reward);
        family.AddTo(command);
        command.SetAction(parse =>
        {
            // The flags given on the command line override the options' dpo.* keys (offline: the defaults).
            DpoOptions Flags(DpoOptions options) => options with
            {
                Loss = parse.GetResult(loss) is { Implicit: false }
                    ? parse.GetValue(loss) switch
                    {
                        "ipo" => PairwiseLossType.Ipo,
                        "hinge" => PairwiseLossType.Hinge,
                        "robust" => PairwiseLossType.Robust,
                        _ => PairwiseLossType.Sigmoid,
                    }
                    : options.Loss,
                Beta = parse.GetResult(beta) is { Implicit: false } ? parse.GetValue(beta) : options.Beta,
                LabelSmoothing = parse.GetResult(smoothing) is { Implicit: false } ? parse.GetValue(smoothing) : options.LabelSmoothing,
            };

            var terms = PreferenceCommands.Losses(parse.GetValue(loss)!, parse.GetValue(family.LossWeights));
            if (family.NeedsFamily(parse, terms))
            {
                if (parse.GetValue(online) || parse.GetValue(reward) is not null)
                {
                    throw new CommandException($"--online trains with sigmoid, ipo, hinge or robust only, not --loss {parse.GetValue(loss)}");
                }

                var familyOptions = new PreferenceOptions
                {
                    Losses = terms,
                    Beta = parse.GetResult(beta) is { Implicit: false } ? parse.GetValue(beta) : PreferenceDefaults.Beta,
                    LabelSmoothing = parse.GetValue(smoothing),
                    SimpoGamma = parse.GetValue(family.SimpoGamma),
                    CpoAlpha = parse.GetValue(family.CpoAlpha),
                };
                return PreferenceCommands.RunPaired(flags, parse, familyOptions, parse.GetValue(reference), parse.GetValue(precompute));
            }

            if (parse.GetValue(online))
            {
                if (parse.GetValue(precompute) || parse.GetValue(flags.EvalData) is not null)
                {
                    throw new CommandException("--online samples new responses every round: --precompute-ref and --eval-data do not apply");
                }

                return RunOnlineDpo(flags, parse, parse.GetValue(reward) ?? throw new CommandException("--online needs --reward (the reward model's checkpoint)"), parse.GetValue(reference), Flags);
            }

            if (parse.GetValue(reward) is not null)
            {
                throw new CommandException("--reward applies to --online only (offline DPO learns from the preferences in --data)");
            }

            var dpoOptions = Flags(DpoDefaults);
            OptionChecks.Validate(dpoOptions.Validate, null);
            using var session = TrainingSession<TrainerOptions>.Open(flags, parse);
            var train = session.TrainData();
            var validation = session.EvalData();
            string referenceDir = ModelInputs.ExistingDirectory(parse.GetValue(reference) ?? session.ModelDirectory!, "--ref");

            using var policy = session.LoadPolicy();
            bool baseIsReference = policy.Lora is not null && parse.GetValue(reference) is null;
            CheckVocabulary(policy, session.Tokenizer.VocabSize);
            var collator = session.Collator();
            var trainBatches = Preferences(collator, train, session.Options);
            var validationBatches = validation is null ? null : Preferences(collator, validation, session.Options);
            PreferencePlan.Check(session, policy, PreferenceRows(trainBatches, validationBatches, session.Options), parse.GetValue(reference), parse.GetValue(precompute));
            DpoObjective objective;
            if (parse.GetValue(precompute))
            {
                Directory.CreateDirectory(session.OutputDirectory);
                var all = trainBatches.All().Concat(validationBatches?.All() ?? []).ToList();
                var cache = ReferenceLogProbCache.LoadOrCompute(
                    Path.Combine(session.OutputDirectory, "reference_logprobs.safetensors"),
                    all,
                    ReferenceLogProbCache.CheckpointKey(referenceDir),
                    () => baseIsReference ? policy : session.LoadModel(referenceDir, trainable: false),
                    keepReference: baseIsReference);
                Console.Out.WriteLine($"reference log-probs: {cache.Count} sequences cached");
                objective = new DpoObjective(policy, cache, dpoOptions);
            }
            else
            {
                // With LoRA the policy is its own reference: its base with the adapters off, no second copy.
                objective = new DpoObjective(policy, baseIsReference ? policy : session.LoadModel(referenceDir, trainable: false), dpoOptions);
            }

            using (objective)
            {
                var trainer = new Trainer<PreferenceBatch>(policy, objective, trainBatches, validationBatches, session.Options) { CheckpointFormat = session.SaveOptions(policy) };
                int code = Finish(session, policy, session.Run(trainer, "dpo"));
                if (objective.Reference is ReferenceModel { Model: var referenceModel } && !ReferenceEquals(referenceModel, policy))
                {
                    referenceModel.Dispose();
                }

                return code;
            }
        });
        return command;
    }

    // engine dpo --online: the options are OnlineDpoOptions (dpo.beta, samples_per_prompt, ...); the --loss, --beta and
    // --label-smoothing flags, when given, override the dpo.* keys.
    private static int RunOnlineDpo(TrainingFlags flags, ParseResult parse, string rewardDir, string? referenceDir, Func<DpoOptions, DpoOptions> dpoFlags)
    {
        // The policy, the reference and the reward model all read the rollouts: max_length must fit the shortest context.
        string policyDir = parse.GetValue(flags.Model)!;
        int context = Math.Min(
            Math.Min(ModelInputs.Context(policyDir, "--model"), ModelInputs.Context(referenceDir ?? policyDir, "--ref")),
            ModelInputs.Context(rewardDir, "--reward"));
        using var session = TrainingSession<OnlineDpoOptions>.Open(flags, parse, context: context, generated: OnlineDpoOptions.Response);
        var options = session.Options with { Dpo = dpoFlags(session.Options.Dpo) };
        OptionChecks.Validate(options.Validate, parse.GetValue(flags.Config));
        ModelInputs.ExistingDirectory(referenceDir ?? session.ModelDirectory!, "--ref");
        ModelInputs.ExistingDirectory(rewardDir, "--reward");

        var collator = session.Collator();
        var prompts = RolloutPrompts.Tokenize(session.TrainData(), session.Encoder, options.MaxPromptLength, session.Template);
        bool baseIsReference = session.Lora is not null && referenceDir is null;
        referenceDir ??= session.ModelDirectory!;
        using var policy = session.LoadPolicy();
        CheckVocabulary(policy, session.Tokenizer.VocabSize);
        using var separateReference = baseIsReference ? null : session.LoadModel(referenceDir, trainable: false);
        var reference = separateReference ?? policy;
        using var rm = session.LoadModel(rewardDir, trainable: false);
        if (!rm.HasScalarHead)
        {
            throw new CommandException($"--reward: '{rewardDir}' has no scalar (reward) head; train one with engine rm");
        }

        var stops = session.EosTokenId is int eos ? new[] { eos } : [];
        using var trainer = new OnlineDpoTrainer(policy, reference, rm, prompts, collator, options, stops)
        {
            CheckpointFormat = session.SaveOptions(policy),
            Logger = StderrLogger.Instance,
        };
        Console.Out.Write(trainer.MemoryPlan.ToTable(session.Backend.QueryMemory()));
        var result = session.Run(trainer.Run, "online dpo");
        Console.Out.WriteLine($"online dpo: {trainer.TimeSummary()}");
        return Finish(session, policy, result);
    }

    internal static PreferenceBatches Preferences(SequenceCollator collator, List<Example> examples, TrainerOptions options)
    {
        if (examples.FirstOrDefault(e => e is not (PreferenceExample or RankingExample)) is { } other)
        {
            throw new CommandException($"{other.Source}:{other.Line}: expected a preference pair (chosen/rejected) or a ranking, got {ExampleFormats.Fields(other)}");
        }

        return new PreferenceBatches(collator, examples, options.BatchSize);
    }

    /// <summary>The most rows a DPO micro-batch holds: batch_size prompts times the most responses of one (2 for pairs, K for rankings).</summary>
    internal static int PreferenceRows(PreferenceBatches train, PreferenceBatches? validation, TrainerOptions options) =>
        options.BatchSize * train.Groups.Concat(validation?.Groups ?? []).Select(g => g.Responses.Count).DefaultIfEmpty(2).Max();

    internal static int Finish<TOptions>(TrainingSession<TOptions> session, Transformer model, TrainingResult? result)
        where TOptions : TrainerOptions, new()
    {
        if (result is null)
        {
            return session.CancelledExitCode;
        }

        session.SaveFinal(model);
        return 0;
    }

    internal static void CheckVocabulary(Transformer model, int tokenizerVocabulary)
    {
        if (tokenizerVocabulary > model.Config.VocabSize)
        {
            throw new CommandException($"the tokenizer has {tokenizerVocabulary} tokens but the model's vocabulary is {model.Config.VocabSize}");
        }
    }
}
