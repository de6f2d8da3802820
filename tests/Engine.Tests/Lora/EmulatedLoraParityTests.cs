using Engine.Cuda;
using Engine.Tests.Cuda;
using Xunit;
using Xunit.Abstractions;

namespace Engine.Tests.Lora;

/// <summary>The LoRA PyTorch fixtures on the emulated CUDA device (GEMMs with α/β and the column-block kernel in a model), same tolerances as on the CPU.</summary>
[Trait("Category", "CudaEmulated")]
public class EmulatedLoraParityTests(ITestOutputHelper output)
{
    public static TheoryData<string> Fixtures => LoraParityTests.Fixtures;

    [EmulatorTheory]
    [MemberData(nameof(Fixtures))]
    public void Logits_loss_and_every_adapter_gradient_match_on_the_emulated_device(string name)
    {
        using var backend = CudaBackend.CreateEmulated();
        LoraParityTests.LogitsLossAndGradients(name, backend, output);
    }

    [EmulatorTheory]
    [MemberData(nameof(Fixtures))]
    public void Ten_AdamW_steps_match_on_the_emulated_device(string name)
    {
        using var backend = CudaBackend.CreateEmulated();
        LoraParityTests.TenAdamWSteps(name, backend, output);
    }
}
