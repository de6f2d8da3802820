using Engine.Core.Tensors;
using Engine.Cuda.Runtime;

namespace Engine.Cuda;

public sealed partial class CudaBackend
{
    /// <inheritdoc/>
    protected override void CrossEntropyForwardCore(Tensor losses, Tensor logits, Tensor targets) =>
        CrossEntropy(losses, logits, targets, backward: false, gradScale: 0f);

    /// <inheritdoc/>
    protected override void CrossEntropyForwardBackwardCore(Tensor losses, Tensor logits, Tensor targets, float gradScale) =>
        CrossEntropy(losses, logits, targets, backward: true, gradScale);

    private void CrossEntropy(Tensor losses, Tensor logits, Tensor targets, bool backward, float gradScale)
    {
        long n = logits.Shape.Rows;
        int v = checked((int)logits.Shape.Last);
        if (n == 0)
        {
            return;
        }

        // Wide vocabularies get a full block per row; the block size depends only on V, so results are reproducible.
        int threads = v >= 8192 ? 1024 : ElementThreads;
        Launch(Kernels.CrossEntropy, new Dim3(checked((uint)n)), new Dim3((uint)threads), 0,
            losses, logits, targets, v, backward ? 1 : 0, gradScale, ErrorWord());
    }
}
