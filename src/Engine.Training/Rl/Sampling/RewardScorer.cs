using System.Globalization;
using Engine.Models;

namespace Engine.Training.Rl.Sampling;

/// <summary>How <see cref="RewardScorer"/> turns a reward model's outputs into rewards; every default here.</summary>
public sealed record RewardScoringOptions
{
    /// <summary>Rollouts per forward pass of the reward model (0 = all at once).</summary>
    public int BatchSize { get; init; } = 16;

    /// <summary>
    /// Standardise scores with the statistics stored with the reward model (<see cref="Transformer.RewardStatistics"/>,
    /// set by calibration): r = (s − mean)/std.
    /// </summary>
    public bool Normalize { get; init; }

    /// <summary>Clip the (normalised) reward to [−Clip, Clip]; 0 = no clipping.</summary>
    public float Clip { get; init; }

    /// <summary>Throws <see cref="ArgumentOutOfRangeException"/> naming the first setting out of range.</summary>
    public void Validate()
    {
        if (BatchSize < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(BatchSize), $"the scoring batch size must be ≥ 0, got {BatchSize}");
        }

        if (!(Clip >= 0f) || float.IsInfinity(Clip))
        {
            throw new ArgumentOutOfRangeException(nameof(Clip), $"the reward clip must be finite and ≥ 0, got {Clip}");
        }
    }
}

/// <summary>Scores of a set of rollouts: what the reward model said, and the rewards after normalisation and clipping.</summary>
/// <param name="Raw">s_b, the reward head at the last token of prompt + response.</param>
/// <param name="Rewards">The rewards: s_b, standardised and clipped as the options say.</param>
public sealed record RolloutScores(float[] Raw, float[] Rewards);

/// <summary>
/// A frozen reward model scoring rollouts: each (prompt, response) is read by the scalar head at its last token (the
/// response's last, EOS included when produced; the prompt's last for an empty response), in batches of padded rows.
/// The reward model must share the policy's tokenizer.
/// </summary>
public sealed class RewardScorer
{
    /// <summary>A scorer of <paramref name="rewardModel"/> (scalar head) with <paramref name="options"/>.</summary>
    public RewardScorer(Transformer rewardModel, RewardScoringOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(rewardModel);
        if (!rewardModel.HasScalarHead)
        {
            throw new ArgumentException("the reward model needs a scalar head", nameof(rewardModel));
        }

        Options = options ?? new RewardScoringOptions();
        Options.Validate();
        if (Options.Normalize)
        {
            var stats = rewardModel.RewardStatistics
                ?? throw new ArgumentException("reward normalisation needs the reward statistics stored with the model (reward_head.json, written by calibration); it has none", nameof(rewardModel));
            if (!(stats.Std > 0) || !double.IsFinite(stats.Std) || !double.IsFinite(stats.Mean))
            {
                throw new ArgumentException(
                    string.Create(CultureInfo.InvariantCulture, $"the reward model's stored statistics cannot normalise (mean {stats.Mean}, std {stats.Std})"), nameof(rewardModel));
            }
        }

        Model = rewardModel;
    }

    /// <summary>The reward model.</summary>
    public Transformer Model { get; }

    /// <summary>The settings.</summary>
    public RewardScoringOptions Options { get; }

    /// <summary>Scores every rollout (padding rows with <paramref name="padTokenId"/>, which the causal model never reads).</summary>
    public RolloutScores Score(IReadOnlyList<Rollout> rollouts, int padTokenId = 0)
    {
        ArgumentNullException.ThrowIfNull(rollouts);
        var raw = new float[rollouts.Count];
        int context = Model.Config.MaxSequenceLength;
        foreach (var (start, count) in BatchRanges.Of(rollouts.Count, Options.BatchSize))
        {
            var part = new Rollout[count];
            for (int i = 0; i < count; i++)
            {
                var r = rollouts[start + i] ?? throw new ArgumentException($"rollout {start + i} is null", nameof(rollouts));
                if (r.Length == 0 || r.Length > context)
                {
                    throw new ArgumentException($"rollout {start + i} has {r.Length} tokens; the reward model reads 1 to {context}", nameof(rollouts));
                }

                part[i] = r;
            }

            var batch = RolloutBatch.Pack(part, padTokenId);
            var positions = part.Select(r => r.Length - 1).ToArray();
            Model.Score(batch.Tokens, count, batch.Time, positions).CopyTo(raw, start);
        }

        return new RolloutScores(raw, Rewards(raw));
    }

    /// <summary>Raw scores → rewards: (s − mean)/std with the stored statistics when normalising, then clipped to ±Clip.</summary>
    public float[] Rewards(ReadOnlySpan<float> raw)
    {
        var result = new float[raw.Length];
        var stats = Options.Normalize ? Model.RewardStatistics : null;
        float clip = Options.Clip;
        for (int i = 0; i < raw.Length; i++)
        {
            double r = stats is null ? raw[i] : (raw[i] - stats.Mean) / stats.Std;
            result[i] = (float)(clip > 0f ? Math.Clamp(r, -clip, clip) : r);
        }

        return result;
    }
}
