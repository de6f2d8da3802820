using Engine.Core.Backends;
using Engine.Core.Tensors;
using Engine.Models;

namespace Engine.Training.Objectives.Preference;

/// <summary>
/// The shared core of the preference objectives: the policy's and the reference's sequence log-probs of a batch's rows
/// (fused over the LM head, no [N,V] logits), the rows' lengths and pairs on the device, the loss kernel called once
/// per loss of a list with its gradients summed into one ∂L/∂log π [R], and the way back into the policy.
/// </summary>
internal sealed class PreferenceLossPass(Backend backend) : IDisposable
{
    private readonly SequenceLogProbs pass = new(backend);
    private readonly DeviceScratch scratch = new(backend);
    private Tensor policy, reference, lengths, chosen, rejected, weights, grad;
    private int rows;

    /// <summary>The policy is a language model and the reference (when given) is not the policy itself; <paramref name="method"/> names the objective.</summary>
    public static void CheckModels(Transformer policy, IReferenceLogProbs? reference, string method)
    {
        if (policy.HasScalarHead)
        {
            throw new ArgumentException($"{method} trains a language model: the policy has a scalar head", nameof(policy));
        }

        if (reference is ReferenceModel same && ReferenceEquals(same.Model, policy) && policy.Lora is null)
        {
            throw new ArgumentException(
                "the reference must be a separate frozen model (or cached log-probs), or the policy itself only when it trains LoRA adapters (its base is the reference)", nameof(reference));
        }
    }

    /// <summary>
    /// Sequence log-probs of every row of <paramref name="batch"/>: the policy's from <paramref name="hidden"/> and the
    /// reference's (when given), each uploaded with the response lengths and the pairs (<paramref name="chosenRows"/>,
    /// <paramref name="rejectedRows"/>, optional <paramref name="pairWeights"/>). Clears the gradient.
    /// </summary>
    public (float[] Policy, float[]? Reference) Forward(
        Transformer model, Tensor hidden, PreferenceBatch batch, IReferenceLogProbs? referenceLogProbs, int[] chosenRows, int[] rejectedRows,
        float[]? pairWeights)
    {
        rows = batch.Rows;
        var policyHost = new float[rows];
        pass.Forward(model, hidden, batch, policyHost);
        float[]? referenceHost = null;
        if (referenceLogProbs is not null)
        {
            referenceHost = new float[rows];
            referenceLogProbs.SequenceLogProbs(batch, referenceHost);
        }

        int pairs = chosenRows.Length;
        policy = scratch.Upload("policy", policyHost, rows);
        reference = referenceHost is null ? default : scratch.Upload("reference", referenceHost, rows);
        lengths = scratch.Upload("lengths", batch.ResponseTokens.Select(n => (float)n).ToArray(), rows);
        chosen = scratch.Upload("chosen", chosenRows, pairs);
        rejected = scratch.Upload("rejected", rejectedRows, pairs);
        weights = pairWeights is null ? default : scratch.Upload("weights", pairWeights, pairs);
        grad = scratch.Zeros("dlogp", rows);
        return (policyHost, referenceHost);
    }

    /// <summary>One loss over the rows of the last <see cref="Forward"/>; its gradient (times GradScale) is added when asked for.</summary>
    public PreferenceLossStatistics Loss(in PreferenceLossOptions options, bool withGradient) =>
        scratch.Backend.PreferenceLoss(policy, reference, lengths, chosen, rejected, weights, withGradient ? grad : default, options);

    /// <summary>Back-propagates the summed ∂L/∂log π into the policy (hidden-state and LM-head gradients, then the trunk).</summary>
    public void Backward(Transformer model, Tensor hidden)
    {
        var host = new float[rows];
        scratch.Backend.CopyToHost<float>(grad, host);
        pass.Backward(model, hidden, host);
        model.BackwardFromHidden();
    }

    public void Dispose()
    {
        pass.Dispose();
        scratch.Dispose();
    }
}
