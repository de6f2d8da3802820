using System.Buffers;
using System.Numerics.Tensors;
using Engine.Core.Cpu.Simd;
using Engine.Core.Tensors;
using Tensor = Engine.Core.Tensors.Tensor;

namespace Engine.Core.Cpu;

public sealed unsafe partial class CpuBackend
{
    /// <summary>Columns per work item when partial sums of a [rows, C] reduction are folded together.</summary>
    private const int ColumnBlock = 256;

    /// <inheritdoc/>
    protected override void LayerNormForwardCore(Tensor output, Tensor mean, Tensor rstd, Tensor input, Tensor weight, Tensor bias, float epsilon)
    {
        var s = new NormState
        {
            Out = output.Pointer<float>(), Mean = mean.Pointer<float>(), Rstd = rstd.Pointer<float>(), In = input.Pointer<float>(),
            Weight = weight.Pointer<float>(), Bias = bias.Pointer<float>(), Epsilon = epsilon,
        };
        s.Chunks = RowChunks.Of(input);
        pool.For(
            s.Chunks.Items,
            ref s,
            Vec.Pick(s.Chunks.C) switch
            {
                VecWidth.W512 => &LayerNormForwardItem<V512>,
                VecWidth.W256 => &LayerNormForwardItem<V256>,
                VecWidth.W128 => &LayerNormForwardItem<V128>,
                _ => &LayerNormForwardItem<V1>,
            });
    }

    /// <inheritdoc/>
    protected override void LayerNormBackwardCore(
        Tensor inputGrad, Tensor weightGrad, Tensor biasGrad, Tensor outputGrad, Tensor input, Tensor weight, Tensor mean, Tensor rstd)
    {
        var s = new NormState
        {
            InGrad = inputGrad.Pointer<float>(), OutGrad = outputGrad.Pointer<float>(), In = input.Pointer<float>(),
            Weight = weight.Pointer<float>(), Mean = mean.Pointer<float>(), Rstd = rstd.Pointer<float>(),
        };
        s.Chunks = RowChunks.Of(input);
        NormBackward(ref s, weightGrad, biasGrad, Vec.Pick(s.Chunks.C) switch
        {
            VecWidth.W512 => &LayerNormBackwardItem<V512>,
            VecWidth.W256 => &LayerNormBackwardItem<V256>,
            VecWidth.W128 => &LayerNormBackwardItem<V128>,
            _ => &LayerNormBackwardItem<V1>,
        });
    }

    /// <inheritdoc/>
    protected override void RmsNormForwardCore(Tensor output, Tensor rstd, Tensor input, Tensor weight, float epsilon)
    {
        var s = new NormState
        {
            Out = output.Pointer<float>(), Rstd = rstd.Pointer<float>(), In = input.Pointer<float>(), Weight = weight.Pointer<float>(), Epsilon = epsilon,
        };
        s.Chunks = RowChunks.Of(input);
        pool.For(
            s.Chunks.Items,
            ref s,
            Vec.Pick(s.Chunks.C) switch
            {
                VecWidth.W512 => &RmsNormForwardItem<V512>,
                VecWidth.W256 => &RmsNormForwardItem<V256>,
                VecWidth.W128 => &RmsNormForwardItem<V128>,
                _ => &RmsNormForwardItem<V1>,
            });
    }

    /// <inheritdoc/>
    protected override void RmsNormBackwardCore(Tensor inputGrad, Tensor weightGrad, Tensor outputGrad, Tensor input, Tensor weight, Tensor rstd)
    {
        var s = new NormState
        {
            InGrad = inputGrad.Pointer<float>(), OutGrad = outputGrad.Pointer<float>(), In = input.Pointer<float>(),
            Weight = weight.Pointer<float>(), Rstd = rstd.Pointer<float>(),
        };
        s.Chunks = RowChunks.Of(input);
        NormBackward(ref s, weightGrad, default, Vec.Pick(s.Chunks.C) switch
        {
            VecWidth.W512 => &RmsNormBackwardItem<V512>,
            VecWidth.W256 => &RmsNormBackwardItem<V256>,
            VecWidth.W128 => &RmsNormBackwardItem<V128>,
            _ => &RmsNormBackwardItem<V1>,
        });
    }

