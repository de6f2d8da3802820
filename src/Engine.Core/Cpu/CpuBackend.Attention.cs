using Engine.Core.Backends;
using Engine.Core.Tensors;

namespace Engine.Core.Cpu;

public sealed unsafe partial class CpuBackend
{
    /// <inheritdoc/>
    protected override void RopeForwardCore(Tensor qkv, Tensor table, AttentionShape shape, int positionOffset) =>
        throw new NotImplementedException();

    /// <inheritdoc/>
    protected override void RopeBackwardCore(Tensor qkvGrad, Tensor table, AttentionShape shape, int positionOffset) =>
        throw new NotImplementedException();

    /// <inheritdoc/>
    protected override void AttentionForwardCore(Tensor output, Tensor logSumExp, Tensor qkv, AttentionShape shape) =>
        throw new NotImplementedException();

    /// <inheritdoc/>
    protected override void AttentionBackwardCore(Tensor qkvGrad, Tensor outputGrad, Tensor qkv, Tensor output, Tensor logSumExp, AttentionShape shape) =>
        throw new NotImplementedException();
}
