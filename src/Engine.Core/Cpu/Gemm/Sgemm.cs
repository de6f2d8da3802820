using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics.X86;

namespace Engine.Core.Cpu.Gemm;

/// <summary>Which microkernel family a GEMM runs (the best one the CPU has unless a test asks for another).</summary>
internal enum GemmIsa
{
    /// <summary>128-bit SIMD, 4×8 tiles, multiply then add.</summary>
    Portable,
    /// <summary>AVX2 + FMA, 6×16 tiles.</summary>
    Avx2,
    /// <summary>AVX-512F, 12×32 tiles.</summary>
    Avx512,
}

/// <summary>What a kernel does with C after accumulating α·A·B for one K block.</summary>
internal enum EpilogueMode
{
    /// <summary>C = α·acc (C is not read).</summary>
    Overwrite,
    /// <summary>C = α·acc + β·C.</summary>
    Accumulate,
    /// <summary>C = α·acc + bias[j] (C is not read).</summary>
    Bias,
}

/// <summary>The write-back of one tile: mode, α, β and the bias pointer already offset to the tile's first column.</summary>
internal readonly unsafe struct Epilogue(EpilogueMode mode, float alpha, float beta, float* bias)
{
    /// <summary>What to do with the old C.</summary>
    public readonly EpilogueMode Mode = mode;

    /// <summary>Scale of the product.</summary>
    public readonly float Alpha = alpha;

    /// <summary>Scale of the old C in <see cref="EpilogueMode.Accumulate"/>.</summary>
    public readonly float Beta = beta;

    /// <summary>Bias of the tile's first column in <see cref="EpilogueMode.Bias"/>.</summary>
    public readonly float* Bias = bias;
}

/// <summary>
/// One GEMM call, C[M,N] = α·op(A)·op(B) + β·C with row-major operands and leading dimensions in elements.
/// When <see cref="Bias"/> is set it replaces the β·C term: C = α·op(A)·op(B) + 1·biasᵀ (C is not read).
/// </summary>
internal unsafe struct GemmOperands
{
    /// <summary>A: [M,K], or [K,M] when <see cref="TransposeA"/>.</summary>
    public float* A;

    /// <summary>Row stride of A.</summary>
    public nint Lda;

    /// <summary>Whether A is stored transposed.</summary>
    public bool TransposeA;

    /// <summary>B: [K,N], or [N,K] when <see cref="TransposeB"/>.</summary>
    public float* B;

    /// <summary>Row stride of B.</summary>
    public nint Ldb;

    /// <summary>Whether B is stored transposed.</summary>
    public bool TransposeB;

    /// <summary>C: [M,N].</summary>
    public float* C;

    /// <summary>Row stride of C.</summary>
    public nint Ldc;

    /// <summary>Rows of C.</summary>
    public int M;

    /// <summary>Columns of C.</summary>
    public int N;

    /// <summary>Inner dimension.</summary>
    public int K;

    /// <summary>α.</summary>
    public float Alpha;

    /// <summary>β (ignored when <see cref="Bias"/> is set).</summary>
    public float Beta;

    /// <summary>Optional bias[N] added to every row instead of β·C.</summary>
    public float* Bias;
}

/// <summary>
/// Our SGEMM, blocked the BLIS way. K is cut into near-equal blocks of at most <see cref="KcMax"/> that depend only on K,
/// and every C element sums its blocks in increasing order, each block once by one FMA chain in a microkernel; so the
/// result is the same bits whatever the thread count or the tiling of C into work items.
/// <para>Per call: op(A) is packed once into MR-row panels (shared scratch, in parallel), then work items, each a block
/// of MR-row panels × a strip of at most <see cref="NcMax"/> columns, pack their K×strip slice of op(B) into per-thread
/// scratch (L2-sized) and run the microkernel over it, A panel outer (it stays in L1) and B panel inner (streamed from L2).
/// Scratch is kept between calls: no allocation in steady state.</para>
/// </summary>
internal static unsafe class Sgemm
{
    /// <summary>Largest K block: a 12×256 A panel (12 KiB) stays in L1 while 32-column B panels (32 KiB) stream past.</summary>
    internal const int KcMax = 256;

    /// <summary>Widest column strip: a 256×512 packed B block is 512 KiB, half of the 1 MiB L2.</summary>
    internal const int NcMax = 512;

    /// <summary>Floats of packed A held at once (32 MiB); bigger A is done in row/K chunks of this size.</summary>
    internal const long PackedACapacity = 8L << 20;