    /// <summary>
    /// Runs a norm backward over fixed row chunks. Each chunk writes its own partial dweight/dbias rows into scratch;
    /// a second pass folds the partials in chunk order, column block by column block, and adds them to the gradients.
    /// The chunking depends only on the shape, so the sums have the same bits for any thread count.
    /// </summary>
    private void NormBackward(ref NormState s, Tensor weightGrad, Tensor biasGrad, delegate*<ref NormState, int, void> item)
    {
        s.WeightGrad = weightGrad.Pointer<float>();
        s.BiasGrad = biasGrad.Pointer<float>();
        int vectors = (s.WeightGrad != null ? 1 : 0) + (s.BiasGrad != null ? 1 : 0);
        if (vectors == 0 || s.Chunks.Items == 0)
        {
            pool.For(s.Chunks.Items, ref s, item);
            return;
        }

        long stride = (long)vectors * s.Chunks.C;
        float[] scratch = ArrayPool<float>.Shared.Rent(checked((int)(stride * s.Chunks.Items)));
        try
        {
            fixed (float* partials = scratch)
            {
                s.Partials = partials;
                s.PartialStride = stride;
                pool.For(s.Chunks.Items, ref s, item);
                pool.For((s.Chunks.C + ColumnBlock - 1) / ColumnBlock, ref s, &FoldPartialsItem);
            }
        }
        finally
        {
            ArrayPool<float>.Shared.Return(scratch);
        }
    }

    // partials is (items, vectors, C): fold every item's rows into item 0, in order, then add to the gradients.
    private static void FoldPartialsItem(ref NormState s, int block)
    {
        int c0 = block * ColumnBlock;
        int n = Math.Min(ColumnBlock, s.Chunks.C - c0);
        float* first = s.Partials + c0;
        int vectors = (int)(s.PartialStride / s.Chunks.C);
        for (int v = 0; v < vectors; v++)
        {
            var sum = new Span<float>(first + ((long)v * s.Chunks.C), n);
            for (int j = 1; j < s.Chunks.Items; j++)
            {
                TensorPrimitives.Add(sum, new ReadOnlySpan<float>(first + (j * s.PartialStride) + ((long)v * s.Chunks.C), n), sum);
            }

            float* grad = v == 0 && s.WeightGrad != null ? s.WeightGrad : s.BiasGrad;
            var g = new Span<float>(grad + c0, n);
            TensorPrimitives.Add(g, sum, g);
        }
    }

    // inp, out are (N,C), weight and bias are (C), mean and rstd are (N)
    private static void LayerNormForwardItem<V>(ref NormState s, int item)
        where V : unmanaged, IVec<V>
    {
        var (first, end) = s.Chunks.Range(item);
        int c = s.Chunks.C, at = c - V.Count;
        for (long row = first; row < end; row++)
        {
            float* x = s.In + (row * c), y = s.Out + (row * c);
            float m = VecOps.Sum<V>(x, c) / c;
            float variance = VecOps.SumSquaredDeviations<V>(x, c, m) / c;
            float r = 1f / MathF.Sqrt(variance + s.Epsilon);
            s.Mean[row] = m;
            s.Rstd[row] = r;

            var vm = V.Create(m);
            var vr = V.Create(r);
            int i = 0;
            for (; i <= at; i += V.Count)
            {
                V.Store(y + i, Affine<V>((V.Load(x + i) - vm) * vr, s.Weight + i, s.Bias == null ? null : s.Bias + i));
            }

            if (i < c)
            {
                var o = Affine<V>((V.Load(x + at) - vm) * vr, s.Weight + at, s.Bias == null ? null : s.Bias + at);
                V.Store(y + at, V.Select(V.TailMask(c - i), o, V.Load(y + at)));
            }
        }
    }

