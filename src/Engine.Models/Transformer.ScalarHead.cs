using Engine.Core.Backends;
using Engine.Core.Numerics;
using Engine.Core.Tensors;

namespace Engine.Models;

/// <summary>
/// What a reward model keeps beside its weights: statistics of its scores over the SFT demonstrations it was
/// calibrated on (InstructGPT sets the head's bias so their mean is 0), so later stages can normalise rewards.
/// </summary>
/// <param name="Mean">Mean score over the demonstrations with the current bias (0 right after calibration).</param>
/// <param name="Std">Population standard deviation of those scores.</param>
/// <param name="Count">How many demonstrations were scored.</param>
public sealed record RewardStatistics(double Mean, double Std, long Count);

public sealed partial class Transformer
{
    /// <summary>Whether the trunk carries the scalar reward/value head instead of the LM head.</summary>
    public bool HasScalarHead => Config.Head == HeadKind.Scalar;

    /// <summary>The scalar head's weight [1,C].</summary>
    public Tensor ScoreWeight => HeadParameters.Value(RequireScalarHead(Names.ScoreWeight));

    /// <summary>The scalar head's bias, read from or written to the device (the offset InstructGPT calibrates after training).</summary>
    public float ScoreBias
    {
        get
        {
            var host = new float[1];
            Backend.CopyToHost<float>(HeadParameters.Value(RequireScalarHead(Names.ScoreBias)), host);
            return host[0];
        }

        set
        {
            if (!float.IsFinite(value))
            {
                throw new ArgumentOutOfRangeException(nameof(value), $"the score bias must be finite, got {value}");
            }

            Backend.CopyFromHost<float>(HeadParameters.Value(RequireScalarHead(Names.ScoreBias)), [value]);
        }
    }

    /// <summary>
    /// Reward statistics stored with the model (<c>reward_head.json</c> in its checkpoint): set by reward-model
    /// calibration, null until then.
    /// </summary>
    public RewardStatistics? RewardStatistics { get; set; }

    // Stiennon et al. (2020): reward head N(0, 1/(C+1)), so scores of unit-variance final hidden states start O(1).
    private double ScoreHeadStd => 1.0 / Math.Sqrt(Config.Channels + 1);

    private string LanguageModelHeadName => Config.Head == HeadKind.Scalar
        ? throw new InvalidOperationException("this model has a scalar (reward/value) head, not a language-model head")
        : Config.TiedEmbeddings ? Names.Embedding : Names.LmHead;

    /// <summary>
    /// Initialises only the scalar head, weight N(0, 1/(C+1)) and bias 0, leaving the trunk as loaded: how a reward
    /// model or critic starts from an SFT checkpoint whose LM head was dropped. Clears <see cref="RewardStatistics"/>.
    /// </summary>
    public void InitializeScoreHead(ulong seed)
    {
        var host = new float[Config.Channels];
        new RandomStream(seed).FillNormal(host, ScoreHeadStd);
        Backend.CopyFromHost<float>(ScoreWeight, host);
        ScoreBias = 0f;
        RewardStatistics = null;
    }

    /// <summary>Scalar head forward: scores[m] = hidden[m]·w + b for hidden [M,C] (any rows) and scores [M,1] (or [M]).</summary>
    public void ScoreForward(Tensor scores, Tensor hidden)
    {
        long rows = CheckScoreShapes(scores, hidden);
        Backend.MatmulForward(scores.Reshape(rows, 1), hidden, ScoreWeight, HeadParameters.Value(Names.ScoreBias), WeightLayout.OutIn);
    }

    /// <summary>
    /// Scalar head backward: adds dh[m] += ds[m]·w into <paramref name="hiddenGrad"/> (e.g. <see cref="HiddenGradient"/>
    /// or rows gathered from it), dw += Σ_m ds[m]·h[m] and db += Σ_m ds[m] into the parameter gradients.
    /// </summary>
    public void ScoreBackward(Tensor hiddenGrad, Tensor scoresGrad, Tensor hidden)
    {
        long rows = CheckScoreShapes(scoresGrad, hidden);
        Backend.MatmulBackward(
            hiddenGrad, ScoreGradient(Names.ScoreWeight), ScoreGradient(Names.ScoreBias), scoresGrad.Reshape(rows, 1), hidden,
            ScoreWeight, WeightLayout.OutIn);
    }

    /// <summary>
    /// Inference: runs the trunk on tokens [B,T] and returns one score per row, the head read at
    /// <paramref name="positions"/>[b] (a reward model reads the last response token).
    /// </summary>
    public float[] Score(ReadOnlySpan<int> tokens, int batch, int time, ReadOnlySpan<int> positions)
    {
        RequireScalarHead(Names.ScoreWeight);
        if (positions.Length != batch)
        {
            throw new ArgumentException($"expected one position per row ({batch}), got {positions.Length}", nameof(positions));
        }

        for (int b = 0; b < batch; b++)
        {
            if ((uint)positions[b] >= (uint)time)
            {
                throw new ArgumentOutOfRangeException(nameof(positions), $"row {b}: position {positions[b]} is outside [0, {time})");
            }
        }

        var hidden = Forward(tokens, batch, time);
        using var gathered = Backend.Allocate((long)batch * (Config.Channels + 1) * sizeof(float));
        var rows = new Tensor(gathered, 0, new Shape(batch, Config.Channels), DType.F32);
        var scores = new Tensor(gathered, (long)batch * Config.Channels * sizeof(float), new Shape(batch, 1), DType.F32);
        for (int b = 0; b < batch; b++)
        {
            Backend.Copy(rows.Rows(b, 1), hidden.Rows(((long)b * time) + positions[b], 1));
        }

        ScoreForward(scores, rows);
        var result = new float[batch];
        Backend.CopyToHost<float>(scores, result);
        return result;
    }

    private long CheckScoreShapes(Tensor scores, Tensor hidden)
    {
        RequireScalarHead(Names.ScoreWeight);
        if (hidden.IsEmpty || hidden.Shape.Rank != 2 || hidden.Shape[1] != Config.Channels)
        {
            throw new ArgumentException($"hidden must be [M, {Config.Channels}], got {hidden.Shape}", nameof(hidden));
        }

        long rows = hidden.Shape[0];
        if (scores.IsEmpty || scores.ElementCount != rows)
        {
            throw new ArgumentException($"scores must have one element per hidden row ({rows}), got {scores}", nameof(scores));
        }

        return rows;
    }

    private string RequireScalarHead(string name) => Config.Head == HeadKind.Scalar
        ? name
        : throw new InvalidOperationException("this model has a language-model head; a reward or value head needs TransformerConfig.Head = Scalar");
}
