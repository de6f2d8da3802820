using Engine.Training.Data;

namespace Engine.Training.Rl.Sampling;

/// <summary>
/// Rollouts packed into [B,T] rows (flat, row-major) for the teacher-forced passes of RL: row b is prompt then
/// response then padding. Everything per position is aligned with the <i>prediction</i> made there: position t
/// predicts token t+1, so <see cref="Targets"/>[b,t] is that token and <see cref="Mask"/>[b,t] is 1 exactly when it is
/// a response token (t from P−1 to P+R−2). Per-token log-probs, values, KL, rewards and advantages of the response
/// all live at those positions, as in TRL (the value at t is the critic's estimate before response token t−P+1 is
/// produced); the reward model reads the last token itself, position P+R−1.
/// </summary>
public sealed class RolloutBatch
{
    private RolloutBatch(IReadOnlyList<Rollout> rollouts, int time, int padTokenId)
    {
        Rollouts = rollouts;
        Batch = rollouts.Count;
        Time = time;
        PadTokenId = padTokenId;
        int n = Batch * time;
        Tokens = new int[n];
        Targets = new int[n];
        Mask = new float[n];
        EndedWithEos = new int[Batch];
        Array.Fill(Tokens, padTokenId);
        Array.Fill(Targets, CollatorOptions.IgnoreIndex);
        for (int b = 0; b < Batch; b++)
        {
            var r = rollouts[b];
            int row = b * time, p = r.Prompt.Length;
            r.Prompt.CopyTo(Tokens, row);
            r.Response.CopyTo(Tokens, row + p);
            for (int i = 0; i < r.Response.Length; i++)
            {
                Targets[row + p - 1 + i] = r.Response[i];
                Mask[row + p - 1 + i] = 1f;
            }

            EndedWithEos[b] = r.EndedWithEos ? 1 : 0;
        }
    }

    /// <summary>The rollouts, in row order.</summary>
    public IReadOnlyList<Rollout> Rollouts { get; }

    /// <summary>B, rows.</summary>
    public int Batch { get; }

    /// <summary>T, the row length (at least the longest prompt + response).</summary>
    public int Time { get; }

    /// <summary>The padding token.</summary>
    public int PadTokenId { get; }

    /// <summary>Token ids [B,T], padded with <see cref="PadTokenId"/>.</summary>
    public int[] Tokens { get; }

    /// <summary>Next-token targets [B,T]: the response token predicted at each response position, <see cref="CollatorOptions.IgnoreIndex"/> elsewhere.</summary>
    public int[] Targets { get; }

    /// <summary>Response mask [B,T] (f32 0/1), aligned with <see cref="Targets"/>.</summary>
    public float[] Mask { get; }

    /// <summary>1 where the rollout ended with EOS, else 0 [B] (i32, as <c>Backend.KlShapedRewards</c> takes it).</summary>
    public int[] EndedWithEos { get; }

    /// <summary>Response tokens in all, Σ_b R_b.</summary>
    public int ResponseTokens => Rollouts.Sum(r => r.Response.Length);

    /// <summary>
    /// Packs <paramref name="rollouts"/> into rows of <paramref name="time"/> tokens (default: the longest rollout),
    /// padding with <paramref name="padTokenId"/>. Every prompt needs at least one token.
    /// </summary>
    public static RolloutBatch Pack(IReadOnlyList<Rollout> rollouts, int padTokenId, int? time = null)
    {
        ArgumentNullException.ThrowIfNull(rollouts);
        if (rollouts.Count == 0)
        {
            throw new ArgumentException("no rollouts to pack", nameof(rollouts));
        }

        ArgumentOutOfRangeException.ThrowIfNegative(padTokenId);
        int longest = 0;
        for (int b = 0; b < rollouts.Count; b++)
        {
            var r = rollouts[b] ?? throw new ArgumentException($"rollout {b} is null", nameof(rollouts));
            if (r.Prompt.Length == 0)
            {
                throw new ArgumentException($"rollout {b} has an empty prompt", nameof(rollouts));
            }

            longest = Math.Max(longest, r.Length);
        }

        int t = time ?? longest;
        if (t < longest)
        {
            throw new ArgumentOutOfRangeException(nameof(time), $"rows of {t} tokens cannot hold the longest rollout ({longest} tokens)");
        }

        return new RolloutBatch(rollouts, t, padTokenId);
    }

    /// <summary>The rows <paramref name="rows"/> (indices into this batch, in that order) as a batch of the same T.</summary>
    public RolloutBatch Select(IReadOnlyList<int> rows)
    {
        ArgumentNullException.ThrowIfNull(rows);
        var picked = new Rollout[rows.Count];
        for (int i = 0; i < rows.Count; i++)
        {
            picked[i] = (uint)rows[i] < (uint)Batch ? Rollouts[rows[i]] : throw new ArgumentOutOfRangeException(nameof(rows), $"row {rows[i]} is outside [0, {Batch})");
        }

        return Pack(picked, PadTokenId, Time);
    }

    /// <summary>Position of row b's last response prediction (P+R−2), or −1 when its response is empty.</summary>
    public int LastResponsePosition(int b)
    {
        var r = Rollouts[b];
        return r.Response.Length == 0 ? -1 : r.Length - 2;
    }

    /// <summary>Copies the values at the rows <paramref name="rows"/> of a per-position array [B,T] into a new [rows,T] array.</summary>
    public float[] GatherRows(ReadOnlySpan<float> perPosition, IReadOnlyList<int> rows)
    {
        ArgumentNullException.ThrowIfNull(rows);
        if (perPosition.Length != Batch * Time)
        {
            throw new ArgumentException($"expected B·T = {Batch * Time} values, got {perPosition.Length}", nameof(perPosition));
        }

        var result = new float[rows.Count * Time];
        for (int i = 0; i < rows.Count; i++)
        {
            perPosition.Slice(rows[i] * Time, Time).CopyTo(result.AsSpan(i * Time, Time));
        }

        return result;
    }
}
