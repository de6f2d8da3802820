using BenchmarkDotNet.Running;

namespace Engine.Benchmarks;

/// <summary>Runs the BenchmarkDotNet suites; pass <c>--filter *Gemm*</c> and the like to choose.</summary>
public static class Program
{
    public static void Main(string[] args) => BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args);
}
