using Engine.Core.Tensors;

namespace Engine.Models;

public sealed partial class Transformer
{
    private float residualDropout;

    // The probability and seed the last training forward ran with, so its backward recomputes the same masks even if
    // the properties change in between.
    private float activeDropout;
    private ulong activeDropoutSeed;

    /// <summary>
    /// Residual dropout probability p ∈ [0, 1): in training passes (<see cref="ForwardBackward"/>,
    /// <see cref="ForwardTraining"/>) the embedding output and every attention and MLP branch output are multiplied by
    /// keep/(1 − p) before they join the residual stream (GPT-2's <c>embd_pdrop</c>/<c>resid_pdrop</c>). Inference passes
    /// never drop. 0 (the default) runs exactly the pass without dropout. Attention-probability dropout is not implemented.
    /// </summary>
    public float ResidualDropout
    {
        get => residualDropout;
        set
        {
            if (!(value >= 0f && value < 1f))
            {
                throw new ArgumentOutOfRangeException(nameof(value), $"residual dropout must be in [0, 1), got {value}");
            }

            residualDropout = value;
        }
    }

    /// <summary>
    /// Seed of the dropout masks of the next training passes. Masks are a pure function of (seed, site, position):
    /// site 0 is the embedding output, 1 + 2l the attention branch and 2 + 2l the MLP branch of layer l. Trainers set it
    /// per micro-batch from their seeded state so a resumed run draws the same masks.
    /// </summary>
    public ulong DropoutSeed { get; set; }

    // Element offset of a dropout site in the counter-based stream: sites never share counters.
    private static ulong DropoutOffset(ActivationPlan p, int channels, int site) => (ulong)site * (ulong)((long)p.Batch * p.Time * channels);

    // Applies the active dropout to a branch output in place (training passes only).
    private void DropBranch(ActivationPlan p, Tensor branch, int site)
    {
        if (activeDropout > 0f)
        {
            Backend.DropoutForward(branch, branch, activeDropout, activeDropoutSeed, DropoutOffset(p, Config.Channels, site));
        }
    }

    // ∂L/∂(branch output before dropout) from ∂L/∂(residual sum) [B,T,C]: the same tensor without dropout, else the
    // masked, rescaled copy in the branch scratch, which is free during backward.
    private Tensor DropoutGradient(ActivationPlan p, Tensor outputGrad, int site)
    {
        if (activeDropout == 0f)
        {
            return outputGrad;
        }

        var grad = p.Branch.Reshape(p.Batch, p.Time, Config.Channels);
        Backend.Zero(grad);
        Backend.DropoutBackward(grad, outputGrad, activeDropout, activeDropoutSeed, DropoutOffset(p, Config.Channels, site));
        return grad;
    }
}
