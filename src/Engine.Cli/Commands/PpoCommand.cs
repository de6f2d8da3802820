using System.CommandLine;
using System.Globalization;
using Engine.Models;
using Engine.Models.HuggingFace;
using Engine.Training;
using Engine.Training.Data;
using Engine.Training.Options;
using Engine.Training.Rl.Memory;
using Engine.Training.Rl.Ppo;
using Engine.Training.Rl.Sampling;

namespace Engine.Cli.Commands;

/// <summary>
/// <c>engine ppo</c>: RLHF with PPO (and PPO-ptx) from an SFT checkpoint (actor and reference), a reward model
/// (reward, and the critic's start unless <c>--critic</c> is given) and a prompts file; options as the other
/// trainers take them (<c>--config</c>, <c>--set key=value</c>, <see cref="PpoOptions"/>).
/// </summary>
internal static class PpoCommand
{
    public static Command Create()
    {
        var flags = new TrainingFlags();
        var actor = new Option<string>("--actor") { Description = "the SFT checkpoint: the actor starts from it and it is the frozen reference", Required = true };
        var reward = new Option<string>("--reward") { Description = "the reward model's checkpoint (scalar head)", Required = true };
        var critic = new Option<string?>("--critic") { Description = "the critic's starting checkpoint, trunk + scalar head (default: --reward)" };
        var reference = new Option<string?>("--ref") { Description = "the frozen reference policy (default: --actor)" };
        var referencePerRollout = new Option<bool>("--ref-per-rollout") { Description = "load the reference only to compute each rollout's log-probs, then release it" };
        var prompts = new Option<string>("--prompts") { Description = "prompts, JSONL or Parquet (prompt field, or messages ending before the answer)", Required = true };
        var ptxData = new Option<string?>("--ptx-data") { Description = "pretraining text, JSONL or Parquet (text field), for PPO-ptx (ptx_coef)" };
        var command = new Command("ppo", TrainingFlags.Describe("RLHF with PPO (InstructGPT, PPO-ptx): actor from SFT, critic from the reward model, KL penalty to the frozen SFT policy.", new PpoOptions()));
        foreach (var option in (Option[])[actor, reward, critic, reference, referencePerRollout, prompts, ptxData, flags.Config, flags.Set, flags.Tokenizer, flags.Out, flags.Resume, flags.Device, flags.Threads, flags.SkipBadLines, flags.ChatTemplate, flags.Lora])
        {
            command.Add(option);
        }

        command.SetAction(parse =>
        {
            string actorDir = ModelInputs.ExistingDirectory(parse.GetValue(actor)!, "--actor");
            string rewardDir = ModelInputs.ExistingDirectory(parse.GetValue(reward)!, "--reward");
            string criticDir = ModelInputs.ExistingDirectory(parse.GetValue(critic) ?? rewardDir, "--critic");
            string referenceDir = ModelInputs.ExistingDirectory(parse.GetValue(reference) ?? actorDir, "--ref");
            if (HfCheckpoint.ReadConfig(rewardDir).Model.Head != HeadKind.Scalar)
            {
                throw new CommandException($"--reward: {rewardDir} has no scalar (reward) head; train one with engine rm");
            }

            int context = new[] { actorDir, rewardDir, criticDir, referenceDir }.Min(dir => HfCheckpoint.ReadConfig(dir).Model.MaxSequenceLength);
            using var session = TrainingSession<PpoOptions>.Open(flags, parse, actorDir, context, PpoOptions.Response);
            session.ModelConfig = HfCheckpoint.ReadConfig(actorDir);
            var options = session.Options;
            int eos = session.EosTokenId ?? throw new CommandException($"{actorDir}: no eos_token_id in config.json and no EOS token in the tokenizer; PPO needs one to end responses");
            var promptIds = Tokenize(session.Read(parse.GetValue(prompts), "--prompts")!, session, options);
            var ptxExamples = session.Read(parse.GetValue(ptxData), "--ptx-data");
            var ptx = ptxExamples is null ? null : new PretrainBatches(session.Encoder, ptxExamples, options.MaxLength, PpoTrainer.PtxRows(options));

            using var actorModel = session.LoadPolicy(actorDir);
            bool baseIsReference = actorModel.Lora is not null && parse.GetValue(reference) is null;
            using var criticModel = session.LoadModel(criticDir, load: new HfLoadOptions { Head = HeadKind.Scalar, HeadSeed = options.Seed });
            using var rewardModel = session.LoadModel(rewardDir, trainable: false);

            // With LoRA the actor is its own reference (its base, adapters off): nothing more to load or keep.
            Transformer? residentReference = parse.GetValue(referencePerRollout) || baseIsReference ? null : session.LoadModel(referenceDir, trainable: false);
            using var policyReference = baseIsReference ? PolicyReference.Resident(actorModel) : residentReference is null
                ? PolicyReference.LoadedPerRollout(() => session.LoadModel(referenceDir, trainable: false), HfCheckpoint.ReadConfig(referenceDir).Model)
                : PolicyReference.Resident(residentReference);
            try
            {
                var trainer = new PpoTrainer(new PpoModels(actorModel, criticModel, rewardModel, policyReference), promptIds, ptx, eos, options)
                {
                    CheckpointFormat = session.SaveOptions(actorModel),
                    CriticCheckpointFormat = session.SaveOptions(criticModel),
                    Logger = StderrLogger.Instance,
                    BeforeRun = shape =>
                    {
                        var plan = MemoryPlan.Ppo(shape, session.Backend);
                        var memory = session.Backend.QueryMemory();
                        Console.Out.Write(plan.ToTable(memory));
                        plan.EnsureFits(memory);
                    },
                };
                var result = Run(session, trainer, options);
                if (result is null)
                {
                    return session.CancelledExitCode;
                }

                session.SaveFinal(actorModel);
                string criticFinal = Path.Combine(options.OutputDirectory, "final", PpoTrainer.CriticDirectory);
                HfCheckpoint.Save(criticModel, criticFinal, session.SaveOptions(criticModel));
                Console.Out.WriteLine($"saved {criticFinal}");
                return 0;
            }
            finally
            {
                residentReference?.Dispose();
            }
        });
        return command;
    }

