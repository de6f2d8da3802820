using Engine.Cuda;
using Engine.Tests.Cuda;
using Engine.Tests.Support;
using Xunit;
using Xunit.Abstractions;

namespace Engine.Tests.Objectives.Preference;

/// <summary>The PyTorch preference fixture on the CUDA backend: emulated on every machine with g++, and on a real GPU where there is one.</summary>
public class PreferenceDeviceParityTests(ITestOutputHelper output)
{
    public static TheoryData<string> PairedCases => PreferenceParityTests.PairedCases;

    [EmulatorTheory]
    [Trait("Category", "CudaEmulated")]
    [MemberData(nameof(PairedCases))]
    public void Paired_losses_match_on_the_emulated_device(string name)
    {
        using var backend = CudaBackend.CreateEmulated();
        PreferenceParityTests.Paired(name, backend, output);
    }

    [EmulatorFact]
    [Trait("Category", "CudaEmulated")]
    public void Kto_matches_on_the_emulated_device()
    {
        using var backend = CudaBackend.CreateEmulated();
        PreferenceParityTests.Kto(backend, output);
    }

    [CudaTheory]
    [Trait("Category", "CudaConformance")]
    [MemberData(nameof(PairedCases))]
    public void Paired_losses_match_on_cuda(string name)
    {
        using var backend = CudaBackend.Create();
        PreferenceParityTests.Paired(name, backend, output);
    }

    [CudaFact]
    [Trait("Category", "CudaConformance")]
    public void Kto_matches_on_cuda()
    {
        using var backend = CudaBackend.Create();
        PreferenceParityTests.Kto(backend, output);
    }
}