    /// <summary>Work below this many flops per item is not worth a hand-off to another thread.</summary>
    private const long MinItemFlops = 4L << 20;

    private static AlignedScratch? sharedPackedA;

    [ThreadStatic]
    private static AlignedScratch? threadPackedB;

    /// <summary>The best kernel family this CPU runs.</summary>
    internal static GemmIsa BestIsa { get; } =
        Avx512F.IsSupported ? GemmIsa.Avx512 : Avx2.IsSupported && Fma.IsSupported ? GemmIsa.Avx2 : GemmIsa.Portable;

    /// <summary>Whether <paramref name="isa"/> runs on this CPU.</summary>
    internal static bool IsSupported(GemmIsa isa) => isa <= BestIsa;

    /// <summary>Rows per microkernel tile.</summary>
    internal static int Mr(GemmIsa isa) => isa switch { GemmIsa.Avx512 => 12, GemmIsa.Avx2 => 6, _ => 4 };

    /// <summary>Columns per microkernel tile.</summary>
    internal static int Nr(GemmIsa isa) => isa switch { GemmIsa.Avx512 => 32, GemmIsa.Avx2 => 16, _ => 8 };

    /// <summary>Computes the product described by <paramref name="g"/> on <paramref name="pool"/> with the best kernels.</summary>
    internal static void Run(WorkerPool pool, in GemmOperands g) => Run(pool, in g, BestIsa);

    /// <summary>Computes the product described by <paramref name="g"/> on <paramref name="pool"/> with <paramref name="isa"/>.</summary>
    internal static void Run(WorkerPool pool, in GemmOperands g, GemmIsa isa)
    {
        if (!IsSupported(isa))
        {
            throw new PlatformNotSupportedException($"{isa} GEMM kernels need instructions this CPU lacks");
        }

        if (g.M == 0 || g.N == 0)
        {
            return;
        }

        if (g.K == 0)
        {
            ScaleOnly(in g);
            return;
        }

        var s = new State { G = g, Isa = isa, Mr = Mr(isa), Nr = Nr(isa) };
        s.KBlocks = (g.K + KcMax - 1) / KcMax;
        int panelsM = (g.M + s.Mr - 1) / s.Mr;
        int panelsN = (g.N + s.Nr - 1) / s.Nr;
        s.PanelsN = panelsN;

        // Chunking keeps packed A under its capacity: whole K blocks per chunk, and row chunks only when even one
        // K block of all rows is too big (a vocabulary-sized M).
        long panelFloatsPerBlock = (long)s.Mr * KcMax;
        int panelsPerChunk = (int)Math.Clamp(PackedACapacity / panelFloatsPerBlock, 1, panelsM);
        int blocksPerChunk = (int)Math.Clamp(PackedACapacity / (panelFloatsPerBlock * panelsPerChunk), 1, s.KBlocks);

        var scratch = Interlocked.Exchange(ref sharedPackedA, null) ?? new AlignedScratch();
        try
        {
            scratch.Ensure((long)Math.Min(panelsPerChunk, panelsM) * s.Mr * Math.Min(g.K, (long)blocksPerChunk * KcMax));
            s.PackedA = scratch.Pointer;
            for (int p0 = 0; p0 < panelsM; p0 += panelsPerChunk)
            {
                s.Panel0 = p0;
                s.PanelCount = Math.Min(panelsPerChunk, panelsM - p0);
                PlanItems(ref s, pool.ThreadCount);
                for (int kb0 = 0; kb0 < s.KBlocks; kb0 += blocksPerChunk)
                {
                    s.Kb0 = kb0;
                    s.Kb1 = Math.Min(s.KBlocks, kb0 + blocksPerChunk);
                    s.KStart = BlockStart(s.Kb0, g.K, s.KBlocks);
                    s.KLength = BlockStart(s.Kb1, g.K, s.KBlocks) - s.KStart;
                    s.PackPanelsPerItem = Math.Max(1, (int)Math.Min(s.PanelCount, (64L << 10) / ((long)s.Mr * s.KLength)));
                    pool.For((s.PanelCount + s.PackPanelsPerItem - 1) / s.PackPanelsPerItem, ref s, &PackAItem);
                    pool.For(s.RowGroups * s.Strips, ref s, &ComputeItem);
                }
            }
        }
        finally
        {
            Volatile.Write(ref sharedPackedA, scratch);
        }
    }