    private static V Affine<V>(V norm, float* w, float* b)
        where V : unmanaged, IVec<V> =>
        b == null ? norm * V.Load(w) : V.MulAdd(norm, V.Load(w), V.Load(b));

    // dinp += (w·dout − mean(w·dout) − norm·mean(w·dout·norm))·rstd; per chunk: dweight += dout·norm, dbias += dout
    private static void LayerNormBackwardItem<V>(ref NormState s, int item)
        where V : unmanaged, IVec<V>
    {
        var (first, end) = s.Chunks.Range(item);
        int c = s.Chunks.C, at = c - V.Count;
        float* pdw = null, pdb = null;
        if (s.Partials != null)
        {
            float* p = s.Partials + (item * s.PartialStride);
            new Span<float>(p, checked((int)s.PartialStride)).Clear();
            pdw = s.WeightGrad != null ? p : null;
            pdb = s.BiasGrad != null ? (pdw != null ? p + c : p) : null;
        }

        var zero = V.Create(0f);
        var full = V.TailMask(V.Count);
        for (long row = first; row < end; row++)
        {
            float* x = s.In + (row * c), dy = s.OutGrad + (row * c), dx = s.InGrad == null ? null : s.InGrad + (row * c);
            var vm = V.Create(s.Mean[row]);
            var vr = V.Create(s.Rstd[row]);

            // The two row means dinp needs, accumulated together in one sweep.
            V sumD = zero, sumDn = zero;
            int i = 0;
            for (; i <= at; i += V.Count)
            {
                var dnorm = V.Load(s.Weight + i) * V.Load(dy + i);
                sumD += dnorm;
                sumDn = V.MulAdd(dnorm, (V.Load(x + i) - vm) * vr, sumDn);
            }

            if (i < c)
            {
                var dnorm = V.Select(V.TailMask(c - i), V.Load(s.Weight + at) * V.Load(dy + at), zero);
                sumD += dnorm;
                sumDn = V.MulAdd(dnorm, (V.Load(x + at) - vm) * vr, sumDn);
            }

            var meanD = V.Create(V.Sum(sumD) / c);
            var meanDn = V.Create(V.Sum(sumDn) / c);
            for (i = 0; i <= at; i += V.Count)
            {
                LayerNormBackwardStep(i, x, dy, dx, s.Weight, pdw, pdb, vm, vr, meanD, meanDn, full);
            }

            if (i < c)
            {
                LayerNormBackwardStep(at, x, dy, dx, s.Weight, pdw, pdb, vm, vr, meanD, meanDn, V.TailMask(c - i));
            }
        }
    }

    private static void LayerNormBackwardStep<V>(
        int i, float* x, float* dy, float* dx, float* w, float* pdw, float* pdb, V mean, V rstd, V meanD, V meanDn, V mask)
        where V : unmanaged, IVec<V>
    {
        var g = V.Load(dy + i);
        var norm = (V.Load(x + i) - mean) * rstd;
        if (dx != null)
        {
            var cur = V.Load(dx + i);
            var delta = (V.Load(w + i) * g) - meanD - (norm * meanDn);
            V.Store(dx + i, V.Select(mask, V.MulAdd(delta, rstd, cur), cur));
        }

        if (pdw != null)
        {
            var cur = V.Load(pdw + i);
            V.Store(pdw + i, V.Select(mask, V.MulAdd(g, norm, cur), cur));
        }

        if (pdb != null)
        {
            var cur = V.Load(pdb + i);
            V.Store(pdb + i, V.Select(mask, cur + g, cur));
        }
    }

