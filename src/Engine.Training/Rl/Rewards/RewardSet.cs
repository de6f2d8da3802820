namespace Engine.Training.Rl.Rewards;

/// <summary>The rewards of one group of completions: the weighted total and what each function said.</summary>
/// <param name="Total">Σᵢ wᵢ·rᵢ per completion over the functions that applied (NaN scores left out; 0 when none applied).</param>
/// <param name="PerFunction">The raw score of each function per completion, [function][completion], NaN where it did not apply.</param>
public sealed record GroupRewards(float[] Total, float[][] PerFunction);

/// <summary>
/// Several reward functions with weights, combined as TRL combines them: the total is the weighted sum of the scores,
/// where a NaN score (function not applicable) is left out.
/// </summary>
public sealed class RewardSet
{
    private readonly IRewardFunction[] functions;
    private readonly float[] weights;

    /// <summary>The functions with their weights (every weight 1 when <paramref name="weights"/> is null).</summary>
    /// <exception cref="ArgumentException">No function, one without a name, a repeated name, a weight count that differs, or a non-finite weight.</exception>
    public RewardSet(IReadOnlyList<IRewardFunction> functions, IReadOnlyList<float>? weights = null)
    {
        ArgumentNullException.ThrowIfNull(functions);
        if (functions.Count == 0)
        {
            throw new ArgumentException("at least one reward function is needed", nameof(functions));
        }

        if (functions.Any(f => string.IsNullOrEmpty(f?.Name)))
        {
            throw new ArgumentException("every reward function needs a name (metrics are rewards/<name>/mean)", nameof(functions));
        }

        var duplicate = functions.GroupBy(f => f.Name, StringComparer.Ordinal).FirstOrDefault(g => g.Count() > 1);
        if (duplicate is not null)
        {
            throw new ArgumentException(
                $"two reward functions are named '{duplicate.Key}'; names must be unique (metrics are rewards/<name>/mean): give one another, e.g. new FormatReward(pattern) {{ Name = \"think\" }}",
                nameof(functions));
        }

        if (weights is not null && weights.Count != functions.Count)
        {
            throw new ArgumentException($"{weights.Count} reward weights for {functions.Count} reward functions", nameof(weights));
        }

        if (weights is not null && weights.Any(w => !float.IsFinite(w)))
        {
            throw new ArgumentException("every reward weight must be finite", nameof(weights));
        }

        this.functions = [.. functions];
        this.weights = weights is null ? [.. Enumerable.Repeat(1f, functions.Count)] : [.. weights];
    }

    /// <summary>The functions, in the order they are called.</summary>
    public IReadOnlyList<IRewardFunction> Functions => functions;

    /// <summary>Their weights, in the same order.</summary>
    public IReadOnlyList<float> Weights => weights;

    /// <summary>
    /// Scores one prompt's group of completions with every function, in order, and combines them.
    /// </summary>
    /// <exception cref="RewardFunctionException">A function threw or returned ±∞ (names it and the prompt's file and line).</exception>
    public GroupRewards Score(IReadOnlyList<RewardSample> group)
    {
        ArgumentNullException.ThrowIfNull(group);
        var perFunction = new float[functions.Length][];
        var total = new float[group.Count];
        for (int f = 0; f < functions.Length; f++)
        {
            perFunction[f] = Call(functions[f], group);
            for (int i = 0; i < group.Count; i++)
            {
                float r = perFunction[f][i];
                if (!float.IsNaN(r))
                {
                    total[i] += weights[f] * r;
                }
            }
        }

        return new GroupRewards(total, perFunction);
    }

    private static float[] Call(IRewardFunction function, IReadOnlyList<RewardSample> group)
    {
        var scores = new float[group.Count];
        var row = group.Count > 0 ? group[0].Row : null;
        try
        {
            function.Score(group, scores);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            throw new RewardFunctionException(function.Name, row?.Source ?? "", row?.Line ?? 0, $"{e.GetType().Name}: {e.Message}", e);
        }

        int bad = Array.FindIndex(scores, float.IsInfinity);
        if (bad >= 0)
        {
            throw new RewardFunctionException(function.Name, row?.Source ?? "", row?.Line ?? 0,
                $"returned {scores[bad]} for completion {bad}; a score must be finite, or NaN when the function does not apply");
        }

        return scores;
    }
}
