using Engine.Core.Backends;
using Engine.Core.Tensors;
using Engine.Cuda.Runtime;

namespace Engine.Cuda;

public sealed unsafe partial class CudaBackend
{
    /// <summary>Largest partial-sum scratch of a column reduction, in floats (segments × columns).</summary>
    private const long MaxPartialFloats = 1L << 22;

    /// <inheritdoc/>
    protected override void GemmCore(Tensor c, Tensor a, Tensor b, bool transposeA, bool transposeB, float alpha, float beta)
    {
        long k = transposeA ? a.Shape[0] : a.Shape[1];
        Gemm(c.Address, a.Address, b.Address, c.Shape[0], c.Shape[1], k, transposeA, transposeB, a.Shape[1], b.Shape[1], c.Shape[1], alpha, beta);
    }

    /// <inheritdoc/>
    protected override void MatmulForwardCore(Tensor output, Tensor input, Tensor weight, Tensor bias, WeightLayout layout)
    {
        // out[N,OC] = inp[N,C]·Wᵀ (OutIn, W [OC,C]) or inp·W (InOut, W [C,OC]); then out += bias row by row.
        long n = input.Shape.Rows, ch = input.Shape.Last, oc = output.Shape.Last;
        Gemm(output.Address, input.Address, weight.Address, n, oc, ch, false, layout == WeightLayout.OutIn, ch, weight.Shape[1], oc, 1f, 0f);
        long count = n * oc;
        if (!bias.IsEmpty && count > 0)
        {
            Launch(Kernels.BiasAdd, ElementGrid(count), new Dim3(ElementThreads), 0, output, bias, count, checked((int)oc));
        }
    }

    /// <inheritdoc/>
    protected override void MatmulBackwardCore(
        Tensor inputGrad, Tensor weightGrad, Tensor biasGrad, Tensor outputGrad, Tensor input, Tensor weight, WeightLayout layout)
    {
        long n = input.Shape.Rows, ch = input.Shape.Last, oc = outputGrad.Shape.Last;
        bool outIn = layout == WeightLayout.OutIn;
        if (!inputGrad.IsEmpty)
        {
            // dinp[N,C] += dout[N,OC]·W[OC,C] (OutIn), or dout·Wᵀ with W [C,OC] (InOut).
            Gemm(inputGrad.Address, outputGrad.Address, weight.Address, n, ch, oc, false, !outIn, oc, weight.Shape[1], ch, 1f, 1f);
        }

        if (!weightGrad.IsEmpty)
        {
            if (outIn)
            {
                // dW[OC,C] += doutᵀ·inp
                Gemm(weightGrad.Address, outputGrad.Address, input.Address, oc, ch, n, true, false, oc, ch, ch, 1f, 1f);
            }
            else
            {
                // dW[C,OC] += inpᵀ·dout
                Gemm(weightGrad.Address, input.Address, outputGrad.Address, ch, oc, n, true, false, ch, oc, oc, 1f, 1f);
            }
        }

        if (!biasGrad.IsEmpty)
        {
            ColumnSum(biasGrad.Address, outputGrad.Address, n, oc);
        }
    }

    /// <summary>
    /// Row-major C[m,n] = α·op(A)·op(B) + β·C with leading dimensions (row lengths) lda, ldb, ldc. cuBLAS is column-major,
    /// where a row-major matrix reads as its transpose, so it is asked for Cᵀ = op(B)ᵀ·op(A)ᵀ: B first, then A.
    /// </summary>
    internal void Gemm(
        nint c, nint a, nint b, long m, long n, long k, bool transposeA, bool transposeB, long lda, long ldb, long ldc, float alpha, float beta)
    {
        if (m == 0 || n == 0)
        {
            return;
        }

        if (k == 0)
        {
            // An empty sum: C = β·C, which cuBLAS would reject for its zero leading dimensions.
            var view = new Tensor(new BorrowedBuffer(Device, c, m * ldc * sizeof(float)), 0, new Shape(m * ldc), DType.F32);
            if (beta == 0f)
            {
                ZeroCore(view);
            }
            else if (beta != 1f)
            {
                ScaleCore(view, beta);
            }

            return;
        }

        MakeCurrent();
        api.Gemm(new BlasGemm(
            transposeB, transposeA, checked((int)n), checked((int)m), checked((int)k), alpha,
            b, checked((int)ldb), 0, a, checked((int)lda), 0, beta, c, checked((int)ldc), 0, 1, Strided: false, options.AllowTf32));
    }

