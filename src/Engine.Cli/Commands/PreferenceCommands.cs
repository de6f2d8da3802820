using System.CommandLine;
using System.Globalization;
using Engine.Core.Backends;
using Engine.Models;
using Engine.Training;
using Engine.Training.Data;
using Engine.Training.Objectives;
using Engine.Training.Objectives.Preference;
using Engine.Training.Options;

namespace Engine.Cli.Commands;

/// <summary>
/// The preference-optimisation family on the command line: <c>engine dpo --loss NAME[,NAME…] [--loss-weights …]</c>
/// beyond DPO's own four losses (reference-free SimPO, CPO and ORPO load no reference), and <c>engine kto</c>.
/// </summary>
internal static class PreferenceCommands
{
    private static readonly PreferenceOptions Defaults = new();

    /// <summary>The losses DPO's own objective runs (one of them alone, unweighted, keeps that path).</summary>
    private static readonly PreferenceLossType[] DpoLosses =
        [PreferenceLossType.Sigmoid, PreferenceLossType.Ipo, PreferenceLossType.Hinge, PreferenceLossType.Robust];

    /// <summary><c>--loss-weights</c>, <c>--simpo-gamma</c> and <c>--cpo-alpha</c>, added to <c>engine dpo</c>.</summary>
    public sealed class Flags
    {
        public Option<string?> LossWeights { get; } = new("--loss-weights") { Description = "weights of the --loss list, comma-separated (default: 1 each)" };

        public Option<float> SimpoGamma { get; } = new("--simpo-gamma") { Description = "SimPO's target reward margin γ", DefaultValueFactory = _ => Defaults.SimpoGamma };

        public Option<float> CpoAlpha { get; } = new("--cpo-alpha") { Description = "CPO: weight α of the NLL term on the chosen responses", DefaultValueFactory = _ => Defaults.CpoAlpha };

        public void AddTo(Command command)
        {
            command.Add(LossWeights);
            command.Add(SimpoGamma);
            command.Add(CpoAlpha);
        }

        /// <summary>Whether the command line asks for more than DPO's own objective: a list, weights, or another loss.</summary>
        public bool NeedsFamily(ParseResult parse, IReadOnlyList<PreferenceLossTerm> terms) =>
            terms.Count != 1 || !DpoLosses.Contains(terms[0].Type) || parse.GetValue(LossWeights) is not null
            || parse.GetResult(SimpoGamma) is { Implicit: false } || parse.GetResult(CpoAlpha) is { Implicit: false };
    }

    /// <summary>The <c>--loss</c> list with its <c>--loss-weights</c>; <see cref="CommandException"/> naming the flag when wrong.</summary>
    public static IReadOnlyList<PreferenceLossTerm> Losses(string losses, string? weights)
    {
        string[] names = losses.Split(',', StringSplitOptions.TrimEntries);
        var types = new PreferenceLossType[names.Length];
        for (int i = 0; i < names.Length; i++)
        {
            try
            {
                types[i] = PreferenceOptions.Parse(names[i]);
            }
            catch (ArgumentException e)
            {
                throw new CommandException($"--loss: {e.Message}");
            }
        }

        var w = Enumerable.Repeat(1f, names.Length).ToArray();
        if (weights is not null)
        {
            string[] parts = weights.Split(',', StringSplitOptions.TrimEntries);
            if (parts.Length != names.Length)
            {
                throw new CommandException($"--loss-weights: {parts.Length} weights for {names.Length} losses ({losses})");
            }

            for (int i = 0; i < parts.Length; i++)
            {
                if (!float.TryParse(parts[i], NumberStyles.Float, CultureInfo.InvariantCulture, out w[i]))
                {
                    throw new CommandException($"--loss-weights: '{parts[i]}' is not a number");
                }
            }
        }

        return [.. types.Select((t, i) => new PreferenceLossTerm(t, w[i]))];
    }

    /// <summary>
    /// <c>engine dpo</c> with a loss of the family: a frozen reference (or its cached log-probs) unless every loss is
    /// reference-free, in which case <c>--ref</c> and <c>--precompute-ref</c> are refused.
    /// </summary>
    public static int RunPaired(TrainingFlags flags, ParseResult parse, PreferenceOptions options, string? referenceArg, bool precompute)
    {
        OptionChecks.Validate(() => options.Validate(), null);
        string names = string.Join(",", options.Losses.Select(t => PreferenceOptions.Name(t.Type)));
        if (options.ReferenceFree && (referenceArg is not null || precompute))
        {
            throw new CommandException($"--loss {names} is reference-free: --ref and --precompute-ref do not apply");
        }

        using var session = TrainingSession<TrainerOptions>.Open(flags, parse);
        var train = session.TrainData();
        var validation = session.EvalData();
        using var policy = session.LoadPolicy();
        TrainCommands.CheckVocabulary(policy, session.Tokenizer.VocabSize);
        var collator = session.Collator();
        var trainBatches = TrainCommands.Preferences(collator, train, session.Options);
        var validationBatches = validation is null ? null : TrainCommands.Preferences(collator, validation, session.Options);
        PreferencePlan.Check(session, policy, TrainCommands.PreferenceRows(trainBatches, validationBatches, session.Options), referenceArg, precompute, options.ReferenceFree);
        using var reference = options.ReferenceFree
            ? null
            : OpenReference(session, policy, referenceArg, precompute, [.. trainBatches.All().Concat(validationBatches?.All() ?? [])]);
        using var objective = new PreferenceObjective(policy, reference?.LogProbs, options);
        var trainer = new Trainer<PreferenceBatch>(policy, objective, trainBatches, validationBatches, session.Options) { CheckpointFormat = session.SaveOptions(policy) };
        return TrainCommands.Finish(session, policy, session.Run(trainer, "dpo"));
    }

