using Engine.Core.Backends;
using Engine.Core.Tensors;

namespace Engine.Core.Cpu;

public sealed unsafe partial class CpuBackend
{
    /// <inheritdoc/>
    protected override void AdamWCore(Tensor parameters, Tensor gradients, Tensor firstMoment, Tensor secondMoment, in AdamWParameters hyper) =>
        throw new NotImplementedException();

    /// <inheritdoc/>
    protected override double SquaredNormCore(Tensor tensor) => throw new NotImplementedException();
}
