using System.CommandLine;
using System.Globalization;
using Engine.Models;
using Engine.Models.HuggingFace;
using Engine.Training;
using Engine.Training.Data;
using Engine.Training.Rl.Grpo;
using Engine.Training.Rl.Ppo;
using Engine.Training.Rl.Rewards;

namespace Engine.Cli.Commands;

/// <summary>
/// <c>engine grpo</c>: critic-free online RL (GRPO, Dr. GRPO, DAPO, GSPO, RLOO, REINFORCE++) of a policy on a prompts
/// file with reward functions given as <c>--reward [NAME=]KIND:ARG</c> (<see cref="RewardSpecs"/>); options as the other
/// trainers take them (<c>--config</c>, <c>--set key=value</c>, <see cref="GrpoOptions"/>).
/// </summary>
internal static class GrpoCommand
{
    public static Command Create()
    {
        var flags = new TrainingFlags();
        flags.Model.Required = true;
        flags.Model.Description = "the policy's starting checkpoint (e.g. the SFT model); also the frozen reference when beta > 0 (with --lora: its base, adapters off)";
        var prompts = new Option<string>("--prompts") { Description = "prompts, JSONL (prompt field, or messages ending before the answer; other columns reach the rewards)", Required = true };
        var reward = new Option<string[]>("--reward")
        {
            Description = "a reward function, [NAME=]KIND[:ARGUMENT] (repeatable; metrics rewards/NAME/mean; without NAME=, one is named after its kind: "
                + $"format, then format_2, format_3, …; built in: {string.Join(", ", RewardSpecs.BuiltIn.Select(b => $"{b.Kind} — {b.Argument}"))})",
            Required = true,
            AllowMultipleArgumentsPerToken = false,
        };
        var weights = new Option<string?>("--reward-weights") { Description = "the weight of each --reward, comma-separated, in order (default: all 1)" };
        var reference = new Option<string?>("--ref") { Description = "the frozen reference policy when beta > 0 (default: --model)" };
        var referencePerRollout = new Option<bool>("--ref-per-rollout") { Description = "load the reference only to compute each step's log-probs, then release it" };
        var command = new Command("grpo", TrainingFlags.Describe(
            "Critic-free online RL with verifiable rewards: GRPO and its variants (Dr. GRPO, DAPO, GSPO, RLOO, REINFORCE++); no critic, no reward model unless a reward names one, a reference only when beta > 0.",
            new GrpoOptions()));
        foreach (var option in (Option[])[flags.Model, prompts, reward, weights, reference, referencePerRollout, flags.Config, flags.Set, flags.Tokenizer, flags.Out, flags.Resume, flags.Device, flags.Threads, flags.SkipBadLines, flags.ChatTemplate, flags.Lora])
        {
            command.Add(option);
        }

        command.SetAction(parse =>
        {
            string? givenReference = parse.GetValue(reference);
            int context = Math.Min(
                ModelInputs.Context(parse.GetValue(flags.Model)!, "--model"),
                givenReference is null ? int.MaxValue : ModelInputs.Context(givenReference, "--ref"));
            using var session = TrainingSession<GrpoOptions>.Open(flags, parse, context: context, generated: GrpoOptions.Completion);
            var options = session.Options;
            string modelDir = session.ModelDirectory!;
            int eos = session.EosTokenId ?? throw new CommandException($"{modelDir}: no eos_token_id in config.json and no EOS token in the tokenizer; GRPO needs one to end completions");
            var rewards = Rewards(parse.GetValue(reward) ?? [], parse.GetValue(weights), session, options);
            var examples = session.Read(parse.GetValue(prompts), "--prompts")!;
            var promptIds = Tokenize(examples, session, options);
            if (promptIds.Count < options.BatchSize)
            {
                throw new CommandException($"--prompts: {promptIds.Count} prompts are fewer than one step's batch_size ({options.BatchSize})");
            }

            using var policy = session.LoadPolicy(modelDir);

            // With LoRA the policy is its own reference (its base, adapters off): nothing more to load or keep.
            bool baseIsReference = options.NeedsReference && policy.Lora is not null && parse.GetValue(reference) is null;
            string? referenceDir = options.NeedsReference && !baseIsReference ? ModelInputs.ExistingDirectory(parse.GetValue(reference) ?? modelDir, "--ref") : null;
            Transformer? residentReference = referenceDir is null || parse.GetValue(referencePerRollout) ? null : session.LoadModel(referenceDir, trainable: false);
            using var policyReference = baseIsReference ? PolicyReference.Resident(policy) : referenceDir is null ? null : residentReference is null
                ? PolicyReference.LoadedPerRollout(() => session.LoadModel(referenceDir, trainable: false), HfCheckpoint.ReadConfig(referenceDir).Model)
                : PolicyReference.Resident(residentReference);
            try
            {
                var trainer = new GrpoTrainer(policy, policyReference, rewards, promptIds, GrpoGroups.Decoder(session.Tokenizer), eos, options)
                {
                    CheckpointFormat = session.SaveOptions(policy),
                    Logger = StderrLogger.Instance,
                    BeforeRun = plan => Console.Out.Write(plan.ToTable(session.Backend.QueryMemory())),
                };
                var result = session.RunCancellable(token => RlProgressConsole.Run<GrpoProgress>(trainer.Run, "grpo", options.LogInterval, p => (p.Step, p.TotalSteps), Line, token));
                if (result is null)
                {
                    return session.CancelledExitCode;
                }

                Console.Out.WriteLine(string.Create(
                    CultureInfo.InvariantCulture,
                    $"grpo: {result.Steps} steps, loss {result.TrainLoss:F4}, {result.TokensSeen} tokens in {result.Elapsed.TotalSeconds:F1} s{(result.ResumedFrom is null ? "" : $" (resumed from {result.ResumedFrom})")}"));
                session.SaveFinal(policy);
                return 0;
            }
            finally
            {
                residentReference?.Dispose();
            }
        });
        return command;
    }

