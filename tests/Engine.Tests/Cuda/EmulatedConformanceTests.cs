using Engine.Conformance;
using Engine.Core.Cpu;
using Engine.Cuda;
using Engine.Cuda.Emulation;
using Engine.Cuda.Runtime;
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

    /// <summary>
    /// The conformance suite, the small-chunk log-prob cases and the decode path together launch every kernel that
    /// Engine.Cuda declares: a kernel added to kernels/ without a conformance case fails here.
    /// </summary>
    [EmulatorFact]
    public void The_conformance_suite_launches_every_kernel()
    {
        using var cpu = new CpuBackend(2);
        foreach (var options in new[] { new CudaBackendOptions(), new CudaBackendOptions { LogProbRowChunk = 16, LogProbVocabChunk = 96 } })
        {
            using var cuda = CudaBackend.CreateEmulated(options);
            foreach (var name in ConformanceSuite.Cases.Select(c => c.Name))
            {
                ConformanceTests.Check(output, name, cpu, cuda);
            }
        }

        var declared = Kernels.All.Select(k => k.Name).ToList();
        Assert.True(declared.Count > 40, $"only {declared.Count} kernels declared");
        var missing = declared.Except(EmulatedDeviceApi.LaunchedKernels).Order().ToList();
        Assert.True(missing.Count == 0, $"kernels never launched by the conformance suite: {string.Join(", ", missing)}");
    }
}
