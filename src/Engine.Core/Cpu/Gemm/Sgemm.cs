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
/// <para>The smaller operand (A when M ≤ N, else B) is packed once per call into shared scratch, by whichever strip needs
/// a K block of it first (see <see cref="EnsureSharedBlock"/>). The C is cut
/// into strips along the larger operand: full-height column strips when B is the larger, full-width row strips when A
/// is. A work item owns one strip: per K block it packs its slice of the larger operand into per-thread scratch, which
/// stays in L2, and runs the microkernel over it with B panel outer (reused from L1/L2) and A panel inner. So
/// the big operand (the weights, usually) is read from memory once and never written back packed. Shared operands too
/// big for the scratch are done in K and row/column chunks. Scratch is kept between calls: no allocation in steady
/// state.</para>
/// </summary>
internal static unsafe class Sgemm
{
    /// <summary>
    /// Largest K block. C is read and written once per block, so fewer, longer blocks save C traffic; a 512×32 B panel
    /// (64 KiB) outgrows the 48 KiB L1, but the kernel reads it at ~11 bytes a cycle, far below what L2 delivers (measured:
    /// 512 beat 384 and 256 on the model shapes).
    /// </summary>
    internal const int KcMax = 512;

    /// <summary>Widest column strip: its 512×256 slice of packed B (512 KiB) sits in the 1 MiB L2 beside A's panels.</summary>
    internal const int StripCols = 256;

    /// <summary>Tallest row strip: its 240×512 slice of packed A is 480 KiB of L2.</summary>
    internal const int StripRows = 240;

    /// <summary>Floats of the shared packed operand held at once (16 MiB); a bigger one is done in chunks.</summary>
    internal const long PackCapacity = 4L << 20;

    /// <summary>Work below this many flops per item is not worth a hand-off to another thread.</summary>
    private const long MinItemFlops = 2L << 20;

    /// <summary>Floats packed per packing work item.</summary>
    private const long PackItemFloats = 64L << 10;

    private static SharedScratch? sharedScratch;

    [ThreadStatic]
    private static AlignedScratch? threadScratch;

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

    /// <summary>
    /// Computes the product described by <paramref name="g"/> on <paramref name="pool"/> with <paramref name="isa"/>, holding
    /// at most <paramref name="packCapacity"/> floats of the shared packed operand at once (tests shrink it to reach the
    /// chunked paths with small matrices).
    /// </summary>
    internal static void Run(WorkerPool pool, in GemmOperands g, GemmIsa isa, long packCapacity = PackCapacity)
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

        var s = new State { G = g, Isa = isa, Mr = Mr(isa), Nr = Nr(isa), SharedIsA = g.M <= g.N };
        s.KBlocks = (g.K + KcMax - 1) / KcMax;
        s.PanelsM = (g.M + s.Mr - 1) / s.Mr;
        s.PanelsN = (g.N + s.Nr - 1) / s.Nr;
        int sharedWidth = s.SharedIsA ? s.Mr : s.Nr;
        int sharedPanels = s.SharedIsA ? s.PanelsM : s.PanelsN;

        // Chunks of the shared operand: as many whole K blocks as the scratch holds for all its panels, and when not even
        // one K block fits (a vocabulary-sized dimension), fewer panels per chunk.
        int panelsPerChunk = (int)Math.Clamp(packCapacity / ((long)sharedWidth * KcMax), 1, sharedPanels);
        int blocksPerChunk = (int)Math.Clamp(packCapacity / ((long)panelsPerChunk * sharedWidth * KcMax), 1, s.KBlocks);

