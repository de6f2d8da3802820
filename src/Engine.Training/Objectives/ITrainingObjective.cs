namespace Engine.Training.Objectives;

/// <summary>
/// What one optimisation step of a trainer computes: the loss of a micro-batch, its backward pass into the trained
/// model's gradients, and the metrics to log. The trainer loop (accumulation, clipping, AdamW, schedules, evaluation,
/// checkpoints) is shared; objectives differ per method (LM loss for pretraining and SFT, pairwise ranking for the
/// reward model, DPO, PPO).
/// </summary>
/// <typeparam name="TBatch">The collated micro-batch this objective consumes.</typeparam>
public interface ITrainingObjective<in TBatch>
{
    /// <summary>
    /// Forward and backward for one micro-batch: adds ∂(lossScale·loss)/∂θ into the trained model's gradients and returns
    /// the (unscaled) loss and metrics.
    /// </summary>
    ObjectiveResult Step(TBatch batch, float lossScale);

    /// <summary>Forward only, for evaluation on a validation split; gradients are untouched.</summary>
    ObjectiveResult Evaluate(TBatch batch);

    /// <summary>
    /// How much <paramref name="batch"/> counts in a step of several accumulated micro-batches (e.g. its target tokens):
    /// the trainer gives micro-batch i the loss scale wᵢ/Σw, so 2 micro-batches of B/2 give the gradient of one of B even
    /// when they hold different numbers of tokens. Known before the forward pass. Equal weights by default.
    /// </summary>
    double Weight(TBatch batch) => 1.0;
}

/// <summary>The outcome of one micro-batch.</summary>
/// <param name="Loss">The objective's loss (mean over the micro-batch's counted units).</param>
/// <param name="Metrics">Further metrics under TRL's names where one exists (e.g. <c>rewards/accuracies</c>, <c>logps/chosen</c>).</param>
/// <param name="Tokens">Tokens processed (for tokens/s).</param>
/// <param name="Weight">How much this micro-batch counts when metrics of several are averaged (e.g. pairs or target tokens).</param>
public sealed record ObjectiveResult(double Loss, IReadOnlyDictionary<string, double> Metrics, long Tokens, double Weight = 1.0);