    /// <summary>Start of K block <paramref name="b"/> of <paramref name="blocks"/> near-equal blocks of [0, K).</summary>
    private static int BlockStart(int b, int k, int blocks) => (int)((long)b * k / blocks);

    /// <summary>
    /// Cuts the chunk's C into items: strips as wide as <see cref="NcMax"/>, halved (then row groups added) until there are
    /// about four items per thread, but never items below <see cref="MinItemFlops"/>. Small M therefore splits along N.
    /// </summary>
    private static void PlanItems(ref State s, int threads)
    {
        long flops = 2L * Math.Min(s.G.M, s.PanelCount * s.Mr) * s.G.N * s.G.K;
        int target = (int)Math.Clamp(flops / MinItemFlops, 1, threads == 1 ? 1 : 4 * threads);
        int stripPanels = Math.Min(s.PanelsN, NcMax / s.Nr);
        int strips = (s.PanelsN + stripPanels - 1) / stripPanels;
        while (strips < target && stripPanels > 1)
        {
            stripPanels = (stripPanels + 1) / 2;
            strips = (s.PanelsN + stripPanels - 1) / stripPanels;
        }

        int groups = Math.Clamp((target + strips - 1) / strips, 1, s.PanelCount);
        s.StripPanels = stripPanels;
        s.Strips = strips;
        s.GroupPanels = (s.PanelCount + groups - 1) / groups;
        s.RowGroups = (s.PanelCount + s.GroupPanels - 1) / s.GroupPanels;
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void PackAItem(ref State s, int item)
    {
        ref readonly var g = ref s.G;
        int first = item * s.PackPanelsPerItem;
        int last = Math.Min(s.PanelCount, first + s.PackPanelsPerItem);
        for (int p = first; p < last; p++)
        {
            int row = (s.Panel0 + p) * s.Mr;
            int rows = Math.Min(s.Mr, g.M - row);
            float* dst = s.PackedA + ((long)p * s.Mr * s.KLength);
            if (g.TransposeA)
            {
                Packing.PackContiguousLanes(g.A + (s.KStart * g.Lda) + row, g.Lda, rows, s.Mr, s.KLength, dst);
            }
            else
            {
                Packing.PackStridedLanes(g.A + (row * g.Lda) + s.KStart, g.Lda, rows, s.Mr, s.KLength, dst);
            }
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void ComputeItem(ref State s, int item)
    {
        ref readonly var g = ref s.G;
        int group = item / s.Strips, strip = item % s.Strips;
        int p0 = group * s.GroupPanels, p1 = Math.Min(s.PanelCount, p0 + s.GroupPanels);
        int q0 = strip * s.StripPanels, q1 = Math.Min(s.PanelsN, q0 + s.StripPanels);
        int mr = s.Mr, nr = s.Nr;

        var scratch = threadPackedB ??= new AlignedScratch();
        scratch.Ensure((long)KcMax * NcMax);
        float* packedB = scratch.Pointer;
        float* edge = stackalloc float[12 * 32];

        for (int kb = s.Kb0; kb < s.Kb1; kb++)
        {
            int k0 = BlockStart(kb, g.K, s.KBlocks);
            int kc = BlockStart(kb + 1, g.K, s.KBlocks) - k0;
            for (int q = q0; q < q1; q++)
            {
                int col = q * nr;
                float* dst = packedB + ((long)(q - q0) * nr * kc);
                if (g.TransposeB)
                {
                    Packing.PackStridedLanes(g.B + (col * g.Ldb) + k0, g.Ldb, Math.Min(nr, g.N - col), nr, kc, dst);
                }
                else
                {
                    Packing.PackContiguousLanes(g.B + (k0 * g.Ldb) + col, g.Ldb, Math.Min(nr, g.N - col), nr, kc, dst);
                }
            }

            // The first K block applies the caller's β (or bias); later blocks add onto the partial sums already in C.
            bool firstBlock = kb == 0;
            EpilogueMode mode = !firstBlock ? EpilogueMode.Accumulate
                : g.Bias != null ? EpilogueMode.Bias
                : g.Beta == 0f ? EpilogueMode.Overwrite
                : EpilogueMode.Accumulate;
            float beta = firstBlock ? g.Beta : 1f;

            for (int p = p0; p < p1; p++)
            {
                int row = (s.Panel0 + p) * mr;
                int rows = Math.Min(mr, g.M - row);
                float* a = s.PackedA + ((long)p * mr * s.KLength) + ((long)(k0 - s.KStart) * mr);
                float* c = g.C + (row * g.Ldc);
                for (int q = q0; q < q1; q++)
                {
                    int col = q * nr;
                    int cols = Math.Min(nr, g.N - col);
                    float* b = packedB + ((long)(q - q0) * nr * kc);
                    float* bias = mode == EpilogueMode.Bias ? g.Bias + col : null;
                    var epilogue = new Epilogue(mode, g.Alpha, beta, bias);
                    if (cols == nr)
                    {
                        Kernel(s.Isa, rows, kc, a, b, c + col, g.Ldc, in epilogue);
                    }
                    else
                    {
                        var plain = new Epilogue(EpilogueMode.Overwrite, 1f, 0f, null);
                        Kernel(s.Isa, rows, kc, a, b, edge, nr, in plain);
                        MergeEdge(s.Isa, edge, nr, c + col, g.Ldc, rows, cols, in epilogue);
                    }
                }
            }
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Kernel(GemmIsa isa, int rows, int kc, float* a, float* b, float* c, nint ldc, in Epilogue e)
    {
        if (isa == GemmIsa.Avx512)
        {
            Microkernels.RunAvx512(rows, kc, a, b, c, ldc, in e);
        }
        else if (isa == GemmIsa.Avx2)
        {
            Microkernels.RunAvx2(rows, kc, a, b, c, ldc, in e);
        }
        else
        {
            Microkernels.RunPortable(rows, kc, a, b, c, ldc, in e);
        }
    }

    /// <summary>Writes the valid part of an edge tile computed into scratch, with the same epilogue arithmetic as the kernels.</summary>
    private static void MergeEdge(GemmIsa isa, float* tile, int ldt, float* c, nint ldc, int rows, int cols, in Epilogue e)
    {
        bool fused = isa != GemmIsa.Portable;
        for (int i = 0; i < rows; i++)
        {
            for (int j = 0; j < cols; j++)
            {
                float r = e.Alpha * tile[(i * ldt) + j];
                float* cij = c + (i * ldc) + j;
                r = e.Mode switch
                {
                    EpilogueMode.Accumulate => fused ? MathF.FusedMultiplyAdd(*cij, e.Beta, r) : r + (*cij * e.Beta),
                    EpilogueMode.Bias => r + e.Bias[j],
                    _ => r,
                };
                *cij = r;
            }
        }
    }

    /// <summary>K = 0: the product is empty, so C = β·C (or the bias, or zero with β = 0 without reading C).</summary>
    private static void ScaleOnly(in GemmOperands g)
    {
        for (int i = 0; i < g.M; i++)
        {
            var row = new Span<float>(g.C + (i * g.Ldc), g.N);
            if (g.Bias != null)
            {
                new ReadOnlySpan<float>(g.Bias, g.N).CopyTo(row);
            }
            else if (g.Beta == 0f)
            {
                row.Clear();
            }
            else
            {
                System.Numerics.Tensors.TensorPrimitives.Multiply(row, g.Beta, row);
            }
        }
    }

    private struct State
    {
        public GemmOperands G;
        public GemmIsa Isa;
        public int Mr;
        public int Nr;
        public int KBlocks;
        public int PanelsN;
        public float* PackedA;
        public int Panel0;
        public int PanelCount;
        public int Kb0;
        public int Kb1;
        public int KStart;
        public int KLength;
        public int PackPanelsPerItem;
        public int RowGroups;
        public int GroupPanels;
        public int Strips;
        public int StripPanels;
    }
}

/// <summary>A grow-only, 64-byte aligned float buffer on the pinned heap, kept for reuse (freed with its owner).</summary>
internal sealed unsafe class AlignedScratch
{
    private float[]? array;

    /// <summary>Aligned start of the buffer.</summary>
    public float* Pointer { get; private set; }

    /// <summary>Usable floats from <see cref="Pointer"/>.</summary>
    public long Capacity { get; private set; }

    /// <summary>Makes room for at least <paramref name="floats"/> floats (contents are not kept when it grows).</summary>
    public void Ensure(long floats)
    {
        if (floats <= Capacity)
        {
            return;
        }

        array = GC.AllocateUninitializedArray<float>(checked((int)(floats + 16)), pinned: true);
        nint start = (nint)Unsafe.AsPointer(ref MemoryMarshal.GetArrayDataReference(array));
        Pointer = (float*)((start + 63) & ~(nint)63);
        Capacity = floats;
    }
}
