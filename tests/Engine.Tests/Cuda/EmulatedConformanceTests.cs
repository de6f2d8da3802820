using Engine.Conformance;
using Engine.Core.Cpu;
using Engine.Cuda;
using Xunit;
using Xunit.Abstractions;

namespace Engine.Tests.Cuda;

/// <summary>
/// The conformance suite on the emulated CUDA device: the real <see cref="CudaBackend"/> host code, every kernel of
/// kernels/ compiled for the CPU, against the CPU backend at the GPU tolerances. Runs on every machine with g++.
/// </summary>
[Trait("Category", "CudaEmulated")]
public class EmulatedConformanceTests(ITestOutputHelper output)
{
    public static TheoryData<string> CaseNames => ConformanceTests.CaseNames;

    [EmulatorTheory]
    [MemberData(nameof(CaseNames))]
    public void Emulated_cuda_matches_the_cpu(string name)
    {
        using var cpu = new CpuBackend(2);
        using var cuda = CudaBackend.CreateEmulated();
        output.WriteLine(cuda.Description);
        ConformanceTests.Check(output, name, cpu, cuda);
    }
}