    /// <summary>
    /// <paramref name="count"/> independent row-major products C_i = α·op(A_i)·op(B_i) + β·C_i, the operands of product i at
    /// element offsets i·stride (one <c>cublasGemmStridedBatchedEx</c> call).
    /// </summary>
    public void BatchedGemm(
        Tensor c, Tensor a, Tensor b, int count, long m, long n, long k, bool transposeA, bool transposeB, float alpha = 1f, float beta = 0f)
    {
        long aSize = m * k, bSize = k * n, cSize = m * n;
        if (a.ElementCount < count * aSize || b.ElementCount < count * bSize || c.ElementCount < count * cSize)
        {
            throw new ArgumentException($"batched gemm of {count} × [{m},{k}]·[{k},{n}] does not fit {a}, {b}, {c}");
        }

        if (count == 0 || m == 0 || n == 0 || k == 0)
        {
            return;
        }

        long lda = transposeA ? m : k, ldb = transposeB ? k : n;
        MakeCurrent();
        api.Gemm(new BlasGemm(
            transposeB, transposeA, checked((int)n), checked((int)m), checked((int)k), alpha,
            b.Address, checked((int)ldb), bSize, a.Address, checked((int)lda), aSize, beta, c.Address, checked((int)n), cSize, count, Strided: true,
            options.AllowTf32));
    }

    /// <summary>
    /// Row segments of a deterministic column reduction over [rows, columns]: about 64 rows each, fewer segments when the
    /// partial sums would pass <see cref="MaxPartialFloats"/>. Depends only on the shape.
    /// </summary>
    internal static (int Segments, int RowsPerSegment) Segments(long rows, long columns)
    {
        // gridDim.y (the segment index) is limited to 65535.
        long maxSegments = Math.Clamp(MaxPartialFloats / Math.Max(1, columns), 1, 65535);
        long segments = Math.Min((rows + 63) / 64, maxSegments);
        segments = Math.Max(1, segments);
        long perSegment = (rows + segments - 1) / segments;
        segments = (rows + perSegment - 1) / perSegment;
        return (checked((int)segments), checked((int)perSegment));
    }

    /// <summary>grad[c] += Σ_rows x[row, c] in two deterministic passes (segment partials, then a fold in segment order).</summary>
    private void ColumnSum(nint grad, nint x, long rows, long columns)
    {
        if (rows == 0 || columns == 0)
        {
            return;
        }

        var (segments, perSegment) = Segments(rows, columns);
        nint partials = Scratch((long)segments * columns * sizeof(float));
        int c = checked((int)columns);
        Launch(
            Kernels.ColumnPartials,
            new Dim3(Dim3.Blocks(columns, 32), (uint)segments),
            new Dim3(32, 8),
            0,
            KernelArg.Pointer(partials),
            KernelArg.Pointer(x),
            checked((int)rows),
            c,
            perSegment);
        Fold(grad, partials, segments, columns);
    }

    /// <summary>grad[c] += Σ_s partials[s, c], s ascending.</summary>
    private void Fold(nint grad, nint partials, int segments, long columns) =>
        Launch(Kernels.ColumnFold, new Dim3(Dim3.Blocks(columns, ElementThreads)), new Dim3(ElementThreads), 0,
            KernelArg.Pointer(grad), KernelArg.Pointer(partials), segments, checked((int)columns));
}
