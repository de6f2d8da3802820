using Engine.Core.Cpu;
using Engine.Models;
using Engine.Tests.Support;
using Engine.Training.Data;
using Engine.Training.Objectives;
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
    public void The_sft_objective_gives_a_packed_batch_the_loss_of_its_documents_padded_one_per_row()
    {
        using var backend = new CpuBackend(2);
        using var model = new Transformer(PackedParity.Config("llama"), backend);
        model.InitializeWeights(2);
        var encoder = new FuncTextEncoder(text => [.. text.Select(c => c % 40)], eosTokenId: 47);
        var collator = new SequenceCollator(encoder, new CollatorOptions { MaxLength = PackedParity.Time, Packing = true });
        string[] texts = ["a packed row holds", "several documents", "x", "and none of them sees the others at all"];
        var sequences = texts.Select(t => collator.Tokenize(new TextExample(t))).ToList();
        var packed = Assert.Single(collator.Pack(sequences, rows: 2));
        Assert.True(packed.IsPacked);
        var padded = collator.Collate(sequences);
        var objective = new LanguageModelObjective(model);

        model.ZeroGradients();
        double packedLoss = objective.Step(packed, 1f).Loss;
        var packedGradients = TestData.Download(backend, model.Parameters.Gradients);
        model.ZeroGradients();
        double paddedLoss = objective.Step(padded, 1f).Loss;
        Assert.Equal(paddedLoss, packedLoss, 1e-5 * paddedLoss);
        Approx.RelativeNorm(TestData.Download(backend, model.Parameters.Gradients), packedGradients, 1e-5, "gradients");
        Assert.Equal(paddedLoss, objective.Evaluate(packed).Loss, 1e-5 * paddedLoss);
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
