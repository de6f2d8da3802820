using Engine.Core.Cpu;
using Engine.Core.Tensors;
using Engine.Cuda.Runtime;

namespace Engine.Cuda.Emulation;

/// <summary>
/// cuBLAS's fp32 GEMMs on the CPU backend's GEMM, with cuBLAS's column-major semantics: a column-major matrix with
/// leading dimension ld is, in memory, the row-major transpose with row stride ld, so C = op(A)·op(B) is computed as the
/// row-major Cᵀ = op(B)ᵀ·op(A)ᵀ. Operands whose ld is wider than their rows are gathered into contiguous scratch (and C
/// scattered back). TF32 is not modelled: products are full fp32.
/// </summary>
internal sealed unsafe class CpuBlas : IDisposable
{
    private readonly CpuBackend cpu = new(1);

    /// <summary>Runs <paramref name="g"/> (every product of a batch in turn).</summary>
    public void Gemm(in BlasGemm g)
    {
        if (g.M == 0 || g.N == 0)
        {
            return;
        }

        for (int i = 0; i < g.Batch; i++)
        {
            long offset = i * sizeof(float);
            // Row-major views: A stored M×K (or K×M transposed) column-major is [K,M] (or [M,K]) row-major, etc.
            using var a = Operand(g.A + (nint)(offset * g.StrideA), g.TransposeA ? g.M : g.K, g.TransposeA ? g.K : g.M, g.Lda);
            using var b = Operand(g.B + (nint)(offset * g.StrideB), g.TransposeB ? g.K : g.N, g.TransposeB ? g.N : g.K, g.Ldb);
            using var c = Operand(g.C + (nint)(offset * g.StrideC), g.N, g.M, g.Ldc);
            cpu.Gemm(c.Tensor, b.Tensor, a.Tensor, g.TransposeB, g.TransposeA, g.Alpha, g.Beta);
            c.WriteBack();
        }
    }

    /// <inheritdoc/>
    public void Dispose() => cpu.Dispose();

    private static RowMajor Operand(nint address, long rows, long columns, long stride) => new(address, rows, columns, stride);

    /// <summary>A row-major [rows, columns] matrix with row stride <c>stride</c>, as a contiguous tensor (a copy when strided).</summary>
    private readonly struct RowMajor : IDisposable
    {
        private readonly nint address;
        private readonly long stride;
        private readonly float[]? copy;
        private readonly System.Runtime.InteropServices.GCHandle pin;

        public RowMajor(nint address, long rows, long columns, long stride)
        {
            this.address = address;
            this.stride = stride;
            nint data = address;
            if (stride != columns && rows > 0)
            {
                copy = new float[rows * columns];
                pin = System.Runtime.InteropServices.GCHandle.Alloc(copy, System.Runtime.InteropServices.GCHandleType.Pinned);
                data = pin.AddrOfPinnedObject();
                for (long r = 0; r < rows; r++)
                {
                    new ReadOnlySpan<float>((float*)address + (r * stride), (int)columns).CopyTo(copy.AsSpan((int)(r * columns), (int)columns));
                }
            }

            Tensor = new Tensor(new BorrowedBuffer(Device.Cpu, data, rows * columns * sizeof(float)), 0, new Shape(rows, columns), DType.F32);
        }

        public Tensor Tensor { get; }

        /// <summary>Scatters a strided copy back to its rows.</summary>
        public void WriteBack()
        {
            if (copy is null)
            {
                return;
            }

            long rows = Tensor.Shape[0], columns = Tensor.Shape[1];
            for (long r = 0; r < rows; r++)
            {
                copy.AsSpan((int)(r * columns), (int)columns).CopyTo(new Span<float>((float*)address + (r * stride), (int)columns));
            }
        }

        public void Dispose()
        {
            if (pin.IsAllocated)
            {
                pin.Free();
            }
        }
    }
}