    private static List<int[]> Tokenize(List<Example> examples, TrainingSession<PpoOptions> session, PpoOptions options)
    {
        try
        {
            return RolloutPrompts.Tokenize(examples, session.Encoder, options.MaxPromptLength, session.Template);
        }
        catch (DatasetException e)
        {
            throw new CommandException($"--prompts: {e.Message}", e);
        }
    }

    // Progress like the other trainers (RlProgressConsole); Ctrl+C, SIGTERM or SIGHUP cancels (the trainer writes a
    // checkpoint) and null comes back.
    private static TrainingResult? Run(TrainingSession<PpoOptions> session, PpoTrainer trainer, PpoOptions options)
    {
        var result = session.RunCancellable(token => RlProgressConsole.Run<PpoProgress>(trainer.Run, "ppo", options.LogInterval, p => (p.Step, p.TotalSteps), Line, token));
        if (result is null)
        {
            return null;
        }

        Console.Out.WriteLine(string.Create(
            CultureInfo.InvariantCulture,
            $"ppo: {result.Steps} steps, policy loss {result.TrainLoss:F4}, {result.TokensSeen} tokens in {result.Elapsed.TotalSeconds:F1} s{(result.ResumedFrom is null ? "" : $" (resumed from {result.ResumedFrom})")}"));
        return result;
    }

    private static string Line(PpoProgress p) => string.Create(
        CultureInfo.InvariantCulture,
        $"step {p.Step}/{p.TotalSteps}  score {p.Score:F4}  kl {p.Kl:F4}  beta {p.KlCoef:F4}  policy_loss {p.PolicyLoss:F4}  value_loss {p.ValueLoss:F4}  len {p.ResponseLength:F1}  eos {p.EosRate:P0}  gen {p.GenerationShare:P0}  {p.SecondsPerStep:F2} s/step");
}
