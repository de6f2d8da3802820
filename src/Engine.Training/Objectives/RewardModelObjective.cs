using Engine.Core.Backends;
using Engine.Core.Tensors;
using Engine.Models;
using Engine.Training.Data;

namespace Engine.Training.Objectives;

/// <summary>Settings of <see cref="RewardModelObjective"/>, with TRL's defaults.</summary>
public sealed record RewardModelOptions
{
    /// <summary>
    /// c of the centring term c·mean((s_c + s_l)²) (TRL's <c>center_rewards_coefficient</c>, Eisenstein et al. 2023):
    /// keeps the scores near 0 without changing their order. 0 turns it off.
    /// </summary>
    public float CenterRewardsCoefficient { get; init; }

    /// <summary>Subtract the data's per-pair <c>margin</c> from s_c − s_l (Llama 2's margin loss) when the batch has margins.</summary>
    public bool UseMargins { get; init; } = true;

    /// <summary>Throws <see cref="ArgumentOutOfRangeException"/> when a setting is out of range.</summary>
    public void Validate()
    {
        if (!(CenterRewardsCoefficient >= 0f && float.IsFinite(CenterRewardsCoefficient)))
        {
            throw new ArgumentOutOfRangeException(nameof(CenterRewardsCoefficient), $"the centring coefficient must be finite and ≥ 0, got {CenterRewardsCoefficient}");
        }
    }
}

/// <summary>
/// The pairwise ranking loss of a reward model (InstructGPT): the reward r_θ(x, y) is the scalar head at the last
/// response token of each row, and L = −Σ_p w_p·log σ(r_c − r_l − μ_p) / Σ_p w_p (+ the optional centring term), where a
/// K-wise ranking contributes its C(K,2) pairs with weight 1/C(K,2) and every response is forwarded once.
/// Metrics (TRL's names): <c>loss</c>, <c>rewards/chosen</c>, <c>rewards/rejected</c>, <c>rewards/accuracies</c>
/// (chosen strictly higher, margin not subtracted), <c>rewards/margins</c>. After training, <see cref="Calibrate"/> sets
/// the head's bias so SFT demonstrations score 0 on average and stores the reward statistics with the model.
/// </summary>
public sealed class RewardModelObjective : ITrainingObjective<PreferenceBatch>, IDisposable
{
    private readonly DeviceScratch scratch;

    /// <summary>Trains the scalar head and trunk of <paramref name="model"/> (its config must have <see cref="HeadKind.Scalar"/>).</summary>
    public RewardModelObjective(Transformer model, RewardModelOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        if (!model.HasScalarHead)
        {
            throw new ArgumentException(
                "a reward model needs a scalar head (TransformerConfig.Head = Scalar, or HfLoadOptions.Head = Scalar to start from an SFT checkpoint)",
                nameof(model));
        }

        Options = options ?? new RewardModelOptions();
        Options.Validate();
        Model = model;
        scratch = new DeviceScratch(model.Backend);
    }

    /// <summary>The reward model.</summary>
    public Transformer Model { get; }

    /// <summary>The settings.</summary>
    public RewardModelOptions Options { get; }

    /// <inheritdoc/>
    public ObjectiveResult Step(PreferenceBatch batch, float lossScale)
    {
        ArgumentNullException.ThrowIfNull(batch);
        var hidden = Model.ForwardTraining(batch.Sequences.Tokens, batch.Rows, batch.Time);
        var last = GatherLast(hidden, batch.LastResponse, batch.Time);
        var scores = scratch.Get("scores", DType.F32, batch.Rows, 1);
        Model.ScoreForward(scores, last);
        var grad = scratch.Zeros("dscores", batch.Rows);
        var result = Loss(batch, scores, grad, lossScale);

        // The head's backward into the gathered rows, then those rows back into their positions of ∂L/∂hidden.
        var lastGrad = scratch.Zeros("dlast", batch.Rows, Model.Config.Channels);
        Model.ScoreBackward(lastGrad, grad, last);
        var hiddenGrad = Model.HiddenGradient;
        for (int r = 0; r < batch.Rows; r++)
        {
            Model.Backend.Accumulate(hiddenGrad.Rows(((long)r * batch.Time) + batch.LastResponse[r], 1), lastGrad.Rows(r, 1));
        }

        Model.BackwardFromHidden();
        return result;
    }

    /// <inheritdoc/>
    public ObjectiveResult Evaluate(PreferenceBatch batch)
    {
        ArgumentNullException.ThrowIfNull(batch);
        var scores = ScoreRows(batch.Sequences.Tokens, batch.Rows, batch.Time, batch.LastResponse);
        return Loss(batch, scores, default, 0f);
    }

    /// <summary>The reward of every row of <paramref name="batch"/> (the head at its last response token) [R].</summary>
    public float[] Rewards(PreferenceBatch batch)
    {
        ArgumentNullException.ThrowIfNull(batch);
        var scores = ScoreRows(batch.Sequences.Tokens, batch.Rows, batch.Time, batch.LastResponse);
        var host = new float[batch.Rows];
        Model.Backend.CopyToHost<float>(scores, host);
        return host;
    }

