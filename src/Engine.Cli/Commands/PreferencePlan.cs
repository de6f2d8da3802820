using Engine.Models;
using Engine.Models.HuggingFace;
using Engine.Training.Options;
using Engine.Training.Rl.Memory;

namespace Engine.Cli.Commands;

/// <summary>
/// The memory plan of an offline preference run (<c>engine dpo</c> with any <c>--loss</c>, <c>engine kto</c>), printed
/// once the policy is loaded and before the reference and the training buffers are, as PPO, GRPO and online DPO print
/// theirs; a run the plan says does not fit the device is refused (<see cref="MemoryPlanException"/>).
/// </summary>
internal static class PreferencePlan
{
    /// <summary>
    /// Prints and checks the plan of training <paramref name="policy"/> on micro-batches of <paramref name="rows"/> rows of
    /// at most max_length tokens: no reference when <paramref name="referenceFree"/>; else <paramref name="referenceArg"/>
    /// (--ref; by default --model, or with LoRA the policy's base with adapters off), not resident with <paramref name="precompute"/>.
    /// </summary>
    public static void Check(
        TrainingSession<TrainerOptions> session, Transformer policy, int rows, string? referenceArg, bool precompute, bool referenceFree = false, string method = "dpo")
    {
        var options = session.Options;
        var reference = referenceFree ? null : referenceArg is null ? policy.Config : HfCheckpoint.ReadConfig(ModelInputs.ExistingDirectory(referenceArg, "--ref")).Model;

        // Every pass is teacher-forced over whole rows: only prompt + response = max_length matters, not the split.
        var shape = new RlMemoryShape
        {
            RolloutBatch = rows,
            Minibatch = rows,
            PromptLength = options.MaxLength / 2,
            ResponseLength = options.MaxLength - (options.MaxLength / 2),
            CachedReferenceLogProbs = precompute,
            GradientCheckpointing = options.GradientCheckpointing,
            Lora = policy.Lora?.Config,
        };
        var plan = MemoryPlan.Dpo(policy.Config, shape, session.Backend, reference, separateReference: referenceArg is not null, referenceFree, method);
        var memory = session.Backend.QueryMemory();
        Console.Out.Write(plan.ToTable(memory));
        plan.EnsureFits(memory);
    }
}
