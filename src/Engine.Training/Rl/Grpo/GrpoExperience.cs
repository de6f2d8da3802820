using Engine.Core.Backends;
using Engine.Core.Tensors;
using Engine.Training.Objectives;
using Engine.Training.Rl.Sampling;

namespace Engine.Training.Rl.Grpo;

/// <summary>
/// One step's completions turned into the GRPO family's training targets. Rows are the B·G completions, group by group
/// (completion s of prompt p at row p·G + s); every per-token array [rows·T] is aligned with <see cref="RolloutBatch.Mask"/>.
/// grpo and rloo: <see cref="Backend.GroupAdvantages"/> of the rewards, the same advantage on every token of a completion.
/// reinforce_pp: rewards −β·k1_t on every token plus the reward on the last (<see cref="Backend.KlShapedRewards"/>),
/// returns summed to the end (<see cref="Backend.GeneralizedAdvantageEstimation"/> with γ = λ = 1 and no values), whitened
/// over the batch's tokens (<see cref="Backend.MaskedWhiten"/>).
/// </summary>
public sealed class GrpoExperience
{
    private GrpoExperience(RolloutBatch batch, float[] rewards, float[]? oldLogProbs, float[]? referenceLogProbs, float[] lossMask)
    {
        Batch = batch;
        Rewards = rewards;
        OldLogProbs = oldLogProbs;
        ReferenceLogProbs = referenceLogProbs;
        LossMask = lossMask;
        Advantages = new float[batch.Batch * batch.Time];
    }

    /// <summary>The completions, packed.</summary>
    public RolloutBatch Batch { get; }

    /// <summary>The total reward of each completion [rows].</summary>
    public float[] Rewards { get; }

    /// <summary>log π_old/τ of each completion token (the sampling policy), or null when π_old = π (one update per step).</summary>
    public float[]? OldLogProbs { get; }

    /// <summary>log π_ref/τ of each completion token, or null without a reference (β = 0).</summary>
    public float[]? ReferenceLogProbs { get; }

    /// <summary>The tokens that count in the loss: the response mask, without truncated completions when they are masked [rows·T].</summary>
    public float[] LossMask { get; }

    /// <summary>The advantage of each token [rows·T] (0 outside <see cref="LossMask"/>).</summary>
    public float[] Advantages { get; }

    /// <summary>TRL's reward statistics of the step (over the groups, truncated completions included).</summary>
    public GroupAdvantageStatistics RewardStatistics { get; private set; }

    /// <summary>Tokens of <see cref="LossMask"/> in rows <paramref name="rows"/>.</summary>
    public int Tokens(IReadOnlyList<int> rows)
    {
        ArgumentNullException.ThrowIfNull(rows);
        int time = Batch.Time, count = 0;
        foreach (int r in rows)
        {
            for (int t = 0; t < time; t++)
            {
                count += LossMask[(r * time) + t] != 0f ? 1 : 0;
            }
        }

        return count;
    }

    /// <summary>
    /// The targets of <paramref name="batch"/> (G = <see cref="GrpoOptions.NumGenerations"/> consecutive rows per prompt)
    /// with total rewards <paramref name="rewards"/> [rows] and, when given, the sampling policy's and the reference's
    /// log-probs [rows·T] (reinforce_pp with β &gt; 0 needs both).
    /// </summary>
    public static GrpoExperience Build(
        Backend backend, RolloutBatch batch, float[] rewards, float[]? oldLogProbs, float[]? referenceLogProbs, GrpoOptions options)
    {
        ArgumentNullException.ThrowIfNull(backend);
        ArgumentNullException.ThrowIfNull(batch);
        ArgumentNullException.ThrowIfNull(rewards);
        ArgumentNullException.ThrowIfNull(options);
        int rows = batch.Batch, time = batch.Time, g = options.NumGenerations;
        if (rewards.Length != rows || rows % g != 0)
        {
            throw new ArgumentException($"{rewards.Length} rewards for {rows} completions in groups of {g}", nameof(rewards));
        }

        var lossMask = (float[])batch.Mask.Clone();
        if (options.MaskTruncatedCompletions)
        {
            for (int r = 0; r < rows; r++)
            {
                if (batch.EndedWithEos[r] == 0)
                {
                    Array.Clear(lossMask, r * time, time);
                }
            }
        }

        var e = new GrpoExperience(batch, rewards, oldLogProbs, referenceLogProbs, lossMask);
        using var scratch = new DeviceScratch(backend);
        var groupAdvantages = scratch.Get("group", DType.F32, rows);
        var baseline = options.AdvantageEstimator == AdvantageEstimator.Rloo ? GroupBaseline.LeaveOneOut : GroupBaseline.GroupMean;
        e.RewardStatistics = backend.GroupAdvantages(groupAdvantages, scratch.Upload("rewards", rewards, rows), g, new GroupAdvantageOptions(baseline, options.ScaleRewards));
        if (options.AdvantageEstimator == AdvantageEstimator.ReinforcePp)
        {
            e.ReinforcePlusPlus(backend, scratch, options.Beta);
            return e;
        }

        var perCompletion = new float[rows];
        backend.CopyToHost<float>(groupAdvantages, perCompletion);
        for (int i = 0; i < e.Advantages.Length; i++)
        {
            e.Advantages[i] = lossMask[i] != 0f ? perCompletion[i / time] : 0f;
        }

        return e;
    }

    // REINFORCE++ (Hu 2025, as OpenRLHF): r_t = −β·k1_t, plus the reward on the last token; A_t = Σ_{s≥t} r_s, whitened.
    private void ReinforcePlusPlus(Backend backend, DeviceScratch scratch, float beta)
    {
        int rows = Batch.Batch, time = Batch.Time;
        var kl = new float[rows * time];
        if (beta > 0f)
        {
            var (old, reference) = (OldLogProbs ?? throw new ArgumentException("reinforce_pp with β > 0 needs the sampling policy's log-probs"),
                ReferenceLogProbs ?? throw new ArgumentException("reinforce_pp with β > 0 needs the reference's log-probs"));
            for (int i = 0; i < kl.Length; i++)
            {
                kl[i] = LossMask[i] != 0f ? KlEstimators.Saturate(KlEstimators.Values(old[i], reference[i]).K1) : 0f;
            }
        }

        var mask = scratch.Upload("mask", LossMask, rows, time);
        var tokenRewards = scratch.Get("token_rewards", DType.F32, rows, time);
        backend.KlShapedRewards(tokenRewards, scratch.Upload("kl", kl, rows, time), mask, scratch.Upload("scores", Rewards, rows), default, beta);
        var advantages = scratch.Get("advantages", DType.F32, rows, time);
        var returns = scratch.Get("returns", DType.F32, rows, time);
        backend.GeneralizedAdvantageEstimation(advantages, returns, tokenRewards, scratch.Zeros("values", rows, time), mask, 1f, 1f);
        backend.MaskedWhiten(advantages, mask, shiftMean: true);
        backend.CopyToHost<float>(advantages, Advantages);
    }
}
