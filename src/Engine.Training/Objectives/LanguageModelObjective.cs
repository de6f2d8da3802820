using Engine.Core.Backends;
using Engine.Core.Tensors;
using Engine.Models;
using Engine.Training.Data;

namespace Engine.Training.Objectives;

/// <summary>
/// The next-token loss of pretraining and SFT: mean cross-entropy over the positions with a target
/// (<see cref="SequenceBatch.Targets"/> ≥ 0), so SFT trains completion and assistant tokens only. A micro-batch weighs
/// its number of targets, which makes accumulated steps equal one large batch.
/// </summary>
public sealed class LanguageModelObjective : ITrainingObjective<SequenceBatch>
{
    private static readonly IReadOnlyDictionary<string, double> NoMetrics = new Dictionary<string, double>();

    private readonly Transformer model;

    /// <summary>An objective training <paramref name="model"/>.</summary>
    public LanguageModelObjective(Transformer model)
    {
        ArgumentNullException.ThrowIfNull(model);
        this.model = model;
    }

    /// <inheritdoc/>
    public ObjectiveResult Step(SequenceBatch batch, float lossScale)
    {
        ArgumentNullException.ThrowIfNull(batch);
        double loss = model.ForwardBackward(batch.Tokens, batch.Targets, batch.Batch, batch.Time, lossScale, batch.PositionIds());
        int counted = batch.TrainedTokens;
        return new ObjectiveResult(loss, NoMetrics, Tokens(batch), counted);
    }

    /// <inheritdoc/>
    public ObjectiveResult Evaluate(SequenceBatch batch)
    {
        ArgumentNullException.ThrowIfNull(batch);
        int n = batch.Batch * batch.Time;
        var hidden = model.Forward(batch.Tokens, batch.Batch, batch.Time, batch.PositionIds());

        // Evaluation is rare next to training steps, so its small buffers are made per call rather than kept.
        var backend = model.Backend;
        var targets = backend.AllocateTensor(DType.I32, n);
        var logProbs = backend.AllocateTensor(DType.F32, n);
        var rowStats = backend.AllocateTensor(DType.F32, n, 2);
        var host = new float[n];
        try
        {
            backend.CopyFromHost<int>(targets, batch.Targets);
            backend.TokenLogProbsForward(new TokenLogProbOutputs(logProbs, rowStats), hidden, model.HeadWeight, new TokenLogProbInputs(targets));
            backend.CopyToHost<float>(logProbs, host);
        }
        finally
        {
            targets.Buffer?.Dispose();
            logProbs.Buffer?.Dispose();
            rowStats.Buffer?.Dispose();
        }

        double sum = 0;
        int counted = 0;
        for (int i = 0; i < n; i++)
        {
            if (batch.Targets[i] >= 0)
            {
                sum -= host[i];
                counted++;
            }
        }

        return new ObjectiveResult(counted > 0 ? sum / counted : 0.0, NoMetrics, Tokens(batch), counted);
    }

    /// <summary>The micro-batch's number of target tokens.</summary>
    public double Weight(SequenceBatch batch)
    {
        ArgumentNullException.ThrowIfNull(batch);
        return batch.TrainedTokens;
    }

    // Tokens that are not padding.
    private static long Tokens(SequenceBatch batch) => batch.Lengths.Sum(static l => (long)l);
}
