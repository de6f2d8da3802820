using BenchmarkDotNet.Running;

namespace Engine.Benchmarks;

/// <summary>
/// Runs the BenchmarkDotNet suites; pass <c>--filter *Gemm*</c> and the like to choose. <c>gemm-probe</c> as the first
/// argument instead prints a quick GFLOP/s table of our GEMM (see <see cref="GemmProbe"/>);
/// <c>tokenizer-probe</c> prints the tokenizer's characters per second (see <see cref="TokenizerProbe"/>),
/// <c>logprob-probe</c> times the fused token log-prob kernel against its three GEMMs (see <see cref="LogProbProbe"/>), and
/// <c>sft-overhead</c> compares the SFT trainer's step with the bare training step (see <see cref="SftOverheadProbe"/>), and
/// <c>generate-probe</c> prints prefill and KV-cached decode tokens per second (see <see cref="GenerateProbe"/>), and
/// <c>preference-probe</c> measures the extra memory of the preference losses' fused path (see <see cref="PreferenceProbe"/>),
/// <c>ppo-probe</c> splits one PPO step of GPT-2 124M-sized models into generation, scoring and training (see <see cref="PpoProbe"/>), and
/// <c>parquet-write</c> / <c>parquet-read</c> measure a large Parquet dataset streaming with bounded memory (see <see cref="ParquetStreamProbe"/>), and
/// <c>grpo-probe</c> splits one GRPO step of the same policy as ppo-probe (see <see cref="GrpoProbe"/>).
/// </summary>
public static class Program
{
    public static void Main(string[] args)
    {
        if (args.Length > 0 && args[0] == "gemm-probe")
        {
            GemmProbe.Run(args[1..]);
            return;
        }

        if (args.Length > 0 && args[0] == "tokenizer-probe")
        {
            TokenizerProbe.Run();
            return;
        }

        if (args.Length > 0 && args[0] == "sft-overhead")
        {
            SftOverheadProbe.Run(args[1..]);
            return;
        }

        if (args.Length > 0 && args[0] == "generate-probe")
        {
            GenerateProbe.Run(args[1..]);
            return;
        }

        if (args.Length > 0 && args[0] == "grpo-probe")
        {
            GrpoProbe.Run(args[1..]);
            return;
        }

        if (args.Length > 0 && args[0] == "ppo-probe")
        {
            PpoProbe.Run(args[1..]);
            return;
        }

        if (args.Length > 0 && args[0] == "preference-probe")
        {
            PreferenceProbe.Run(args[1..]);
            return;
        }

        if (args.Length > 0 && args[0] == "logprob-probe")
        {
            LogProbProbe.Run(args[1..]);
            return;
        }

        if (args.Length > 1 && args[0] == "parquet-write")
        {
            ParquetStreamProbe.Write(args[1..]);
            return;
        }

        if (args.Length > 1 && args[0] == "parquet-read")
        {
            ParquetStreamProbe.Read(args[1..]);
            return;
        }

        BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args);
    }
}
