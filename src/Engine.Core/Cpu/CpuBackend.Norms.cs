using Engine.Core.Tensors;

namespace Engine.Core.Cpu;

public sealed unsafe partial class CpuBackend
{
    /// <inheritdoc/>
    protected override void LayerNormForwardCore(Tensor output, Tensor mean, Tensor rstd, Tensor input, Tensor weight, Tensor bias, float epsilon) =>
        throw new NotImplementedException();

    /// <inheritdoc/>
    protected override void LayerNormBackwardCore(
        Tensor inputGrad, Tensor weightGrad, Tensor biasGrad, Tensor outputGrad, Tensor input, Tensor weight, Tensor mean, Tensor rstd) =>
        throw new NotImplementedException();

    /// <inheritdoc/>
    protected override void RmsNormForwardCore(Tensor output, Tensor rstd, Tensor input, Tensor weight, float epsilon) =>
        throw new NotImplementedException();

    /// <inheritdoc/>
    protected override void RmsNormBackwardCore(Tensor inputGrad, Tensor weightGrad, Tensor outputGrad, Tensor input, Tensor weight, Tensor rstd) =>
        throw new NotImplementedException();
}
