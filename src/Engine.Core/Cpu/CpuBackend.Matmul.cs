using Engine.Core.Backends;
using Engine.Core.Tensors;

namespace Engine.Core.Cpu;

public sealed unsafe partial class CpuBackend
{
    /// <inheritdoc/>
    protected override void GemmCore(Tensor c, Tensor a, Tensor b, bool transposeA, bool transposeB, float alpha, float beta) =>
        throw new NotImplementedException();

    /// <inheritdoc/>
    protected override void MatmulForwardCore(Tensor output, Tensor input, Tensor weight, Tensor bias, WeightLayout layout) =>
        throw new NotImplementedException();

    /// <inheritdoc/>
    protected override void MatmulBackwardCore(
        Tensor inputGrad, Tensor weightGrad, Tensor biasGrad, Tensor outputGrad, Tensor input, Tensor weight, WeightLayout layout) =>
        throw new NotImplementedException();
}
