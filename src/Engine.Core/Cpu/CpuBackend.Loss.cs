using Engine.Core.Tensors;

namespace Engine.Core.Cpu;

public sealed unsafe partial class CpuBackend
{
    /// <inheritdoc/>
    protected override void CrossEntropyForwardCore(Tensor losses, Tensor logits, Tensor targets) => throw new NotImplementedException();

    /// <inheritdoc/>
    protected override void CrossEntropyForwardBackwardCore(Tensor losses, Tensor logits, Tensor targets, float gradScale) =>
        throw new NotImplementedException();
}
