using Engine.Core.Backends;
using Engine.Core.Tensors;
using Engine.Training.Objectives;
using Engine.Training.Rl.Sampling;

namespace Engine.Training.Rl.Ppo;

/// <summary>
/// One rollout turned into PPO's training targets, every per-token array [B·T] aligned with
/// <see cref="RolloutBatch.Mask"/> (0 outside it): KL_t from the behaviour and reference log-probs (k1 or k3),
/// rewards r_t = −β·KL_t plus the score (minus the missing-EOS penalty) on the last response token, optionally whitened
/// without shifting, GAE advantages and returns from the rollout's values, and the advantages whitened over the batch.
/// All of it is computed by the backend's RL kernels (<see cref="Backend.KlShapedRewards"/>,
/// <see cref="Backend.GeneralizedAdvantageEstimation"/>, <see cref="Backend.MaskedWhiten"/>).
/// </summary>
public sealed class PpoExperience
{
    private PpoExperience(RolloutBatch batch, float[] oldLogProbs, float[] referenceLogProbs, float[] values, float[] scores)
    {
        Batch = batch;
        OldLogProbs = oldLogProbs;
        ReferenceLogProbs = referenceLogProbs;
        Values = values;
        Scores = scores;
        int n = batch.Batch * batch.Time;
        Kl = new float[n];
        Rewards = new float[n];
        RawAdvantages = new float[n];
        Advantages = new float[n];
        Returns = new float[n];
    }

    /// <summary>The rollout.</summary>
    public RolloutBatch Batch { get; }

    /// <summary>log π_old/τ of each response token (the behaviour policy).</summary>
    public float[] OldLogProbs { get; }

    /// <summary>log π_ref/τ of each response token.</summary>
    public float[] ReferenceLogProbs { get; }

    /// <summary>The critic's values V_old at the response positions.</summary>
    public float[] Values { get; }

    /// <summary>Per-sequence scores s_b as used in the reward (normalised and clipped, before the missing-EOS penalty) [B].</summary>
    public float[] Scores { get; }

    /// <summary>The per-token KL estimator the reward penalises.</summary>
    public float[] Kl { get; }

    /// <summary>The per-token rewards (after the optional whitening).</summary>
    public float[] Rewards { get; }

    /// <summary>GAE advantages before whitening.</summary>
    public float[] RawAdvantages { get; }

    /// <summary>Advantages whitened over the batch's response tokens (what the policy loss uses).</summary>
    public float[] Advantages { get; }

    /// <summary>Returns R_t = A_t + V_t (raw advantages), the value targets.</summary>
    public float[] Returns { get; }

    /// <summary>The reward kernel's statistics (mean per-sequence KL, mean placed score, missing-EOS fraction).</summary>
    public KlRewardStatistics RewardStatistics { get; private set; }

    /// <summary>The β used.</summary>
    public double Beta { get; private set; }

    /// <summary>1 − Var(R − V_old)/Var(R) over the response tokens (population variances; 0 when Var(R) = 0).</summary>
    public double ExplainedVariance { get; private set; }

    /// <summary>Response tokens of rows <paramref name="rows"/> (Σ of their mask).</summary>
    public int Tokens(IReadOnlyList<int> rows)
    {
        ArgumentNullException.ThrowIfNull(rows);
        return rows.Sum(r => Batch.Rollouts[r].Response.Length);
    }

    /// <summary>
    /// Computes KL, rewards, advantages and returns of <paramref name="batch"/> from the behaviour log-probs, the
    /// reference log-probs, the values (all [B·T]) and the scores [B], with β = <paramref name="beta"/> and the estimator,
    /// missing-EOS penalty, reward whitening, γ and λ of <paramref name="options"/>.
    /// </summary>
    public static PpoExperience Build(
        Backend backend, RolloutBatch batch, float[] oldLogProbs, float[] referenceLogProbs, float[] values, float[] scores, PpoOptions options, double beta)
    {
        ArgumentNullException.ThrowIfNull(backend);
        ArgumentNullException.ThrowIfNull(batch);
        ArgumentNullException.ThrowIfNull(options);
        int b = batch.Batch, t = batch.Time, n = b * t;
        Require(oldLogProbs, n, nameof(oldLogProbs));
        Require(referenceLogProbs, n, nameof(referenceLogProbs));
        Require(values, n, nameof(values));
        Require(scores, b, nameof(scores));
        var e = new PpoExperience(batch, oldLogProbs, referenceLogProbs, values, scores) { Beta = beta };
        for (int i = 0; i < n; i++)
        {
            if (batch.Mask[i] != 0f)
            {
                var (k1, _, k3) = KlEstimators.Values(oldLogProbs[i], referenceLogProbs[i]);
                e.Kl[i] = KlEstimators.Saturate(options.KlEstimator == KlEstimator.K3 ? k3 : k1);
            }
        }

        using var scratch = new DeviceScratch(backend);
        var mask = scratch.Upload("mask", batch.Mask, b, t);
        var rewards = scratch.Get("rewards", DType.F32, b, t);
        e.RewardStatistics = backend.KlShapedRewards(
            rewards, scratch.Upload("kl", e.Kl, b, t), mask, scratch.Upload("scores", scores, b), scratch.Upload("eos", batch.EndedWithEos, b),
            (float)beta, -(options.MissingEosPenalty ?? 0f));
        if (options.WhitenRewards)
        {
            backend.MaskedWhiten(rewards, mask, shiftMean: false);
        }

        var advantages = scratch.Get("advantages", DType.F32, b, t);
        var returns = scratch.Get("returns", DType.F32, b, t);
        backend.GeneralizedAdvantageEstimation(advantages, returns, rewards, scratch.Upload("values", values, b, t), mask, options.Gamma, options.Lam);
        backend.CopyToHost<float>(rewards, e.Rewards);
        backend.CopyToHost<float>(advantages, e.RawAdvantages);
        backend.CopyToHost<float>(returns, e.Returns);
        backend.MaskedWhiten(advantages, mask, shiftMean: true);
        backend.CopyToHost<float>(advantages, e.Advantages);

        // The PPO kernel's statistics at the rollout itself (π = π_old, V = V_old) give the explained variance of V_old.
        var old = scratch.Upload("old", oldLogProbs, b, t);
        var v = scratch.Upload("values", values, b, t);
        e.ExplainedVariance = backend.PpoLosses(old, old, advantages, mask, v, v, returns, default, default, default, new PpoLossOptions()).ExplainedVariance;
        return e;
    }

    private static void Require(float[] values, int count, string name)
    {
        ArgumentNullException.ThrowIfNull(values, name);
        if (values.Length != count)
        {
            throw new ArgumentException($"{name} has {values.Length} values, expected {count}", name);
        }
    }
}
