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
/// <para>Per call: op(A) is packed into MR-row panels and op(B) into NR-column panels (shared scratch, in parallel, each
/// element once), then work items, each a tile of C of at most <see cref="TileRows"/>×<see cref="TileCols"/>, run the
/// microkernel over every K block, A panel outer (12×256 stays in L1) and B panel inner (the tile's B block stays in L2).
/// Operands too big for the scratch are done in K, row and column chunks. Scratch is kept between calls: no
/// allocation in steady state.</para>
/// </summary>
internal static unsafe class Sgemm
{
    /// <summary>Largest K block: a 12×256 A panel (12 KiB) stays in L1 while 32-column B panels (32 KiB) stream past.</summary>
    internal const int KcMax = 192;

    /// <summary>Most rows of C in one work item.</summary>
    internal const int TileRows = 240;

    /// <summary>Most columns of C in one work item: its 256×512 block of packed B is 512 KiB, half of the 1 MiB L2.</summary>
    internal const int TileCols = 512;

    /// <summary>Floats of packed A (and, separately, of packed B) held at once (16 MiB each); more is done in chunks.</summary>
    internal const long PackCapacity = 4L << 20;

    /// <summary>Work below this many flops per item is not worth a hand-off to another thread.</summary>
    private const long MinItemFlops = 2L << 20;

    /// <summary>Floats packed per packing work item.</summary>
    private const long PackItemFloats = 64L << 10;

    private static PackScratch? sharedScratch;

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

        // Chunks: as many whole K blocks as both packed operands hold; when one K block of all rows (a vocabulary-sized
        // M) or all columns does not fit, rows or columns are chunked too.
        int panelsPerChunkM = (int)Math.Clamp(PackCapacity / ((long)s.Mr * KcMax), 1, panelsM);
        int panelsPerChunkN = (int)Math.Clamp(PackCapacity / ((long)s.Nr * KcMax), 1, panelsN);
        long widest = Math.Max((long)panelsPerChunkM * s.Mr, (long)panelsPerChunkN * s.Nr);
        int blocksPerChunk = (int)Math.Clamp(PackCapacity / (widest * KcMax), 1, s.KBlocks);
        long kSpan = Math.Min(g.K, (long)blocksPerChunk * KcMax);

