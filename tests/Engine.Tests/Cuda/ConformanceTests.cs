using Engine.Conformance;
using Engine.Core.Backends;
using Engine.Core.Cpu;
using Engine.Cuda;
using Engine.Tests.Support;
using Xunit;
using Xunit.Abstractions;

namespace Engine.Tests.Cuda;

/// <summary>
/// The conformance suite (tests/Engine.Conformance) per backend: CUDA against the CPU where a GPU is present, and — so
/// the suite itself is exercised on every machine — a 3-thread CPU backend against a 1-thread one.
/// The seed is fresh each run and printed; set ENGINE_CONFORMANCE_SEED to repeat one.
/// </summary>
public class ConformanceTests(ITestOutputHelper output)
{
    public static TheoryData<string> CaseNames => new(ConformanceSuite.Cases.Select(c => c.Name));

    [CudaTheory]
    [Trait("Category", "CudaConformance")]
    [MemberData(nameof(CaseNames))]
    public void Cuda_matches_the_cpu(string name)
    {
        using var cpu = new CpuBackend(2);
        using var cuda = CudaBackend.Create();
        output.WriteLine(cuda.Description);
        Check(output, name, cpu, cuda);
    }

    /// <summary>The log-prob cases again with chunks of 16 rows and 96 vocabulary columns, so every chunk edge is crossed.</summary>
    [CudaTheory]
    [Trait("Category", "CudaConformance")]
    [InlineData("token_logprobs")]
    [InlineData("token_logprobs_from_logits")]
    public void Cuda_with_small_log_prob_chunks_matches_the_cpu(string name)
    {
        using var cpu = new CpuBackend(2);
        using var cuda = CudaBackend.Create(new CudaBackendOptions { LogProbRowChunk = 16, LogProbVocabChunk = 96 });
        Check(output, name, cpu, cuda);
    }

    [Theory]
    [Trait("Category", "Conformance")]
    [MemberData(nameof(CaseNames))]
    public void Cpu_thread_counts_agree(string name)
    {
        using var reference = new CpuBackend(1);
        using var candidate = new CpuBackend(3);
        Check(output, name, reference, candidate);
    }

    /// <summary>Runs case <paramref name="name"/> on the pair and asserts every comparison passed, printing each.</summary>
    internal static void Check(ITestOutputHelper output, string name, Backend reference, Backend candidate)
    {
        int seed = int.TryParse(Environment.GetEnvironmentVariable("ENGINE_CONFORMANCE_SEED"), out int s) ? s : Random.Shared.Next();
        output.WriteLine($"{name}: seed {seed}");
        using var pair = new BackendPair(reference, candidate);
        var results = ConformanceSuite.Get(name).Run(pair, seed);
        foreach (var r in results)
        {
            output.WriteLine(r.ToString());
        }

        Assert.NotEmpty(results);
        Assert.All(results, r => Assert.True(r.Passed, $"{r} (seed {seed})"));
    }
}
