using Engine.Core.Cpu;
using Engine.Core.Cpu.Gemm;
using Engine.Core.Tensors;
using Engine.Tests.Support;
using Xunit;

namespace Engine.Tests.Cpu;

public sealed unsafe class GemmTests : IDisposable
{
    private static readonly int[] Dims = [0, 1, 2, 3, 7, 16, 17, 31, 33, 64, 65, 100, 129];

    private readonly CpuBackend backend = new(2);

    public void Dispose() => backend.Dispose();

    public static TheoryData<int, bool, bool> IsasAndTransposes()
    {
        var data = new TheoryData<int, bool, bool>();
        foreach (var isa in new[] { GemmIsa.Portable, GemmIsa.Avx2, GemmIsa.Avx512 })
        {
            foreach (bool ta in new[] { false, true })
            {
                foreach (bool tb in new[] { false, true })
                {
                    data.Add((int)isa, ta, tb);
                }
            }
        }

        return data;
    }

    /// <summary>C = α·op(A)·op(B) + β·C in double by the triple loop.</summary>
    internal static float[] Reference(float[] a, float[] b, float[] c0, int m, int n, int k, bool ta, bool tb, float alpha, float beta)
    {
        var c = new float[m * n];
        for (int i = 0; i < m; i++)
        {
            for (int j = 0; j < n; j++)
            {
                double sum = 0;
                for (int p = 0; p < k; p++)
                {
                    double av = ta ? a[(p * m) + i] : a[(i * k) + p];
                    double bv = tb ? b[(j * k) + p] : b[(p * n) + j];
                    sum += av * bv;
                }

                double old = beta == 0f ? 0 : beta * (double)c0[(i * n) + j];
                c[(i * n) + j] = (float)((alpha * sum) + old);
            }
        }

        return c;
    }

    /// <summary>Runs our GEMM on host arrays with one kernel family and returns C.</summary>
    internal static float[] Ours(
        WorkerPool pool, GemmIsa isa, float[] a, float[] b, float[] c0, int m, int n, int k, bool ta, bool tb, float alpha, float beta)
    {
        var c = (float[])c0.Clone();
        fixed (float* pa = a, pb = b, pc = c)
        {
            var g = new GemmOperands
            {
                A = pa, Lda = ta ? m : k, TransposeA = ta,
                B = pb, Ldb = tb ? k : n, TransposeB = tb,
                C = pc, Ldc = n, M = m, N = n, K = k, Alpha = alpha, Beta = beta,
            };
            Sgemm.Run(pool, in g, isa);
        }

        return c;
    }

    private void Check(GemmIsa isa, int m, int n, int k, bool ta, bool tb, float alpha, float beta, int seed)
    {
        var a = TestData.Uniform(seed, m * k);
        var b = TestData.Uniform(seed + 1, k * n);
        var c0 = TestData.Uniform(seed + 2, m * n);
        var expected = Reference(a, b, c0, m, n, k, ta, tb, alpha, beta);
        var actual = Ours(backend.Pool, isa, a, b, c0, m, n, k, ta, tb, alpha, beta);
        float tol = 2e-6f * (k + 4);
        Approx.Equal(expected, actual, atol: tol, rtol: 1e-5f, what: $"{isa} {m}x{n}x{k} tA={ta} tB={tb} α={alpha} β={beta}");
    }

    [Theory]
    [MemberData(nameof(IsasAndTransposes))]
    public void Matches_the_triple_loop_over_a_sparse_cross_of_sizes(int isaIndex, bool ta, bool tb)
    {
        var isa = (GemmIsa)isaIndex;
        if (!Sgemm.IsSupported(isa))
        {
            return;
        }

        for (int i = 0; i < Dims.Length; i++)
        {
            for (int j = 0; j < Dims.Length; j++)
            {
                int k = Dims[((i * 5) + (j * 3) + (ta ? 1 : 0) + (tb ? 2 : 0)) % Dims.Length];
                Check(isa, Dims[i], Dims[j], k, ta, tb, 1f, 0f, (i * 100) + j);
            }
        }
    }

    [Theory]
    [MemberData(nameof(IsasAndTransposes))]
    public void Alpha_and_beta_variants_and_multi_block_shapes(int isaIndex, bool ta, bool tb)
    {
        var isa = (GemmIsa)isaIndex;
        if (!Sgemm.IsSupported(isa))
        {
            return;
        }

        foreach (var (alpha, beta) in new[] { (1f, 1f), (0.5f, 0f), (-2f, 0.25f), (0f, 3f) })
        {
            Check(isa, 33, 65, 17, ta, tb, alpha, beta, 7);
        }

        // Several K blocks (K > 256), more than one 512-column strip, several row panels and ragged edges everywhere.
        Check(isa, 70, 530, 600, ta, tb, 1f, 1f, 11);
        Check(isa, 129, 7, 1000, ta, tb, 0.75f, -1f, 12);

        // Long thin products with little work: still cut into strips the per-thread scratch can hold.
        Check(isa, 1, 2000, 300, ta, tb, 1f, 0f, 13);
        Check(isa, 2000, 2, 300, ta, tb, 1f, 0f, 14);
    }

    [Fact]
    public void Model_shapes_match_the_reference()
    {
        Check(Sgemm.BestIsa, 64, 768, 256, false, true, 1f, 0f, 21);
        Check(Sgemm.BestIsa, 64, 256, 768, false, false, 1f, 1f, 22);
        Check(Sgemm.BestIsa, 256, 96, 64, true, false, 1f, 1f, 23);
    }

