using Engine.Core.Cpu;
using Engine.Core.Tensors;
using Engine.Tests.Reference;
using Engine.Tests.Support;
using Xunit;

namespace Engine.Tests.Cpu;

[Trait("Category", "Kernels")]
public sealed class LossTests : IDisposable
{
    private readonly CpuBackend cpu = new(2);

    public static TheoryData<int, int> Shapes => new() { { 1, 1 }, { 3, 2 }, { 4, 5 }, { 3, 8 }, { 5, 33 }, { 2, 257 }, { 3, 1000 }, { 2, 50257 } };

    public void Dispose() => cpu.Dispose();

    [Theory]
    [MemberData(nameof(Shapes))]
    public void Forward_and_fused_backward_match_log_sum_exp_reference(int n, int v)
    {
        var logits = TestData.Uniform(n + v, n * v, -8f, 8f);
        var targets = TestData.Tokens(n, n, v);
        const float scale = 0.25f;
        var expectedLoss = ScalarKernels.ToFloat(ScalarKernels.CrossEntropy(logits, targets, v));

        var (loss, _) = Run(cpu, logits, targets, n, v, backward: false, scale);
        Approx.Equal(expectedLoss, loss, 1e-5f, 1e-5f, "loss");

        var (fusedLoss, grad) = Run(cpu, logits, targets, n, v, backward: true, scale);
        Approx.Equal(expectedLoss, fusedLoss, 1e-5f, 1e-5f, "fused loss");
        Approx.Equal(ScalarKernels.ToFloat(ScalarKernels.CrossEntropyBackward(logits, targets, v, scale)), grad, 1e-7f, 1e-4f, "dlogits");
    }

    [Fact]
    public void Ignored_rows_have_zero_loss_and_zero_gradient()
    {
        const int n = 4, v = 37;
        var logits = TestData.Uniform(140, n * v, -3f, 3f);
        int[] targets = [5, -1, 36, -100];
        var (loss, grad) = Run(cpu, logits, targets, n, v, backward: true, 1f);
        Assert.Equal(0f, loss[1]);
        Assert.Equal(0f, loss[3]);
        Assert.True(loss[0] > 0 && loss[2] > 0);
        Assert.All(grad.AsSpan(v, v).ToArray(), g => Assert.Equal(0f, g));
        Assert.All(grad.AsSpan(3 * v, v).ToArray(), g => Assert.Equal(0f, g));
        Approx.Equal(ScalarKernels.ToFloat(ScalarKernels.CrossEntropyBackward(logits, targets, v, 1f)), grad, 1e-7f, 1e-4f, "dlogits");
        Assert.Equal(0f, Run(cpu, logits, targets, n, v, backward: false, 1f).Loss[1]);
    }

    [Fact]
    public void Huge_logits_stay_finite()
    {
        const int n = 3, v = 40;
        var logits = TestData.Uniform(150, n * v, -3f, 3f);
        logits[7] = 1e4f;                 // row 0, the target: loss ≈ 0
        logits[v + 3] = 1e4f;             // row 1, not the target: loss ≈ 1e4
        logits[(2 * v) + 1] = -1e4f;      // row 2, the target is hugely negative
        int[] targets = [7, 0, 1];
        var (loss, grad) = Run(cpu, logits, targets, n, v, backward: true, 1f);
        Assert.All(loss, l => Assert.True(float.IsFinite(l)));
        Assert.All(grad, g => Assert.True(float.IsFinite(g)));
        Approx.Equal(ScalarKernels.ToFloat(ScalarKernels.CrossEntropy(logits, targets, v)), loss, 1e-5f, 1e-6f, "loss");
        Approx.Equal(ScalarKernels.ToFloat(ScalarKernels.CrossEntropyBackward(logits, targets, v, 1f)), grad, 1e-7f, 1e-4f, "dlogits");
    }

    [Fact]
    public void Target_outside_the_vocabulary_throws_naming_the_row_and_leaves_logits()
    {
        const int n = 3, v = 10;
        var logits = TestData.Uniform(160, n * v);
        var lt = TestData.Upload(cpu, logits, n, v);
        var losses = cpu.AllocateTensor(DType.F32, n);
        var targets = TestData.Upload(cpu, new[] { 1, 2, 10 }, n);
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => cpu.CrossEntropyForwardBackward(losses, lt, targets, 1f));
        Assert.Contains("row 2", e.Message, StringComparison.Ordinal);
        Approx.BitEqual(logits, TestData.Download(cpu, lt), "logits untouched");
        Assert.Throws<ArgumentOutOfRangeException>(() => cpu.CrossEntropyForward(losses, lt, targets));
    }

    [Fact]
    public void Fused_gradient_matches_finite_differences()
    {
        const int n = 3, v = 13;
        const float scale = 0.5f;
        var logits = TestData.Uniform(170, n * v, -2f, 2f);
        int[] targets = [4, -1, 12];
        var (_, grad) = Run(cpu, logits, targets, n, v, backward: true, scale);
        var numeric = FiniteDifference.Gradient(x => scale * ScalarKernels.CrossEntropy(x, targets, v).Sum(), logits, 1e-3f);
        FiniteDifference.AssertClose(numeric, grad, 1e-4, 1e-3, "dlogits");
    }

    [Fact]
    public void Results_are_bitwise_identical_across_thread_counts()
    {
        const int n = 9, v = 3001;
        var logits = TestData.Uniform(180, n * v, -5f, 5f);
        var targets = TestData.Tokens(181, n, v);
        (float[] Loss, float[] Grad)? first = null;
        foreach (var backend in TestData.ThreadVariants())
        {
            using (backend)
            {
                var now = Run(backend, logits, targets, n, v, backward: true, 1f / n);
                if (first is null)
                {
                    first = now;
                    continue;
                }

                Approx.BitEqual(first.Value.Loss, now.Loss, $"loss on {backend.ThreadCount} threads");
                Approx.BitEqual(first.Value.Grad, now.Grad, $"dlogits on {backend.ThreadCount} threads");
            }
        }
    }

    private static (float[] Loss, float[] Grad) Run(CpuBackend be, float[] logits, int[] targets, int n, int v, bool backward, float scale)
    {
        var lt = TestData.Upload(be, logits, n, v);
        var losses = be.AllocateTensor(DType.F32, n);
        var tt = TestData.Upload(be, targets, n);
        if (backward)
        {
            be.CrossEntropyForwardBackward(losses, lt, tt, scale);
        }
        else
        {
            be.CrossEntropyForward(losses, lt, tt);
        }

        return (TestData.Download(be, losses), TestData.Download(be, lt));
    }
}
