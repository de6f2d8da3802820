using Engine.Core.Backends;
using Engine.Core.Tensors;
using Engine.Cuda.Runtime;

namespace Engine.Cuda;

/// <summary>The preference loss family (kernels/rl.cu, preference_pairs), gathered into the gradient like the pairwise loss.</summary>
public sealed unsafe partial class CudaBackend
{
    /// <inheritdoc/>
    protected override PreferenceLossStatistics PreferenceLossCore(
        Tensor policy, Tensor reference, Tensor lengths, Tensor chosen, Tensor rejected, Tensor weights, Tensor policyGrad,
        in PreferenceLossOptions options)
    {
        int pairs = checked((int)chosen.ElementCount), responses = checked((int)policy.ElementCount);
        if (pairs == 0)
        {
            return default;
        }

        // Pair contributions [2, P], AOT's ranks [2, P], then the eight result floats.
        long gradBytes = Aligned(2L * pairs * sizeof(float)), rankBytes = Aligned(2L * pairs * sizeof(int));
        nint pairGrad = Scratch(gradBytes + rankBytes + (PairwiseResultCount * sizeof(float)));
        nint ranks = pairGrad + (nint)gradBytes;
        nint result = ranks + (nint)rankBytes;
        bool wantGrad = !policyGrad.IsEmpty;
        Launch(Kernels.PreferencePairs, new Dim3(1), new Dim3(PairwiseThreads), 0,
            KernelArg.Pointer(pairGrad), KernelArg.Pointer(result), KernelArg.Pointer(ranks), policy, reference, lengths, chosen, rejected,
            weights, pairs, responses, (int)options.Type, options.Beta, options.Gamma, options.LabelSmoothing, options.Baseline,
            options.NllWeight, options.DesirableWeight, options.UndesirableWeight, options.GradScale, wantGrad ? 1 : 0, ErrorWord());
        if (wantGrad && responses > 0)
        {
            Launch(Kernels.PairwiseScatter, new Dim3(Dim3.Blocks(responses, ElementThreads)), new Dim3(ElementThreads), 0,
                policyGrad, KernelArg.Pointer(pairGrad), KernelArg.Pointer(result), chosen, rejected, pairs, responses);
        }

        float* r = stackalloc float[PairwiseResultCount];
        ReadBack(r, result, PairwiseResultCount * sizeof(float));
        return new PreferenceLossStatistics(r[0], r[1], r[2], r[3], r[4], r[5]);
    }
}
