namespace Engine.Training.Rl.Grpo;

/// <summary>One report of a running <see cref="GrpoTrainer"/>, sent after every step (sampling + updates).</summary>
/// <param name="Step">Steps completed.</param>
/// <param name="TotalSteps">Steps the run takes.</param>
/// <param name="Epoch">Fractional pass over the prompts.</param>
/// <param name="Reward">Mean total reward of the step's completions.</param>
/// <param name="RewardStd">Mean standard deviation of the rewards within a group (or of the batch, per scale_rewards).</param>
/// <param name="ZeroStdFraction">Fraction of the step's groups whose rewards were all equal.</param>
/// <param name="Loss">Mean loss over the step's updates.</param>
/// <param name="Kl">Mean k3 KL to the reference (NaN without one).</param>
/// <param name="CompletionLength">Mean completion length, in tokens.</param>
/// <param name="ClippedRatio">Share of completions cut at max_completion_length (no EOS).</param>
/// <param name="GenerationShare">Share of the step's time spent sampling.</param>
/// <param name="SecondsPerStep">Wall time of the step.</param>
public sealed record GrpoProgress(
    int Step,
    int TotalSteps,
    double Epoch,
    double Reward,
    double RewardStd,
    double ZeroStdFraction,
    double Loss,
    double Kl,
    double CompletionLength,
    double ClippedRatio,
    double GenerationShare,
    double SecondsPerStep);
