using System.Text.Json;
using Engine.Core;
using Engine.Core.Cpu;
using Engine.Tests.Training;
using Engine.Training;
using Engine.Training.Checkpoints;
using Engine.Training.Rl.Grpo;
using Engine.Training.Rl.Rewards;
using Xunit;

namespace Engine.Tests.Rl.Grpo;

/// <summary>A GRPO checkpoint records its rewards by name and weight; a resume must bring the same names in the same order.</summary>
public sealed class GrpoRewardResumeTests : IDisposable
{
    private readonly CpuBackend backend = new(2);
    private readonly TempDirectory dir = new();

    public void Dispose()
    {
        dir.Dispose();
        backend.Dispose();
    }

    [Fact]
    public void A_resume_with_other_reward_names_is_refused_and_other_weights_are_warned_about()
    {
        var options = GrpoHarness.Options(dir.Path, steps: 1) with { CheckpointInterval = 1 };
        Assert.Equal(TrainingStatus.Completed, Run(options, Rewards(["format", "format_2"], [1f, 0.5f])).Status);
        string checkpoint = Path.Combine(dir.Path, "checkpoint-1");
        using (var state = JsonDocument.Parse(File.ReadAllText(Path.Combine(checkpoint, CheckpointStore.StateFile))))
        {
            Assert.Equal("""[{"name":"format","weight":1},{"name":"format_2","weight":0.5}]""",
                JsonSerializer.Serialize(state.RootElement.GetProperty("rewards")));
        }

        var resume = options with { Resume = true };
        foreach (string[] names in (string[][])[["format"], ["format_2", "format"], ["format", "think"]])
        {
            var e = Assert.Throws<InputException>(() => Run(resume, Rewards(names, null)));
            Assert.Equal(
                $"{Path.Combine(checkpoint, CheckpointStore.StateFile)}: field 'rewards': the run had the rewards format, format_2, this one has {string.Join(", ", names)}; "
                + "resume with the same --reward list, in order (a reward without NAME= is named after its kind: format, format_2, …)",
                e.Message);
        }

        var logger = new ListLogger();
        Assert.Equal(TrainingStatus.Completed, Run(resume, Rewards(["format", "format_2"], [1f, 0.5f]), logger).Status);
        Assert.DoesNotContain(logger.Messages, m => m.Contains("reward weights", StringComparison.Ordinal));
        Assert.Equal(TrainingStatus.Completed, Run(resume, Rewards(["format", "format_2"], [1f, 2f]), logger).Status);
        Assert.Contains("resuming with reward weights that differ from the checkpoint's run (format 1, format_2 0.5 → format 1, format_2 2); the run will not match an uninterrupted one",
            logger.Messages);
    }

    private TrainingResult Run(GrpoOptions options, RewardSet rewards, ListLogger? logger = null)
    {
        using var policy = PpoHarness.Policy(backend);
        var trainer = new GrpoTrainer(policy, null, rewards, GrpoHarness.Prompts(8, 1), GrpoHarness.Decode, PpoHarness.Eos, options) { Logger = logger ?? new ListLogger() };
        return trainer.Run();
    }

    private static RewardSet Rewards(string[] names, float[]? weights) =>
        new([.. names.Select(n => new FormatReward("1.*") { Name = n })], weights);
}
