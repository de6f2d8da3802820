using Engine.Cuda;
using Engine.Tests.Models;
using Engine.Tests.Objectives;
using Xunit;
using Xunit.Abstractions;

namespace Engine.Tests.Cuda;

/// <summary>
/// The PyTorch fixtures (GPT-2 and Llama: logits, loss, every gradient, ten AdamW steps; DPO and reward-model steps) on
/// the emulated CUDA device, with the same checks and tolerances as on the CPU and on a GPU.
/// </summary>
[Trait("Category", "CudaEmulated")]
public class EmulatedPyTorchParityTests(ITestOutputHelper output)
{
    public static TheoryData<string> Fixtures => PyTorchParityTests.Fixtures;

    public static TheoryData<string> DpoCases => ObjectiveParityTests.DpoCases;

    public static TheoryData<string> RewardCases => ObjectiveParityTests.RewardCases;

    [EmulatorTheory]
    [MemberData(nameof(Fixtures))]
    public void Logits_loss_and_every_gradient_match_on_the_emulated_device(string name)
    {
        using var backend = CudaBackend.CreateEmulated();
        PyTorchParityTests.LogitsLossAndGradients(name, backend, output);
    }

    [EmulatorTheory]
    [MemberData(nameof(Fixtures))]
    public void Ten_AdamW_steps_follow_the_PyTorch_trajectory_on_the_emulated_device(string name)
    {
        using var backend = CudaBackend.CreateEmulated();
        PyTorchParityTests.TenAdamWSteps(name, backend, output);
    }

    [EmulatorTheory]
    [MemberData(nameof(DpoCases))]
    public void Dpo_loss_metrics_and_every_gradient_match_on_the_emulated_device(string name)
    {
        using var backend = CudaBackend.CreateEmulated();
        ObjectiveParityTests.Dpo(name, backend, output);
    }

    [EmulatorTheory]
    [MemberData(nameof(RewardCases))]
    public void Reward_model_loss_metrics_and_every_gradient_match_on_the_emulated_device(string name)
    {
        using var backend = CudaBackend.CreateEmulated();
        ObjectiveParityTests.RewardModel(name, backend, output);
    }
}
