using Engine.Cuda;
using Engine.Tests.Objectives;
using Engine.Tests.Support;
using Xunit;
using Xunit.Abstractions;

namespace Engine.Tests.Cuda;

/// <summary>The PyTorch objective fixture (DPO and reward-model steps) on the CUDA backend: the same checks and tolerances as the CPU's.</summary>
[Trait("Category", "CudaConformance")]
public class CudaObjectiveParityTests(ITestOutputHelper output)
{
    public static TheoryData<string> DpoCases => ObjectiveParityTests.DpoCases;

    public static TheoryData<string> RewardCases => ObjectiveParityTests.RewardCases;

    [CudaTheory]
    [MemberData(nameof(DpoCases))]
    public void Dpo_loss_metrics_and_every_gradient_match_on_cuda(string name)
    {
        using var backend = CudaBackend.Create();
        ObjectiveParityTests.Dpo(name, backend, output);
    }

    [CudaTheory]
    [MemberData(nameof(RewardCases))]
    public void Reward_model_loss_metrics_and_every_gradient_match_on_cuda(string name)
    {
        using var backend = CudaBackend.Create();
        ObjectiveParityTests.RewardModel(name, backend, output);
    }
}
