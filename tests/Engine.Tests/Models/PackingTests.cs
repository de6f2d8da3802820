using Engine.Core.Cpu;
using Engine.Models;
using Engine.Tests.Support;
using Xunit;

namespace Engine.Tests.Models;

public class PackingTests
{
    public static TheoryData<string> Architectures => ["gpt2", "llama"];

    [Theory]
    [MemberData(nameof(Architectures))]
    public void A_packed_batch_has_the_loss_and_gradients_of_its_documents_run_one_by_one(string arch)
    {
        using var backend = new CpuBackend(2);
        PackedParity.Check(backend, arch);
    }

    [Theory]
    [MemberData(nameof(Architectures))]
    public void Plain_position_ids_run_the_unpacked_pass_bit_for_bit(string arch)
    {
        using var backend = new CpuBackend(2);
        using var model = new Transformer(PackedParity.Config(arch), backend);
        model.InitializeWeights(1);
        int t = 20, v = model.Config.VocabSize;
        var tokens = TestData.Tokens(1, 2 * t, v);
        var targets = TestData.Tokens(2, 2 * t, v);
        var positions = Enumerable.Range(0, 2 * t).Select(i => i % t).ToArray();
        model.ZeroGradients();
        double plain = model.ForwardBackward(tokens, targets, 2, t);
        var plainGradients = TestData.Download(backend, model.Parameters.Gradients);
        model.ZeroGradients();
        double withIds = model.ForwardBackward(tokens, targets, 2, t, positionIds: positions);
        Assert.Equal(plain, withIds);
        Approx.BitEqual(plainGradients, TestData.Download(backend, model.Parameters.Gradients), "gradients");
    }

    [Fact]
    public void Position_ids_must_restart_at_zero_and_count_up_by_one()
    {
        using var backend = new CpuBackend(1);
        using var model = new Transformer(PackedParity.Config("gpt2"), backend);
        var tokens = new int[8];
        var targets = new int[8];
        var error = Assert.Throws<ArgumentOutOfRangeException>(() => model.ForwardBackward(tokens, targets, 1, 8, positionIds: new[] { 0, 1, 2, 0, 1, 3, 4, 5 }));
        Assert.Contains("position id 3 at row 0, step 5", error.Message, StringComparison.Ordinal);
        Assert.Throws<ArgumentOutOfRangeException>(() => model.Forward(tokens, 1, 8, new[] { 1, 2, 3, 4, 5, 6, 7, 8 }));
        Assert.Throws<ArgumentException>(() => model.Forward(tokens, 1, 8, new[] { 0, 1 }));
    }
}
