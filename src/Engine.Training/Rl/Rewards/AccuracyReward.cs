using System.Globalization;
using System.Text.Json;

namespace Engine.Training.Rl.Rewards;

/// <summary>
/// 1 when the completion's answer equals the reference in the dataset row's column <see cref="Column"/>, else
/// <see cref="IncorrectScore"/> (0 as in TRL's <c>accuracy_reward</c>; DAPO's rule-based reward uses −1). The answer is
/// found and compared as <see cref="AnswerMatching"/> says. NaN (not applicable) when the row has no such column, its
/// value is null, or the reference is empty after normalisation. A reference must be a JSON string or number.
/// </summary>
public sealed class AccuracyReward : IRewardFunction
{
    /// <summary>An accuracy reward against column <paramref name="column"/>.</summary>
    /// <param name="column">The dataset column holding the reference answer.</param>
    /// <param name="extraction">Which part of a completion is its answer.</param>
    /// <param name="incorrectScore">The score of a wrong or missing answer.</param>
    /// <exception cref="ArgumentException">An empty column name or a non-finite score.</exception>
    public AccuracyReward(string column, AnswerExtraction extraction = AnswerExtraction.Final, float incorrectScore = 0f)
    {
        ArgumentException.ThrowIfNullOrEmpty(column);
        if (!float.IsFinite(incorrectScore))
        {
            throw new ArgumentException($"the score of a wrong answer must be finite, got {incorrectScore.ToString(CultureInfo.InvariantCulture)}", nameof(incorrectScore));
        }

        Column = column;
        Extraction = extraction;
        IncorrectScore = incorrectScore;
    }

    /// <summary>The column holding the reference answer.</summary>
    public string Column { get; }

    /// <summary>Which part of a completion is its answer.</summary>
    public AnswerExtraction Extraction { get; }

    /// <summary>The score of a wrong or missing answer (a right one scores 1).</summary>
    public float IncorrectScore { get; }

    /// <summary>The name metrics use (<c>rewards/&lt;name&gt;/mean</c>): <c>accuracy</c> unless set, as it must be when a
    /// <see cref="RewardSet"/> holds two of this kind.</summary>
    public string Name { get; init; } = "accuracy";

    /// <inheritdoc/>
    /// <exception cref="ArgumentException">The row's column is neither a string nor a number.</exception>
    public void Score(IReadOnlyList<RewardSample> samples, Span<float> scores)
    {
        ArgumentNullException.ThrowIfNull(samples);
        for (int i = 0; i < samples.Count; i++)
        {
            string? reference = Reference(samples[i]);
            scores[i] = reference is null ? float.NaN
                : AnswerMatching.Equivalent(AnswerMatching.Extract(samples[i].Completion, Extraction), reference, numeric: Extraction == AnswerExtraction.Final) ? 1f
                : IncorrectScore;
        }
    }

    /// <summary>The row's reference answer, or null when there is none to compare with.</summary>
    private string? Reference(RewardSample sample)
    {
        if (!sample.Row.Columns.TryGetValue(Column, out var value))
        {
            return null;
        }

        string? text = value.ValueKind switch
        {
            JsonValueKind.String => value.GetString(),
            JsonValueKind.Number => value.GetRawText(),
            JsonValueKind.Null => null,
            _ => throw new ArgumentException($"column '{Column}' is a JSON {value.ValueKind.ToString().ToLowerInvariant()}; the reference answer must be a string or a number"),
        };
        return text is null || AnswerMatching.Normalize(text).Length == 0 ? null : text;
    }
}