    /// <summary><c>engine kto</c>: KTO on prompt/completion/label data against a frozen reference.</summary>
    public static Command CreateKto()
    {
        var flags = new TrainingFlags();
        var reference = new Option<string?>("--ref") { Description = "the frozen reference checkpoint (default: --model)" };
        var precompute = new Option<bool>("--precompute-ref") { Description = "compute the reference log-probs once, cache them in --out, and release the reference" };
        var beta = new Option<float>("--beta") { Description = "β: scale of the implicit reward", DefaultValueFactory = _ => Defaults.Beta };
        var desirable = new Option<float>("--desirable-weight") { Description = "weight of the desirable examples", DefaultValueFactory = _ => Defaults.DesirableWeight };
        var undesirable = new Option<float>("--undesirable-weight") { Description = "weight of the undesirable examples", DefaultValueFactory = _ => Defaults.UndesirableWeight };
        var command = new Command("kto", TrainingFlags.Describe(
            "Kahneman–Tversky optimisation of a policy against a frozen reference on unpaired prompt/completion/label data (label true = desirable).",
            new TrainerOptions()));
        flags.AddTo(command);
        command.Add(reference);
        command.Add(precompute);
        command.Add(beta);
        command.Add(desirable);
        command.Add(undesirable);
        command.SetAction(parse =>
        {
            var options = new PreferenceOptions
            {
                Losses = [new(PreferenceLossType.Kto)],
                Beta = parse.GetValue(beta),
                DesirableWeight = parse.GetValue(desirable),
                UndesirableWeight = parse.GetValue(undesirable),
            };
            OptionChecks.Validate(() => options.Validate(unpaired: true), null);
            using var session = TrainingSession<TrainerOptions>.Open(flags, parse);
            var train = session.TrainData();
            var validation = session.EvalData();
            using var policy = session.LoadPolicy();
            TrainCommands.CheckVocabulary(policy, session.Tokenizer.VocabSize);
            var collator = session.Collator();
            var trainBatches = new KtoBatches(collator, train, session.Options.BatchSize);
            var validationBatches = validation is null ? null : new KtoBatches(collator, validation, session.Options.BatchSize);
            PreferencePlan.Check(session, policy, 2 * session.Options.BatchSize, parse.GetValue(reference), parse.GetValue(precompute), method: "kto");
            using var referenceSource = OpenReference(
                session, policy, parse.GetValue(reference), parse.GetValue(precompute), [.. trainBatches.All().Concat(validationBatches?.All() ?? []).Select(b => b.Rows)]);
            using var objective = new KtoObjective(policy, referenceSource.LogProbs, options);
            var trainer = new Trainer<KtoBatch>(policy, objective, trainBatches, validationBatches, session.Options) { CheckpointFormat = session.SaveOptions(policy) };
            return TrainCommands.Finish(session, policy, session.Run(trainer, "kto"));
        });
        return command;
    }

    // The reference: a frozen model kept in memory, or (--precompute-ref) its log-probs of every row cached in --out. A
    // policy that trains LoRA adapters is its own reference when --ref is not given: its base with the adapters off.
    private static ReferenceSource OpenReference(
        TrainingSession<TrainerOptions> session, Transformer policy, string? referenceArg, bool precompute, IReadOnlyList<PreferenceBatch> all)
    {
        string referenceDir = ModelInputs.ExistingDirectory(referenceArg ?? session.ModelDirectory!, "--ref");
        bool baseIsReference = policy.Lora is not null && referenceArg is null;
        if (!precompute)
        {
            var model = baseIsReference ? policy : session.LoadModel(referenceDir, trainable: false);
            return new ReferenceSource(new ReferenceModel(model), baseIsReference ? null : model);
        }

        Directory.CreateDirectory(session.OutputDirectory);
        var cache = ReferenceLogProbCache.LoadOrCompute(
            Path.Combine(session.OutputDirectory, "reference_logprobs.safetensors"), all, ReferenceLogProbCache.CheckpointKey(referenceDir),
            () => baseIsReference ? policy : session.LoadModel(referenceDir, trainable: false), keepReference: baseIsReference);
        Console.Out.WriteLine($"reference log-probs: {cache.Count} sequences cached");
        return new ReferenceSource(cache, null);
    }

    private sealed class ReferenceSource(IReferenceLogProbs logProbs, Transformer? model) : IDisposable
    {
        public IReferenceLogProbs LogProbs => logProbs;

        public void Dispose()
        {
            (logProbs as IDisposable)?.Dispose();
            model?.Dispose();
        }
    }
}