        var scratch = Interlocked.Exchange(ref sharedScratch, null) ?? new SharedScratch();
        try
        {
            scratch.Packed.Ensure((long)panelsPerChunk * sharedWidth * Math.Min(g.K, (long)blocksPerChunk * KcMax));
            s.Shared = scratch.Packed.Pointer;
            for (int kb0 = 0; kb0 < s.KBlocks; kb0 += blocksPerChunk)
            {
                s.Kb0 = kb0;
                s.Kb1 = Math.Min(s.KBlocks, kb0 + blocksPerChunk);
                s.KStart = BlockStart(s.Kb0, g.K, s.KBlocks);
                for (int p = 0; p < sharedPanels; p += panelsPerChunk)
                {
                    s.SharedFirst = p;
                    s.SharedCount = Math.Min(panelsPerChunk, sharedPanels - p);
                    s.PackGroups = Ceil(s.SharedCount, s.PackPanelsPerItem = PackPanelsPerItem(sharedWidth, s.SharedCount));
                    s.PackState = scratch.ClearedFlags((s.Kb1 - s.Kb0) * s.PackGroups);
                    PlanStrips(ref s, pool.ThreadCount);
                    pool.For(s.Strips, ref s, &StripItem);
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

    private static int Ceil(int a, int b) => (a + b - 1) / b;

    private static int PackPanelsPerItem(int width, int panels) => (int)Math.Clamp(PackItemFloats / ((long)width * KcMax), 1, panels);

    /// <summary>
    /// Cuts the other dimension into strips no wider than <see cref="StripCols"/> (or taller than <see cref="StripRows"/>),
    /// as few as give every thread two of them (so a stalled thread's work can be taken over) in a multiple of the thread
    /// count, but never below <see cref="MinItemFlops"/> of work each. Fewer, wider strips reuse each shared panel more.
    /// </summary>
    private static void PlanStrips(ref State s, int threads)
    {
        int width = s.SharedIsA ? s.Nr : s.Mr;
        int panels = s.SharedIsA ? s.PanelsN : s.PanelsM;
        int sharedRows = Math.Min(s.SharedIsA ? s.G.M : s.G.N, s.SharedCount * (s.SharedIsA ? s.Mr : s.Nr));
        long flops = 2L * sharedRows * (s.SharedIsA ? s.G.N : s.G.M) * (BlockStart(s.Kb1, s.G.K, s.KBlocks) - s.KStart);
        int maxPanels = Math.Max(1, (s.SharedIsA ? StripCols : StripRows) / width);
        int fewest = Ceil(panels, maxPanels);
        int strips = threads > 1 ? Ceil(Math.Max(fewest, 2 * threads), threads) * threads : fewest;

        // Small work gives up the extra strips, never the bound on a strip's size (the per-thread scratch holds one).
        strips = (int)Math.Clamp(Math.Min(strips, flops / MinItemFlops), fewest, panels);
        s.StripPanels = Ceil(panels, strips);
        s.Strips = Ceil(panels, s.StripPanels);
    }

    /// <summary>
    /// Makes sure K block <paramref name="kb"/> of the shared operand is packed, without a separate packing phase: the
    /// strips that reach a block first claim its panel groups one by one and pack them (flag 0 → 1 → 2), then every strip
    /// waits until all groups of the block are done. Packing thus overlaps other strips' compute and costs no barrier.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void EnsureSharedBlock(ref State s, int kb, int k0, int kc)
    {
        int* flags = s.PackState + ((kb - s.Kb0) * s.PackGroups);
        int width = s.SharedIsA ? s.Mr : s.Nr;
        for (int group = 0; group < s.PackGroups; group++)
        {
            if (Volatile.Read(ref flags[group]) == 0 && Interlocked.CompareExchange(ref flags[group], 1, 0) == 0)
            {
                int first = group * s.PackPanelsPerItem;
                int count = Math.Min(s.PackPanelsPerItem, s.SharedCount - first);
                float* dst = SharedBlock(ref s, k0) + ((long)first * width * kc);
                PackPanels(in s.G, s.SharedIsA, s.SharedFirst + first, count, width, k0, kc, dst);
                Volatile.Write(ref flags[group], 2);
            }
        }

        // The wait is for another thread's packing of one panel group: microseconds. SpinWait's default falls back to
        // Thread.Sleep(1) after a few dozen spins, and a sleep of a millisecond or more (longer in a VM) then stalls the
        // whole product: on 2 threads the narrow GEMMs of a small model ran 2-6x slower than on one thread. So it spins
        // and yields, never sleeps.
        for (int group = 0; group < s.PackGroups; group++)
        {
            var spin = default(SpinWait);
            while (Volatile.Read(ref flags[group]) != 2)
            {
                spin.SpinOnce(sleep1Threshold: -1);
            }
        }
    }

    /// <summary>
    /// The shared operand's K block starting at <paramref name="k0"/>: packed K-block-major, so the chunk's panels for one
    /// block lie side by side (panel i at i·width·kc).
    /// </summary>
    private static float* SharedBlock(ref State s, int k0) =>
        s.Shared + ((long)(k0 - s.KStart) * s.SharedCount * (s.SharedIsA ? s.Mr : s.Nr));

    /// <summary>Packs panels [first, first+count) of op(A) (MR rows each) or op(B) (NR columns each) for K block [k0, k0+kc).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void PackPanels(in GemmOperands g, bool isA, int first, int count, int width, int k0, int kc, float* dst)
    {
        int start = first * width;
        if (isA)
        {
            int lanes = Math.Min(g.M - start, count * width);
            if (g.TransposeA)
            {
                Packing.PackContiguousLanes(g.A + (k0 * g.Lda) + start, g.Lda, lanes, width, count, kc, dst);
            }
            else
            {
                Packing.PackStridedLanes(g.A + (start * g.Lda) + k0, g.Lda, lanes, width, count, kc, dst);
            }
        }
        else
        {
            int lanes = Math.Min(g.N - start, count * width);
            if (g.TransposeB)
            {
                Packing.PackStridedLanes(g.B + (start * g.Ldb) + k0, g.Ldb, lanes, width, count, kc, dst);
            }
            else
            {
                Packing.PackContiguousLanes(g.B + (k0 * g.Ldb) + start, g.Ldb, lanes, width, count, kc, dst);
            }
        }
    }

    /// <summary>One strip of C against the current chunk of the shared operand, every K block of the chunk in order.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void StripItem(ref State s, int item)
    {
        ref readonly var g = ref s.G;
        int mr = s.Mr, nr = s.Nr;
        int ownWidth = s.SharedIsA ? nr : mr;
        int ownPanels = s.SharedIsA ? s.PanelsN : s.PanelsM;
        int own0 = item * s.StripPanels;
        int ownCount = Math.Min(s.StripPanels, ownPanels - own0);

        // Panel ranges in matrix terms: rows [p0, p1) of A panels and columns [q0, q1) of B panels.
        int p0 = s.SharedIsA ? s.SharedFirst : own0, p1 = s.SharedIsA ? s.SharedFirst + s.SharedCount : own0 + ownCount;
        int q0 = s.SharedIsA ? own0 : s.SharedFirst, q1 = s.SharedIsA ? own0 + ownCount : s.SharedFirst + s.SharedCount;

        var scratch = threadScratch ??= new AlignedScratch();
        scratch.Ensure((long)KcMax * Math.Max(StripCols, StripRows + mr));
        float* own = scratch.Pointer;
        float* edge = stackalloc float[12 * 32];

        for (int kb = s.Kb0; kb < s.Kb1; kb++)
        {
            int k0 = BlockStart(kb, g.K, s.KBlocks);
            int kc = BlockStart(kb + 1, g.K, s.KBlocks) - k0;
            PackPanels(in g, !s.SharedIsA, own0, ownCount, ownWidth, k0, kc, own);
            EnsureSharedBlock(ref s, kb, k0, kc);
            float* shared = SharedBlock(ref s, k0);
            float* packedA = s.SharedIsA ? shared : own;
            float* packedB = s.SharedIsA ? own : shared;

            // The first K block applies the caller's β (or bias); later blocks add onto the partial sums already in C.
            bool firstBlock = kb == 0;
            EpilogueMode mode = !firstBlock ? EpilogueMode.Accumulate
                : g.Bias != null ? EpilogueMode.Bias
                : g.Beta == 0f ? EpilogueMode.Overwrite
                : EpilogueMode.Accumulate;
            float beta = firstBlock ? g.Beta : 1f;

            // B panel outer: its kc×NR block is reused by every A panel of the strip straight from L1/L2.
            for (int q = q0; q < q1; q++)
            {
                int col = q * nr;
                int cols = Math.Min(nr, g.N - col);
                float* b = packedB + ((long)(q - q0) * nr * kc);
                float* bias = mode == EpilogueMode.Bias ? g.Bias + col : null;
                var epilogue = new Epilogue(mode, g.Alpha, beta, bias);
                for (int p = p0; p < p1; p++)
                {
                    int row = p * mr;
                    int rows = Math.Min(mr, g.M - row);
                    float* a = packedA + ((long)(p - p0) * mr * kc);
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
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
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
        public bool SharedIsA;
        public int KBlocks;
        public int PanelsM;
        public int PanelsN;
        public float* Shared;
        public int Kb0;
        public int Kb1;
        public int KStart;
        public int SharedFirst;
        public int SharedCount;
        public int PackGroups;
        public int PackPanelsPerItem;
        public int* PackState;
        public int Strips;
        public int StripPanels;
    }
}

/// <summary>The shared packed operand of one GEMM call and the pack flags of its panel groups; one is cached for the next call.</summary>
internal sealed unsafe class SharedScratch
{
    private int[]? flags;

    /// <summary>The packed operand.</summary>
    public AlignedScratch Packed { get; } = new();

    /// <summary><paramref name="count"/> zeroed flags on the pinned heap.</summary>
    public int* ClearedFlags(int count)
    {
        if (flags is null || flags.Length < count)
        {
            flags = GC.AllocateArray<int>(Math.Max(count, 64), pinned: true);
        }

        Array.Clear(flags, 0, count);
        return (int*)Unsafe.AsPointer(ref MemoryMarshal.GetArrayDataReference(flags));
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
