using Engine.Core.Tensors;

namespace Engine.Core.Cpu;

public sealed unsafe partial class CpuBackend
{
    /// <inheritdoc/>
    protected override void GeluForwardCore(Tensor output, Tensor input) => throw new NotImplementedException();

    /// <inheritdoc/>
    protected override void GeluBackwardCore(Tensor inputGrad, Tensor outputGrad, Tensor input) => throw new NotImplementedException();

    /// <inheritdoc/>
    protected override void SwiGluForwardCore(Tensor output, Tensor input) => throw new NotImplementedException();

    /// <inheritdoc/>
    protected override void SwiGluBackwardCore(Tensor inputGrad, Tensor outputGrad, Tensor input) => throw new NotImplementedException();

    /// <inheritdoc/>
    protected override void DropoutForwardCore(Tensor output, Tensor input, float probability, ulong seed, ulong offset) =>
        throw new NotImplementedException();

    /// <inheritdoc/>
    protected override void DropoutBackwardCore(Tensor inputGrad, Tensor outputGrad, float probability, ulong seed, ulong offset) =>
        throw new NotImplementedException();
}
