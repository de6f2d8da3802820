using Engine.Cuda;
using Engine.Tests.Models;
using Engine.Tests.Support;
using Xunit;
using Xunit.Abstractions;

namespace Engine.Tests.Cuda;

/// <summary>The PyTorch model fixtures (logits, loss, every gradient, ten AdamW steps) on the CUDA backend: the same checks and tolerances as the CPU's.</summary>
[Trait("Category", "CudaConformance")]
public class CudaPyTorchParityTests(ITestOutputHelper output)
{
    public static TheoryData<string> Fixtures => PyTorchParityTests.Fixtures;

    [CudaTheory]
    [MemberData(nameof(Fixtures))]
    public void Logits_loss_and_every_gradient_match_on_cuda(string name)
    {
        using var backend = CudaBackend.Create();
        output.WriteLine(backend.Description);
        PyTorchParityTests.LogitsLossAndGradients(name, backend, output);
    }

    [CudaTheory]
    [MemberData(nameof(Fixtures))]
    public void Ten_AdamW_steps_follow_the_PyTorch_trajectory_on_cuda(string name)
    {
        using var backend = CudaBackend.Create();
        PyTorchParityTests.TenAdamWSteps(name, backend, output);
    }
}
