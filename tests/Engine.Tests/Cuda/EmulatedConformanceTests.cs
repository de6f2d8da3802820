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

    /// <summary>The log-prob cases with chunks of 16 rows and 96 vocabulary columns: V spans many chunks, every edge is crossed.</summary>
    [EmulatorTheory]
    [InlineData("token_logprobs")]
    [InlineData("token_logprobs_from_logits")]
    public void Emulated_cuda_with_small_log_prob_chunks_matches_the_cpu(string name)
    {
        using var cpu = new CpuBackend(2);
        using var cuda = CudaBackend.CreateEmulated(new CudaBackendOptions { LogProbRowChunk = 16, LogProbVocabChunk = 96 });
        ConformanceTests.Check(output, name, cpu, cuda);
    }
}
