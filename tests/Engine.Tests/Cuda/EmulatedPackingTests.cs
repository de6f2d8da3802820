using Engine.Cuda;
using Engine.Tests.Models;
using Xunit;

namespace Engine.Tests.Cuda;

/// <summary>Padding-free packing on the CUDA backend (emulated device): packed rows train as their documents one by one.</summary>
[Trait("Category", "CudaEmulated")]
public class EmulatedPackingTests
{
    [EmulatorTheory]
    [InlineData("gpt2")]
    [InlineData("llama")]
    public void A_packed_batch_has_the_loss_and_gradients_of_its_documents_run_one_by_one(string arch)
    {
        using var cuda = CudaBackend.CreateEmulated();
        PackedParity.Check(cuda, arch);
    }
}