        var scratch = Interlocked.Exchange(ref sharedScratch, null) ?? new PackScratch();
        try
        {
            scratch.A.Ensure((long)panelsPerChunkM * s.Mr * kSpan);
            scratch.B.Ensure((long)panelsPerChunkN * s.Nr * kSpan);
            s.PackedA = scratch.A.Pointer;
            s.PackedB = scratch.B.Pointer;
            for (int kb0 = 0; kb0 < s.KBlocks; kb0 += blocksPerChunk)
            {
                s.Kb0 = kb0;
                s.Kb1 = Math.Min(s.KBlocks, kb0 + blocksPerChunk);
                s.KStart = BlockStart(s.Kb0, g.K, s.KBlocks);
                s.KLength = BlockStart(s.Kb1, g.K, s.KBlocks) - s.KStart;
                for (int pm = 0; pm < panelsM; pm += panelsPerChunkM)
                {
                    s.PanelM0 = pm;
                    s.PanelCountM = Math.Min(panelsPerChunkM, panelsM - pm);
                    for (int pn = 0; pn < panelsN; pn += panelsPerChunkN)
                    {
                        s.PanelN0 = pn;
                        s.PanelCountN = Math.Min(panelsPerChunkN, panelsN - pn);

                        // A is packed with the first column chunk and reused by the others.
                        int blocks = s.Kb1 - s.Kb0;
                        s.PackGroupsA = PackGroups(s.PanelCountM, s.Mr, out s.PackPanelsPerItemA);
                        s.PackGroupsB = PackGroups(s.PanelCountN, s.Nr, out s.PackPanelsPerItemB);
                        s.PackItemsA = pn == 0 ? blocks * s.PackGroupsA : 0;
                        pool.For(s.PackItemsA + (blocks * s.PackGroupsB), ref s, &PackItem);

                        PlanTiles(ref s, pool.ThreadCount);
                        pool.For(s.TilesM * s.TilesN, ref s, &ComputeItem);
                    }
                }
            }
        }
        finally
        {
            Volatile.Write(ref sharedScratch, scratch);
        }
    }

    /// <summary>Start of K block <paramref name="b"/> of <paramref name="blocks"/> near-equal blocks of [0, K).</summary>
    private static int BlockStart(int b, int k, int blocks) => (int)((long)b * k / blocks);

    private static int PackGroups(int panels, int width, out int panelsPerItem)
    {
        panelsPerItem = (int)Math.Clamp(PackItemFloats / ((long)width * KcMax), 1, panels);
        return (panels + panelsPerItem - 1) / panelsPerItem;
    }

    /// <summary>
    /// Cuts the chunk's C into tiles of at most <see cref="TileRows"/>×<see cref="TileCols"/>, then halves the longer side
    /// until there are about four tiles per thread (never below <see cref="MinItemFlops"/> of work), so a small M is split
    /// along N and a small N along M. Tiles never change a result, only who computes it.
    /// </summary>
    private static void PlanTiles(ref State s, int threads)
    {
        long flops = 2L * Math.Min(s.G.M, s.PanelCountM * s.Mr) * Math.Min(s.G.N, s.PanelCountN * s.Nr) * s.KLength;
        int target = (int)Math.Clamp(flops / MinItemFlops, 1, threads == 1 ? 1 : 4 * threads);
        int rows = Math.Min(s.PanelCountM, Math.Max(1, TileRows / s.Mr));
        int cols = Math.Min(s.PanelCountN, TileCols / s.Nr);
        while (Ceil(s.PanelCountM, rows) * Ceil(s.PanelCountN, cols) < target && (rows > 1 || cols > 1))
        {
            if ((long)rows * s.Mr >= (long)cols * s.Nr && rows > 1)
            {
                rows = Ceil(rows, 2);
            }
            else if (cols > 1)
            {
                cols = Ceil(cols, 2);
            }
            else
            {
                rows = Ceil(rows, 2);
            }
        }

        // Same count, even sizes: 22 panels in two tiles are 11 + 11, not 20 + 2.
        s.TilesM = Ceil(s.PanelCountM, rows);
        s.TilesN = Ceil(s.PanelCountN, cols);
        s.TilePanelsM = Ceil(s.PanelCountM, s.TilesM);
        s.TilePanelsN = Ceil(s.PanelCountN, s.TilesN);
        s.TilesM = Ceil(s.PanelCountM, s.TilePanelsM);
        s.TilesN = Ceil(s.PanelCountN, s.TilePanelsN);
    }

    private static int Ceil(int a, int b) => (a + b - 1) / b;

    /// <summary>
    /// Packs one K block of one group of panels of A or B. Within a chunk, packed operands are K-block-major: block kb
    /// starts at (k0 − KStart)·panels·width, so the panels a tile needs for one K block lie side by side.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void PackItem(ref State s, int item)
    {
        ref readonly var g = ref s.G;
        bool isA = item < s.PackItemsA;
        int local = isA ? item : item - s.PackItemsA;
        int groups = isA ? s.PackGroupsA : s.PackGroupsB;
        int perItem = isA ? s.PackPanelsPerItemA : s.PackPanelsPerItemB;
        int kb = s.Kb0 + (local / groups);
        int first = (local % groups) * perItem;
        int k0 = BlockStart(kb, g.K, s.KBlocks);
        int kc = BlockStart(kb + 1, g.K, s.KBlocks) - k0;
        if (isA)
        {
            int count = Math.Min(perItem, s.PanelCountM - first);
            int row = (s.PanelM0 + first) * s.Mr;
            int lanes = Math.Min(g.M - row, count * s.Mr);
            float* dst = s.PackedA + ((long)(k0 - s.KStart) * s.PanelCountM * s.Mr) + ((long)first * s.Mr * kc);
            if (g.TransposeA)
            {
                Packing.PackContiguousLanes(g.A + (k0 * g.Lda) + row, g.Lda, lanes, s.Mr, count, kc, dst);
            }
            else
            {
                Packing.PackStridedLanes(g.A + (row * g.Lda) + k0, g.Lda, lanes, s.Mr, count, kc, dst);
            }
        }
        else
        {
            int count = Math.Min(perItem, s.PanelCountN - first);
            int col = (s.PanelN0 + first) * s.Nr;
            int lanes = Math.Min(g.N - col, count * s.Nr);
            float* dst = s.PackedB + ((long)(k0 - s.KStart) * s.PanelCountN * s.Nr) + ((long)first * s.Nr * kc);
            if (g.TransposeB)
            {
                Packing.PackStridedLanes(g.B + (col * g.Ldb) + k0, g.Ldb, lanes, s.Nr, count, kc, dst);
            }
            else
            {
                Packing.PackContiguousLanes(g.B + (k0 * g.Ldb) + col, g.Ldb, lanes, s.Nr, count, kc, dst);
            }
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void ComputeItem(ref State s, int item)
    {
        ref readonly var g = ref s.G;
        int tm = item / s.TilesN, tn = item % s.TilesN;
        int p0 = tm * s.TilePanelsM, p1 = Math.Min(s.PanelCountM, p0 + s.TilePanelsM);
        int q0 = tn * s.TilePanelsN, q1 = Math.Min(s.PanelCountN, q0 + s.TilePanelsN);
        int mr = s.Mr, nr = s.Nr;
        float* edge = stackalloc float[12 * 32];

        for (int kb = s.Kb0; kb < s.Kb1; kb++)
        {
            int k0 = BlockStart(kb, g.K, s.KBlocks);
            int kc = BlockStart(kb + 1, g.K, s.KBlocks) - k0;
            long kOffset = k0 - s.KStart;
            float* packedA = s.PackedA + (kOffset * s.PanelCountM * mr);
            float* packedB = s.PackedB + (kOffset * s.PanelCountN * nr);

            // The first K block applies the caller's β (or bias); later blocks add onto the partial sums already in C.
            bool firstBlock = kb == 0;
            EpilogueMode mode = !firstBlock ? EpilogueMode.Accumulate
                : g.Bias != null ? EpilogueMode.Bias
                : g.Beta == 0f ? EpilogueMode.Overwrite
                : EpilogueMode.Accumulate;
            float beta = firstBlock ? g.Beta : 1f;

            // B panel outer, so its kc×NR block (32 KiB at most) stays in L1 while the tile's A panels stream from L2.
            for (int q = q0; q < q1; q++)
            {
                int col = (s.PanelN0 + q) * nr;
                int cols = Math.Min(nr, g.N - col);
                float* b = packedB + ((long)q * nr * kc);
                float* bias = mode == EpilogueMode.Bias ? g.Bias + col : null;
                var epilogue = new Epilogue(mode, g.Alpha, beta, bias);
                for (int p = p0; p < p1; p++)
                {
                    int row = (s.PanelM0 + p) * mr;
                    int rows = Math.Min(mr, g.M - row);
                    float* a = packedA + ((long)p * mr * kc);
                    float* c = g.C + (row * g.Ldc) + col;
                    if (cols == nr)
                    {
                        Kernel(s.Isa, rows, kc, a, b, c, g.Ldc, in epilogue);
                    }
                    else
                    {
                        var plain = new Epilogue(EpilogueMode.Overwrite, 1f, 0f, null);
                        Kernel(s.Isa, rows, kc, a, b, edge, nr, in plain);
                        MergeEdge(s.Isa, edge, nr, c, g.Ldc, rows, cols, in epilogue);
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
        public float* PackedA;
        public float* PackedB;
        public int Kb0;
        public int Kb1;
        public int KStart;
        public int KLength;
        public int PanelM0;
        public int PanelCountM;
        public int PanelN0;
        public int PanelCountN;
        public int PackItemsA;
        public int PackGroupsA;
        public int PackGroupsB;
        public int PackPanelsPerItemA;
        public int PackPanelsPerItemB;
        public int TilePanelsM;
        public int TilePanelsN;
        public int TilesM;
        public int TilesN;
    }

    /// <summary>The packed-operand buffers one GEMM call uses; one set is cached for the next call.</summary>
    private sealed class PackScratch
    {
        public AlignedScratch A { get; } = new();

        public AlignedScratch B { get; } = new();
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
