using System.Numerics.Tensors;
using Engine.Core.Backends;
using Engine.Core.Cpu.Gemm;
using Tensor = Engine.Core.Tensors.Tensor;

namespace Engine.Core.Cpu;

public sealed unsafe partial class CpuBackend
{
    /// <summary>Columns of the bias gradient summed by one work item (each column owned by one item).</summary>
    private const int BiasColumnChunk = 256;

    /// <inheritdoc/>
    protected override void GemmCore(Tensor c, Tensor a, Tensor b, bool transposeA, bool transposeB, float alpha, float beta)
    {
        var g = new GemmOperands
        {
            A = a.Pointer<float>(),
            Lda = (nint)a.Shape[1],
            TransposeA = transposeA,
            B = b.Pointer<float>(),
            Ldb = (nint)b.Shape[1],
            TransposeB = transposeB,
            C = c.Pointer<float>(),
            Ldc = (nint)c.Shape[1],
            M = checked((int)c.Shape[0]),
            N = checked((int)c.Shape[1]),
            K = checked((int)(transposeA ? a.Shape[0] : a.Shape[1])),
            Alpha = alpha,
            Beta = beta,
        };
        Sgemm.Run(pool, in g);
    }

    /// <inheritdoc/>
    protected override void MatmulForwardCore(Tensor output, Tensor input, Tensor weight, Tensor bias, WeightLayout layout)
    {
        if (layout == WeightLayout.OutIn && input.Shape.Rows <= GemvRows.MaxRows)
        {
            // A few rows (single-token decode): a row-dot-product pass streams each weight row once, which the tiled
            // GEMM, built for many rows, does not do as fast.
            var v = new GemvRows.State
            {
                Input = input.Pointer<float>(),
                Weight = weight.Pointer<float>(),
                Bias = bias.Pointer<float>(),
                Output = output.Pointer<float>(),
                Rows = checked((int)input.Shape.Rows),
                Columns = checked((int)output.Shape.Last),
                Depth = checked((int)input.Shape.Last),
            };
            pool.For((v.Columns + GemvRows.ColumnsPerItem - 1) / GemvRows.ColumnsPerItem, ref v, &GemvRows.Item);
            return;
        }

        // out[N,OC] = inp[N,C]·Wᵀ (OutIn, W [OC,C] read transposed) or inp·W (InOut, W [C,OC]); the bias rides in the
        // first K block's epilogue instead of a separate pass over out.
        var g = new GemmOperands
        {
            A = input.Pointer<float>(),
            Lda = (nint)input.Shape.Last,
            B = weight.Pointer<float>(),
            Ldb = (nint)weight.Shape[1],
            TransposeB = layout == WeightLayout.OutIn,
            C = output.Pointer<float>(),
            Ldc = (nint)output.Shape.Last,
            M = checked((int)input.Shape.Rows),
            N = checked((int)output.Shape.Last),
            K = checked((int)input.Shape.Last),
            Alpha = 1f,
            Beta = 0f,
            Bias = bias.Pointer<float>(),
        };
        Sgemm.Run(pool, in g);
    }

    /// <inheritdoc/>
    protected override void MatmulBackwardCore(
        Tensor inputGrad, Tensor weightGrad, Tensor biasGrad, Tensor outputGrad, Tensor input, Tensor weight, WeightLayout layout)
    {
        int n = checked((int)input.Shape.Rows), c = checked((int)input.Shape.Last), oc = checked((int)outputGrad.Shape.Last);
        bool outIn = layout == WeightLayout.OutIn;
        if (!inputGrad.IsEmpty)
        {
            // dinp[N,C] += dout[N,OC]·W[OC,C] (OutIn), or dout·Wᵀ with W [C,OC] (InOut).
            var g = new GemmOperands
            {
                A = outputGrad.Pointer<float>(), Lda = oc,
                B = weight.Pointer<float>(), Ldb = (nint)weight.Shape[1], TransposeB = !outIn,
                C = inputGrad.Pointer<float>(), Ldc = c,
                M = n, N = c, K = oc, Alpha = 1f, Beta = 1f,
            };
            Sgemm.Run(pool, in g);
        }

        if (!weightGrad.IsEmpty)
        {
            // dW[OC,C] += doutᵀ·inp (OutIn), or dW[C,OC] += inpᵀ·dout (InOut): a reduction over the N rows.
            var g = outIn
                ? new GemmOperands
                {
                    A = outputGrad.Pointer<float>(), Lda = oc, TransposeA = true,
                    B = input.Pointer<float>(), Ldb = c,
                    C = weightGrad.Pointer<float>(), Ldc = c,
                    M = oc, N = c, K = n, Alpha = 1f, Beta = 1f,
                }
                : new GemmOperands
                {
                    A = input.Pointer<float>(), Lda = c, TransposeA = true,
                    B = outputGrad.Pointer<float>(), Ldb = oc,
                    C = weightGrad.Pointer<float>(), Ldc = oc,
                    M = c, N = oc, K = n, Alpha = 1f, Beta = 1f,
                };
            Sgemm.Run(pool, in g);
        }

        if (!biasGrad.IsEmpty)
        {
            var s = new BiasGradState { Bias = biasGrad.Pointer<float>(), OutputGrad = outputGrad.Pointer<float>(), Rows = n, Columns = oc };
            pool.For((oc + BiasColumnChunk - 1) / BiasColumnChunk, ref s, &BiasGradChunk);
        }
    }

    /// <summary>dbias[j] += Σ_n dout[n,j] for one chunk of columns, summing rows in order so any thread count agrees.</summary>
    private static void BiasGradChunk(ref BiasGradState s, int index)
    {
        int j0 = index * BiasColumnChunk;
        int width = Math.Min(BiasColumnChunk, s.Columns - j0);
        Span<float> sum = stackalloc float[BiasColumnChunk];
        sum = sum[..width];
        sum.Clear();
        for (long row = 0; row < s.Rows; row++)
        {
            TensorPrimitives.Add(sum, new ReadOnlySpan<float>(s.OutputGrad + (row * s.Columns) + j0, width), sum);
        }

        var bias = new Span<float>(s.Bias + j0, width);
        TensorPrimitives.Add(bias, sum, bias);
    }

    private struct BiasGradState
    {
        public float* Bias;
        public float* OutputGrad;
        public long Rows;
        public int Columns;
    }
}
