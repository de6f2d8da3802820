namespace Engine.Training.Rl.Ppo;

/// <summary>One report of a running <see cref="PpoTrainer"/>, sent after every PPO step (rollout + updates).</summary>
/// <param name="Step">PPO steps completed.</param>
/// <param name="TotalSteps">PPO steps the run takes.</param>
/// <param name="Epoch">Fractional pass over the prompts.</param>
/// <param name="Score">Mean score of the rollout (as rewarded, after normalisation, clipping and the missing-EOS penalty).</param>
/// <param name="Kl">Mean per-sequence KL to the reference of the rollout.</param>
/// <param name="KlCoef">β used for this rollout.</param>
/// <param name="PolicyLoss">Mean clipped policy loss over the step's updates.</param>
/// <param name="ValueLoss">Mean value loss over the step's updates.</param>
/// <param name="ResponseLength">Mean response length, in tokens.</param>
/// <param name="EosRate">Share of responses that ended with EOS.</param>
/// <param name="GenerationShare">Share of the step's time spent sampling the rollout.</param>
/// <param name="SecondsPerStep">Wall time of the step.</param>
public sealed record PpoProgress(
    int Step,
    int TotalSteps,
    double Epoch,
    double Score,
    double Kl,
    double KlCoef,
    double PolicyLoss,
    double ValueLoss,
    double ResponseLength,
    double EosRate,
    double GenerationShare,
    double SecondsPerStep);