    [Theory]
    [InlineData(false, false)]
    [InlineData(true, true)]
    public void K_zero_scales_C_and_beta_zero_never_reads_C(bool ta, bool tb)
    {
        foreach (var isa in new[] { GemmIsa.Portable, Sgemm.BestIsa })
        {
            var garbage = Enumerable.Repeat(float.NaN, 5 * 7).ToArray();
            var zeroed = Ours(backend.Pool, isa, [], [], garbage, 5, 7, 0, ta, tb, 1f, 0f);
            Approx.BitEqual(new float[35], zeroed, "K=0, β=0");

            var c0 = TestData.Uniform(3, 35);
            var scaled = Ours(backend.Pool, isa, [], [], c0, 5, 7, 0, ta, tb, 1f, 0.5f);
            Approx.Equal(c0.Select(x => x * 0.5f).ToArray(), scaled, what: "K=0, β=0.5");

            // β = 0 with K > 0: NaN in C must not leak through 0·NaN.
            var a = TestData.Uniform(4, 5 * 9);
            var b = TestData.Uniform(5, 9 * 7);
            var result = Ours(backend.Pool, isa, a, b, garbage, 5, 7, 9, ta, tb, 1f, 0f);
            Approx.Equal(Reference(a, b, garbage, 5, 7, 9, ta, tb, 1f, 0f), result, what: $"{isa} β=0 over NaN");
        }
    }

    [Theory]
    [InlineData(false, false)]
    [InlineData(true, true)]
    public void Operands_larger_than_the_pack_scratch_are_done_in_chunks(bool ta, bool tb)
    {
        // A scratch of three 32-wide panels of one K block: the shared operand is chunked by panels (A when M ≤ N, B
        // otherwise) and by K blocks, with ragged edges in every direction.
        long capacity = 3L * 32 * Sgemm.KcMax;
        foreach (var (m, n, k) in new[] { (130, 200, 600), (200, 130, 600), (5, 100, 5000), (100, 7, 3000) })
        {
            var a = TestData.Uniform(m + k, m * k);
            var b = TestData.Uniform(n + k, k * n);
            var c0 = TestData.Uniform(m + n, m * n);
            var c = (float[])c0.Clone();
            fixed (float* pa = a, pb = b, pc = c)
            {
                var g = new GemmOperands
                {
                    A = pa, Lda = ta ? m : k, TransposeA = ta,
                    B = pb, Ldb = tb ? k : n, TransposeB = tb,
                    C = pc, Ldc = n, M = m, N = n, K = k, Alpha = 1f, Beta = 0.5f,
                };
                Sgemm.Run(backend.Pool, in g, Sgemm.BestIsa, capacity);
            }

            Approx.Equal(Reference(a, b, c0, m, n, k, ta, tb, 1f, 0.5f), c, atol: 2e-6f * (k + 4), rtol: 1e-5f, what: $"{m}x{n}x{k} chunked");
        }

        // The default capacity's K chunking, reached with a thin A.
        Check(Sgemm.BestIsa, 3, 5, (int)(Sgemm.PackCapacity / Sgemm.Mr(Sgemm.BestIsa)) + 1000, ta, tb, 1f, 0.5f, 31);
    }

    [Theory]
    [InlineData(false, true)]
    [InlineData(true, false)]
    [InlineData(false, false)]
    public void Results_are_bitwise_identical_for_1_2_and_3_threads(bool ta, bool tb)
    {
        const int m = 203, n = 530, k = 700;
        var a = TestData.Uniform(41, m * k);
        var b = TestData.Uniform(42, k * n);
        var c0 = TestData.Uniform(43, m * n);
        float[]? first = null;
        foreach (var cpu in TestData.ThreadVariants())
        {
            using (cpu)
            {
                var ta1 = TestData.Upload(cpu, a, ta ? [k, m] : [m, k]);
                var tb1 = TestData.Upload(cpu, b, tb ? [n, k] : [k, n]);
                var tc = TestData.Upload(cpu, c0, m, n);
                cpu.Gemm(tc, ta1, tb1, ta, tb, 1f, 1f);
                var c = TestData.Download(cpu, tc);
                if (first is null)
                {
                    first = c;
                    Approx.Equal(Reference(a, b, c0, m, n, k, ta, tb, 1f, 1f), c, atol: 2e-3f, what: "1 thread vs reference");
                }
                else
                {
                    Approx.BitEqual(first, c, $"{cpu.ThreadCount} threads vs 1");
                }
            }
        }
    }

    [Fact]
    public void Backend_gemm_validates_and_runs_through_the_public_contract()
    {
        var a = TestData.Uniform(51, 4 * 6);
        var b = TestData.Uniform(52, 6 * 5);
        var ta = TestData.Upload(backend, a, 4, 6);
        var tb = TestData.Upload(backend, b, 6, 5);
        var tc = backend.AllocateTensor(DType.F32, 4, 5);
        backend.Gemm(tc, ta, tb, false, false);
        Approx.Equal(Reference(a, b, new float[20], 4, 5, 6, false, false, 1f, 0f), TestData.Download(backend, tc));
        Assert.Throws<ArgumentException>(() => backend.Gemm(tc, ta, tb, true, false));
    }
}