    /// <summary>The --reward functions with their --reward-weights.</summary>
    private static RewardSet Rewards(string[] specs, string? weights, TrainingSession<GrpoOptions> session, GrpoOptions options)
    {
        var context = new RewardSpecContext(session.Backend, options.MaxCompletionLength);
        var functions = RewardSpecs.ParseAll(specs, context);
        float[]? parsed = null;
        if (weights is not null)
        {
            var parts = weights.Split(',', StringSplitOptions.TrimEntries);
            parsed = new float[parts.Length];
            for (int i = 0; i < parts.Length; i++)
            {
                if (!float.TryParse(parts[i], NumberStyles.Float, CultureInfo.InvariantCulture, out parsed[i]) || !float.IsFinite(parsed[i]))
                {
                    throw new CommandException($"--reward-weights: '{parts[i]}' is not a finite number");
                }
            }

            if (parsed.Length != functions.Count)
            {
                throw new CommandException($"--reward-weights: {parsed.Length} weights for {functions.Count} --reward functions; give one per --reward, in order");
            }
        }

        try
        {
            return new RewardSet(functions, parsed);
        }
        catch (ArgumentException e)
        {
            string detail = e.ParamName is null ? e.Message : e.Message.Replace($" (Parameter '{e.ParamName}')", "", StringComparison.Ordinal);
            throw new CommandException($"--reward: {detail}", e);
        }
    }

    private static List<GrpoPrompt> Tokenize(List<Example> examples, TrainingSession<GrpoOptions> session, GrpoOptions options)
    {
        try
        {
            return GrpoPrompt.Tokenize(examples, session.Encoder, options.MaxPromptLength, session.Template);
        }
        catch (DatasetException e)
        {
            throw new CommandException($"--prompts: {e.Message}", e);
        }
    }

    private static string Line(GrpoProgress p) => string.Create(
        CultureInfo.InvariantCulture,
        $"step {p.Step}/{p.TotalSteps}  reward {p.Reward:F4}  reward_std {p.RewardStd:F4}  zero_std {p.ZeroStdFraction:P0}  loss {p.Loss:F4}{(double.IsNaN(p.Kl) ? "" : $"  kl {p.Kl:F4}")}  len {p.CompletionLength:F1}  clipped {p.ClippedRatio:P0}  gen {p.GenerationShare:P0}  {p.SecondsPerStep:F2} s/step");
}
