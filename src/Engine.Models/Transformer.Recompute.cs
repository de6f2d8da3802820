namespace Engine.Models;

public sealed partial class Transformer
{
    /// <summary>
    /// Activation recomputation (Hugging Face's <c>gradient_checkpointing</c>): training passes keep only each layer's
    /// input (the residual stream before it) instead of every activation, and backward runs each layer's forward again
    /// just before its backward. The layers share one set of activation buffers, so the plan shrinks by about
    /// (L − 1)/L of its per-layer part (<see cref="ActivationBytesFor"/>) for roughly one more forward pass of time.
    /// Gradients are bit-identical to the pass without it: the recomputation runs the same ops on the same inputs, and
    /// dropout masks are a pure function of (seed, site, position), so they come out the same. Off by default.
    /// </summary>
    public bool GradientCheckpointing { get; set; }

    // Refills the shared activations with layer l's before its backward. The last layer's are still there from the
    // forward pass, so it is not run again.
    private void RecomputeLayer(ActivationPlan p, int l)
    {
        if (p.Recompute && l < Config.Layers - 1)
        {
            ForwardLayer(p, l, cache: null);
        }
    }
}
