using System.Globalization;
using System.Reflection;
using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Columns;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Reports;
using BenchmarkDotNet.Running;
using Engine.Core.Backends;
using Engine.Core.Cpu;
using Engine.Core.Tensors;

namespace Engine.Benchmarks;

/// <summary>
/// The alignment kernels at PPO/DPO batch shapes: B sequences of T = 512 tokens with ragged response masks (about
/// three quarters of each row is response), and B prompts of K = 4 ranked responses (6 pairs each) for the pairwise loss.
/// The GB/s column is the nominal traffic, each tensor read or written once (a gradient that is added to counts twice),
/// over the mean time. The memory diagnoser shows that no call allocates.
/// </summary>
[MemoryDiagnoser]
[Config(typeof(RlKernelBenchmarks.BandwidthConfig))]
public class RlKernelBenchmarks
{
    private const int T = 512;

    private CpuBackend cpu = null!;
    private Tensor rewards, values, mask, advantages, returns, whitened, kl, seqScores, ended;
    private Tensor logp, oldLogp, oldValues, entropy, dlogp, dvalues;
    private Tensor scores, chosen, rejected, weights, margins, dscores;

    /// <summary>Sequences (PPO) or prompts (pairwise loss).</summary>
    [Params(64, 512)]
    public int B { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        cpu = new CpuBackend();
        var rng = new Random(1);
        Tensor Random(float lo, float hi, params long[] dims)
        {
            var t = cpu.AllocateTensor(DType.F32, dims);
            var data = new float[t.ElementCount];
            for (int i = 0; i < data.Length; i++)
            {
                data[i] = lo + ((hi - lo) * (float)rng.NextDouble());
            }

            cpu.CopyFromHost<float>(t, data);
            return t;
        }

        Tensor Ints(int[] data)
        {
            var t = cpu.AllocateTensor(DType.I32, data.Length);
            cpu.CopyFromHost<int>(t, data);
            return t;
        }

        var m = new float[B * T];
        for (int b = 0; b < B; b++)
        {
            int prompt = rng.Next(T / 4), length = (T / 2) + rng.Next(T / 4);
            m.AsSpan((b * T) + prompt, length).Fill(1f);
        }

        mask = cpu.AllocateTensor(DType.F32, B, T);
        cpu.CopyFromHost<float>(mask, m);
        (rewards, values, advantages, returns, whitened, kl) =
            (Random(-1, 1, B, T), Random(-2, 2, B, T), Random(-1, 1, B, T), Random(-1, 1, B, T), Random(-1, 1, B, T), Random(-0.1f, 0.5f, B, T));
        (seqScores, ended) = (Random(-3, 3, B), Ints([.. Enumerable.Range(0, B).Select(i => i % 5 == 0 ? 0 : 1)]));
        // Log-ratios of ±0.3 around old log-probs: with ε = 0.2 a realistic minority of tokens is clipped.
        oldLogp = Random(-6, -0.1f, B, T);
        var old = new float[B * T];
        cpu.CopyToHost<float>(oldLogp, old);
        logp = cpu.AllocateTensor(DType.F32, B, T);
        cpu.CopyFromHost<float>(logp, old.Select(x => x + (0.6f * (float)rng.NextDouble()) - 0.3f).ToArray());
        (oldValues, entropy, dlogp, dvalues) = (Random(-2, 2, B, T), Random(0, 3, B, T), Random(-1, 1, B, T), Random(-1, 1, B, T));

        // B prompts × K = 4 responses, all 6 pairs of each ranking weighted 1/6.
        scores = Random(-3, 3, 4 * B);
        dscores = Random(-1, 1, 4 * B);
        var c = new List<int>();
        var l = new List<int>();
        for (int p = 0; p < B; p++)
        {
            for (int i = 0; i < 4; i++)
            {
                for (int j = i + 1; j < 4; j++)
                {
                    c.Add((4 * p) + i);
                    l.Add((4 * p) + j);
                }
            }
        }

        (chosen, rejected, weights, margins) = (Ints([.. c]), Ints([.. l]), Random(1f / 6, 1f / 6, 6 * B), Random(0, 1, 6 * B));
    }

    [GlobalCleanup]
    public void Cleanup() => cpu.Dispose();

    [Benchmark]
    [Traffic(PerToken = 5 * 4)]
    public void Gae() => cpu.GeneralizedAdvantageEstimation(advantages, returns, rewards, values, mask, 0.99f, 0.95f);

    [Benchmark]
    [Traffic(PerToken = 3 * 4)]
    public MaskedMoments Whiten()
    {
        // Whitening an already whitened tensor keeps it bounded over millions of calls.
        return cpu.MaskedWhiten(whitened, mask);
    }

    [Benchmark]
    [Traffic(PerPrompt = (4 * 4 * 3) + (6 * 4 * 4))]
    public PairwiseLossStatistics PairwiseLoss() =>
        cpu.PairwiseLoss(scores, chosen, rejected, weights, margins, dscores, new PairwiseLossOptions(CenterCoefficient: 0.01f, GradScale: 1e-6f));

    [Benchmark]
    [Traffic(PerToken = 12 * 4)]
    public PpoStatistics PpoLosses() =>
        cpu.PpoLosses(logp, oldLogp, advantages, mask, values, oldValues, returns, entropy, dlogp, dvalues, new PpoLossOptions(0.2f, 0.2f, 1e-6f, 1e-6f));

    [Benchmark]
    [Traffic(PerToken = 3 * 4, PerPrompt = 2 * 4)]
    public KlRewardStatistics KlRewards() => cpu.KlShapedRewards(rewards, kl, mask, seqScores, ended, 0.05f, -1f);

    /// <summary>Nominal bytes one call moves: PerToken·B·T + PerPrompt·B.</summary>
    [AttributeUsage(AttributeTargets.Method)]
    public sealed class TrafficAttribute : Attribute
    {
        /// <summary>Bytes per (b, t) element.</summary>
        public int PerToken { get; set; }

        /// <summary>Bytes per sequence or prompt.</summary>
        public int PerPrompt { get; set; }
    }

    /// <summary>Adds the GB/s column.</summary>
    public sealed class BandwidthConfig : ManualConfig
    {
        public BandwidthConfig() => AddColumn(new RateColumn(
            "GB/s", "Bytes read and written per second (per-token and per-prompt traffic over the mean time)",
            b => b.Descriptor.WorkloadMethod.GetCustomAttribute<TrafficAttribute>() is { } traffic && b.Parameters["B"] is int batch
                ? ((double)traffic.PerToken * batch * T) + ((double)traffic.PerPrompt * batch)
                : null));
    }
}