    /// <summary>
    /// InstructGPT's normalisation after training: scores every demonstration (one SFT example per row, read at its last
    /// response token, the one after its last target), shifts the head's bias so their mean is 0, and stores their
    /// statistics (mean after the shift, population standard deviation, count) in <see cref="Transformer.RewardStatistics"/>,
    /// which a checkpoint saves beside the weights. Returns those statistics.
    /// </summary>
    /// <exception cref="ArgumentException">A row has no response token, a batch is packed, or there are no demonstrations.</exception>
    public RewardStatistics Calibrate(IEnumerable<SequenceBatch> demonstrations)
    {
        ArgumentNullException.ThrowIfNull(demonstrations);
        var all = new List<double>();
        int index = 0;
        foreach (var batch in demonstrations)
        {
            var positions = new int[batch.Batch];
            for (int r = 0; r < batch.Batch; r++, index++)
            {
                int last = -1;
                for (int t = 0; t < batch.Time; t++)
                {
                    int at = (r * batch.Time) + t;
                    if (batch.DocumentIds[at] > 0)
                    {
                        throw new ArgumentException("calibration scores one demonstration per row; collate the demonstrations without packing", nameof(demonstrations));
                    }

                    last = batch.Targets[at] >= 0 ? t : last;
                }

                positions[r] = last >= 0
                    ? last + 1
                    : throw new ArgumentException($"demonstration {index} (row {r} of its batch) has no response token to score", nameof(demonstrations));
            }

            var scores = ScoreRows(batch.Tokens, batch.Batch, batch.Time, positions);
            var host = new float[batch.Batch];
            Model.Backend.CopyToHost<float>(scores, host);
            all.AddRange(host.Select(x => (double)x));
        }

        if (all.Count == 0)
        {
            throw new ArgumentException("no demonstrations to calibrate the reward on", nameof(demonstrations));
        }

        double mean = all.Average();
        double std = Math.Sqrt(all.Sum(x => (x - mean) * (x - mean)) / all.Count);
        float before = Model.ScoreBias;
        float after = (float)(before - mean);
        Model.ScoreBias = after;

        // What the shifted head gives the same demonstrations on average: 0 up to the bias's float rounding.
        var statistics = new RewardStatistics(mean + ((double)after - before), std, all.Count);
        Model.RewardStatistics = statistics;
        return statistics;
    }

    /// <summary>
    /// The micro-batch's pair weight Σ_p w_p (its number of prompts: 1 per plain pair, 1 per K-wise ranking), the
    /// denominator of its loss, so accumulated micro-batches give the gradient of one batch holding them all.
    /// </summary>
    public double Weight(PreferenceBatch batch)
    {
        ArgumentNullException.ThrowIfNull(batch);
        return batch.Weights.Sum(w => (double)w);
    }

    /// <inheritdoc/>
    public void Dispose() => scratch.Dispose();

    // Scores [R,1] of rows read at the given positions, forward only.
    private Tensor ScoreRows(int[] tokens, int rows, int time, int[] positions)
    {
        var hidden = Model.Forward(tokens, rows, time);
        var last = GatherLast(hidden, positions, time);
        var scores = scratch.Get("scores", DType.F32, rows, 1);
        Model.ScoreForward(scores, last);
        return scores;
    }

    // hidden [R·T, C] → the rows at each sequence's last response token, [R, C].
    private Tensor GatherLast(Tensor hidden, int[] positions, int time)
    {
        int rows = positions.Length;
        var last = scratch.Get("last", DType.F32, rows, Model.Config.Channels);
        for (int r = 0; r < rows; r++)
        {
            Model.Backend.Copy(last.Rows(r, 1), hidden.Rows(((long)r * time) + positions[r], 1));
        }

        return last;
    }

    private ObjectiveResult Loss(PreferenceBatch batch, Tensor scores, Tensor grad, float lossScale)
    {
        var b = Model.Backend;
        int rows = batch.Rows, pairs = batch.Pairs;
        var margins = Options.UseMargins && batch.Margins is { } m ? scratch.Upload("margins", m, pairs) : default;
        var stats = b.PairwiseLoss(
            scores.Reshape(rows), scratch.Upload("chosen", batch.Chosen, pairs), scratch.Upload("rejected", batch.Rejected, pairs),
            scratch.Upload("weights", batch.Weights, pairs), margins, grad,
            new PairwiseLossOptions(PairwiseLossType.Sigmoid, 0f, 1f, Options.CenterRewardsCoefficient, lossScale));
        var host = new float[rows];
        b.CopyToHost<float>(scores, host);
        var metrics = PairMetrics.Compute(batch, host.Select(x => (double)x).ToArray());
        metrics["loss"] = stats.Loss;
        return new ObjectiveResult(stats.Loss, metrics, batch.Tokens, stats.WeightSum);
    }
}
