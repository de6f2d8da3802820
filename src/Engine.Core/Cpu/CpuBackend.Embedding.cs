using Engine.Core.Tensors;

namespace Engine.Core.Cpu;

public sealed unsafe partial class CpuBackend
{
    /// <inheritdoc/>
    protected override void EmbeddingForwardCore(Tensor output, Tensor tokens, Tensor table) => throw new NotImplementedException();

    /// <inheritdoc/>
    protected override void EmbeddingBackwardCore(Tensor tableGrad, Tensor outputGrad, Tensor tokens) => throw new NotImplementedException();

    /// <inheritdoc/>
    protected override void PositionEmbeddingForwardCore(Tensor x, Tensor positions, int positionOffset) => throw new NotImplementedException();

    /// <inheritdoc/>
    protected override void PositionEmbeddingBackwardCore(Tensor positionsGrad, Tensor xGrad) => throw new NotImplementedException();
}
