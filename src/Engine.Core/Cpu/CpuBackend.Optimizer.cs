using System.Runtime.Intrinsics;
using Engine.Core.Backends;
using Engine.Core.Cpu.Simd;
using Engine.Core.Tensors;
using Tensor = Engine.Core.Tensors.Tensor;

namespace Engine.Core.Cpu;

public sealed unsafe partial class CpuBackend
{
    /// <summary>Chunks whose partial norms are reduced per pool dispatch (their partials live on the stack).</summary>
    private const int NormChunksPerGroup = 1024;

    /// <inheritdoc/>
    protected override void AdamWCore(Tensor parameters, Tensor gradients, Tensor firstMoment, Tensor secondMoment, in AdamWParameters hyper)
    {
        // The scalars are formed as torch.optim.AdamW forms them (in double, then used in float):
        // θ ← θ·(1 − ηλ) − (η / bc₁)·m / (√v / √bc₂ + ε).
        double bc1 = 1.0 - Math.Pow(hyper.Beta1, hyper.Step);
        double bc2 = 1.0 - Math.Pow(hyper.Beta2, hyper.Step);
        var s = new AdamWState
        {
            Params = parameters.Pointer<float>(), Grads = gradients.Pointer<float>(), M = firstMoment.Pointer<float>(), V = secondMoment.Pointer<float>(),
            Length = parameters.ElementCount, GradScale = hyper.GradScale, OneMinusBeta1 = 1f - hyper.Beta1, Beta2 = hyper.Beta2,
            OneMinusBeta2 = 1f - hyper.Beta2, Decay = (float)(1.0 - ((double)hyper.LearningRate * hyper.WeightDecay)),
            StepSize = (float)(hyper.LearningRate / bc1), Bc2Sqrt = (float)Math.Sqrt(bc2), Epsilon = hyper.Epsilon,
        };
        pool.For(ChunkCount(s.Length), ref s, &AdamWChunk);
    }

    /// <inheritdoc/>
    protected override double SquaredNormCore(Tensor tensor)
    {
        long length = tensor.ElementCount;
        int chunks = ChunkCount(length);
        double* partials = stackalloc double[NormChunksPerGroup];
        var s = new NormSumState { X = tensor.Pointer<float>(), Length = length, Partials = partials };
        double total = 0;
        for (int group = 0; group < chunks; group += NormChunksPerGroup)
        {
            int count = Math.Min(NormChunksPerGroup, chunks - group);
            s.FirstChunk = group;
            pool.For(count, ref s, &SquaredNormChunk);
            for (int i = 0; i < count; i++)
            {
                total += partials[i];
            }
        }

        return total;
    }

    private static void AdamWChunk(ref AdamWState s, int index)
    {
        var (start, n) = ChunkRange(s.Length, index);
        switch (Vec.Pick(n))
        {
            case VecWidth.W512: AdamW<V512>(ref s, start, n); break;
            case VecWidth.W256: AdamW<V256>(ref s, start, n); break;
            case VecWidth.W128: AdamW<V128>(ref s, start, n); break;
            default: AdamW<V1>(ref s, start, n); break;
        }
    }

    // params, grads, m, v are (L) flat; this updates [start, start + n), n >= V.Count
    private static void AdamW<V>(ref AdamWState s, long start, int n)
        where V : unmanaged, IVec<V>
    {
        float* p = s.Params + start, g = s.Grads + start, m = s.M + start, v = s.V + start;
        var full = V.TailMask(V.Count);
        int i = 0;
        for (; i <= n - V.Count; i += V.Count)
        {
            AdamWStep(ref s, p + i, g + i, m + i, v + i, full);
        }

        if (i < n)
        {
            int at = n - V.Count;
            AdamWStep(ref s, p + at, g + at, m + at, v + at, V.TailMask(n - i));
        }
    }

    private static void AdamWStep<V>(ref AdamWState s, float* p, float* g, float* m, float* v, V mask)
        where V : unmanaged, IVec<V>
    {
        var grad = V.Load(g) * V.Create(s.GradScale);
        var m0 = V.Load(m);
        var v0 = V.Load(v);
        var p0 = V.Load(p);

        // m.lerp_(g, 1 − β₁) and v.mul_(β₂).addcmul_(g, g, 1 − β₂), as PyTorch writes them.
        var m1 = V.MulAdd(grad - m0, V.Create(s.OneMinusBeta1), m0);
        var v1 = V.MulAdd(grad * grad, V.Create(s.OneMinusBeta2), v0 * V.Create(s.Beta2));
        var denom = (V.Sqrt(v1) / V.Create(s.Bc2Sqrt)) + V.Create(s.Epsilon);
        var p1 = (p0 * V.Create(s.Decay)) - (V.Create(s.StepSize) * m1 / denom);
        V.Store(m, V.Select(mask, m1, m0));
        V.Store(v, V.Select(mask, v1, v0));
        V.Store(p, V.Select(mask, p1, p0));
    }

    private static void SquaredNormChunk(ref NormSumState s, int index)
    {
        var (start, n) = ChunkRange(s.Length, s.FirstChunk + index);
        s.Partials[index] = SumOfSquaresDouble(s.X + start, n);
    }

    // Σ x² with every square formed and summed in double.
    private static double SumOfSquaresDouble(float* x, int n)
    {
        int i = 0;
        double sum = 0;
        if (Vector512.IsHardwareAccelerated && n >= Vector512<float>.Count)
        {
            Vector512<double> a0 = default, a1 = default;
            for (; i <= n - Vector512<float>.Count; i += Vector512<float>.Count)
            {
                var (lo, hi) = Vector512.Widen(Vector512.Load(x + i));
                a0 = Vector512.MultiplyAddEstimate(lo, lo, a0);
                a1 = Vector512.MultiplyAddEstimate(hi, hi, a1);
            }

            sum = Vector512.Sum(a0 + a1);
        }
        else if (Vector256.IsHardwareAccelerated && n >= Vector256<float>.Count)
        {
            Vector256<double> a0 = default, a1 = default;
            for (; i <= n - Vector256<float>.Count; i += Vector256<float>.Count)
            {
                var (lo, hi) = Vector256.Widen(Vector256.Load(x + i));
                a0 = Vector256.MultiplyAddEstimate(lo, lo, a0);
                a1 = Vector256.MultiplyAddEstimate(hi, hi, a1);
            }

            sum = Vector256.Sum(a0 + a1);
        }
        else if (Vector128.IsHardwareAccelerated && n >= Vector128<float>.Count)
        {
            Vector128<double> a0 = default, a1 = default;
            for (; i <= n - Vector128<float>.Count; i += Vector128<float>.Count)
            {
                var (lo, hi) = Vector128.Widen(Vector128.Load(x + i));
                a0 = Vector128.MultiplyAddEstimate(lo, lo, a0);
                a1 = Vector128.MultiplyAddEstimate(hi, hi, a1);
            }

            sum = Vector128.Sum(a0 + a1);
        }

        // At most one vector's worth of elements is left (chunks are a multiple of every width but the last).
        for (; i < n; i++)
        {
            sum += (double)x[i] * x[i];
        }

        return sum;
    }

    private struct AdamWState
    {
        public float* Params;
        public float* Grads;
        public float* M;
        public float* V;
        public long Length;
        public float GradScale;
        public float OneMinusBeta1;
        public float Beta2;
        public float OneMinusBeta2;
        public float Decay;
        public float StepSize;
        public float Bc2Sqrt;
        public float Epsilon;
    }

    private struct NormSumState
    {
        public float* X;
        public long Length;
        public double* Partials;
        public int FirstChunk;
    }
}