    // inp, out are (N,C), weight is (C), rstd is (N)
    private static void RmsNormForwardItem<V>(ref NormState s, int item)
        where V : unmanaged, IVec<V>
    {
        var (first, end) = s.Chunks.Range(item);
        int c = s.Chunks.C, at = c - V.Count;
        for (long row = first; row < end; row++)
        {
            float* x = s.In + (row * c), y = s.Out + (row * c);
            float r = 1f / MathF.Sqrt((VecOps.SumSquaredDeviations<V>(x, c, 0f) / c) + s.Epsilon);
            s.Rstd[row] = r;
            var vr = V.Create(r);
            int i = 0;
            for (; i <= at; i += V.Count)
            {
                V.Store(y + i, V.Load(x + i) * vr * V.Load(s.Weight + i));
            }

            if (i < c)
            {
                var o = V.Load(x + at) * vr * V.Load(s.Weight + at);
                V.Store(y + at, V.Select(V.TailMask(c - i), o, V.Load(y + at)));
            }
        }
    }

    // dinp += (w·dout − norm·mean(w·dout·norm))·rstd; per chunk: dweight += dout·norm
    private static void RmsNormBackwardItem<V>(ref NormState s, int item)
        where V : unmanaged, IVec<V>
    {
        var (first, end) = s.Chunks.Range(item);
        int c = s.Chunks.C, at = c - V.Count;
        float* pdw = null;
        if (s.Partials != null)
        {
            pdw = s.Partials + (item * s.PartialStride);
            new Span<float>(pdw, c).Clear();
        }

        var zero = V.Create(0f);
        var full = V.TailMask(V.Count);
        for (long row = first; row < end; row++)
        {
            float* x = s.In + (row * c), dy = s.OutGrad + (row * c), dx = s.InGrad == null ? null : s.InGrad + (row * c);
            var vr = V.Create(s.Rstd[row]);
            V sumDn = zero;
            int i = 0;
            for (; i <= at; i += V.Count)
            {
                sumDn = V.MulAdd(V.Load(s.Weight + i) * V.Load(dy + i), V.Load(x + i) * vr, sumDn);
            }

            if (i < c)
            {
                var dnorm = V.Select(V.TailMask(c - i), V.Load(s.Weight + at) * V.Load(dy + at), zero);
                sumDn = V.MulAdd(dnorm, V.Load(x + at) * vr, sumDn);
            }

            var meanDn = V.Create(V.Sum(sumDn) / c);
            for (i = 0; i <= at; i += V.Count)
            {
                RmsNormBackwardStep(i, x, dy, dx, s.Weight, pdw, vr, meanDn, full);
            }

            if (i < c)
            {
                RmsNormBackwardStep(at, x, dy, dx, s.Weight, pdw, vr, meanDn, V.TailMask(c - i));
            }
        }
    }

    private static void RmsNormBackwardStep<V>(int i, float* x, float* dy, float* dx, float* w, float* pdw, V rstd, V meanDn, V mask)
        where V : unmanaged, IVec<V>
    {
        var g = V.Load(dy + i);
        var norm = V.Load(x + i) * rstd;
        if (dx != null)
        {
            var cur = V.Load(dx + i);
            var delta = (V.Load(w + i) * g) - (norm * meanDn);
            V.Store(dx + i, V.Select(mask, V.MulAdd(delta, rstd, cur), cur));
        }

        if (pdw != null)
        {
            var cur = V.Load(pdw + i);
            V.Store(pdw + i, V.Select(mask, V.MulAdd(g, norm, cur), cur));
        }
    }

    private struct NormState
    {
        public float* Out;
        public float* In;
        public float* InGrad;
        public float* OutGrad;
        public float* Weight;
        public float* Bias;
        public float* WeightGrad;
        public float* BiasGrad;
        public float* Mean;
        public float* Rstd;
        public float* Partials;
        public long PartialStride;
        public float Epsilon;
        public RowChunks Chunks;
    }
}
