using System.Diagnostics;
using System.Globalization;
using Engine.Core.Cpu;
using Engine.Core.Numerics;
using Engine.Models;
using Engine.Training;
using Engine.Training.Data;
using Engine.Training.Options;

namespace Engine.Benchmarks;

/// <summary>
/// The SFT trainer's step against the bare training step of the runtime on the same shapes:
/// <c>dotnet run -c Release --project bench/Engine.Benchmarks -- sft-overhead [threads] [steps] [rounds]</c>
/// (defaults: all cores, 8, 3). GPT-2 L=4, C=256, V=8192, B=4, T=128. The bare step is
/// <c>ZeroGradients + ForwardBackward + OptimizerStep</c> on fixed tokens; the trainer step is one step of
/// <see cref="LanguageModelTrainers.Sft"/> with packing (so every batch is [4,128]), timed between its progress reports
/// (batch collation, weights, metrics and logging included; the final checkpoint excluded). Rounds alternate the two so
/// load from other processes falls on both; medians of per-step times are compared.
/// </summary>
internal static class SftOverheadProbe
{
    private const int Batch = 4;
    private const int Time = 128;
    private const int Vocab = 8192;

    public static void Run(string[] args)
    {
        int Arg(int i, int fallback) => args.Length > i ? int.Parse(args[i], CultureInfo.InvariantCulture) : fallback;
        int threads = Arg(0, 0), steps = Arg(1, 8), rounds = Arg(2, 3);
        using var backend = new CpuBackend(threads);
        var config = TransformerConfig.Gpt2(vocabSize: Vocab, maxSequenceLength: Time, layers: 4, channels: 256, heads: 4);
        Console.WriteLine($"{backend.Description}; GPT-2 L=4 C=256 V={Vocab} B={Batch} T={Time}; {steps} steps x {rounds} rounds, 1 warm-up step each");

        var bare = new List<(double Wall, double Cpu)>();
        var sft = new List<(double Wall, double Cpu)>();
        string output = Directory.CreateTempSubdirectory("engine-sft-probe-").FullName;
        try
        {
            for (int r = 0; r < rounds; r++)
            {
                bare.AddRange(BareSteps(backend, config, steps));
                sft.AddRange(TrainerSteps(backend, config, steps, Path.Combine(output, $"round{r}")));
            }
        }
        finally
        {
            Directory.Delete(output, recursive: true);
        }

        foreach (var (name, pick) in new (string, Func<(double Wall, double Cpu), double>)[] { ("wall", x => x.Wall), ("process CPU", x => x.Cpu) })
        {
            var b = bare.Select(pick).ToList();
            var t = sft.Select(pick).ToList();
            Console.WriteLine($"{name,-12} bare    median {Median(b):F1} ms (min {b.Min():F1}, max {b.Max():F1}, n={b.Count})");
            Console.WriteLine($"{name,-12} trainer median {Median(t):F1} ms (min {t.Min():F1}, max {t.Max():F1}, n={t.Count})");
            Console.WriteLine($"{name,-12} trainer / bare: median {Median(t) / Median(b):F3}, min {t.Min() / b.Min():F3}");
        }
    }

    private static List<(double Wall, double Cpu)> BareSteps(CpuBackend backend, TransformerConfig config, int steps)
    {
        using var model = new Transformer(config, backend);
        model.InitializeWeights(1);
        var rng = new RandomStream(2);
        var tokens = new int[Batch * Time];
        var targets = new int[Batch * Time];
        for (int i = 0; i < tokens.Length; i++)
        {
            tokens[i] = rng.NextInt(Vocab);
            targets[i] = rng.NextInt(Vocab);
        }

        var settings = new AdamWSettings();
        var times = new List<(double, double)>();
        for (int s = 0; s <= steps; s++)
        {
            long t0 = Stopwatch.GetTimestamp();
            var cpu0 = Process.GetCurrentProcess().TotalProcessorTime;
            model.ZeroGradients();
            model.ForwardBackward(tokens, targets, Batch, Time);
            model.OptimizerStep(1e-4f, s + 1, settings);
            if (s > 0)
            {
                times.Add((Stopwatch.GetElapsedTime(t0).TotalMilliseconds, (Process.GetCurrentProcess().TotalProcessorTime - cpu0).TotalMilliseconds));
            }
        }

        return times;
    }

    private static List<(double Wall, double Cpu)> TrainerSteps(CpuBackend backend, TransformerConfig config, int steps, string output)
    {
        using var model = new Transformer(config, backend);
        model.InitializeWeights(1);

        // Words of 1-3 token ids each; completions trained, prompts masked, as in real SFT data.
        var rng = new RandomStream(3);
        var encoder = new FuncTextEncoder(
            text => [.. text.Split(' ', StringSplitOptions.RemoveEmptyEntries).Select(w => 2 + (int)((uint)w.GetHashCode(StringComparison.Ordinal) % (Vocab - 2)))],
            bosTokenId: null, eosTokenId: 1);
        string Words(int n) => string.Join(" ", Enumerable.Range(0, n).Select(_ => "w" + rng.NextInt(5000).ToString(CultureInfo.InvariantCulture)));
        var examples = Enumerable.Range(0, 40 * (steps + 1))
            .Select(_ => (Example)new PromptCompletionExample(TextOrChat.FromText(Words(10 + rng.NextInt(20))), TextOrChat.FromText(" " + Words(10 + rng.NextInt(30)))))
            .ToList();
        var options = new SftOptions
        {
            MaxSteps = steps + 1, BatchSize = Batch, MaxLength = Time, Packing = true, LogInterval = 1, CheckpointInterval = 0,
            OutputDirectory = output, LearningRate = 1e-4,
        };
        var trainer = LanguageModelTrainers.Sft(model, encoder, examples, null, options);
        var times = new List<(double, double)>();
        long last = 0;
        var lastCpu = TimeSpan.Zero;
        trainer.Run(new Reporter(p =>
        {
            long now = Stopwatch.GetTimestamp();
            var cpu = Process.GetCurrentProcess().TotalProcessorTime;
            if (p.Step > 1)
            {
                times.Add((Stopwatch.GetElapsedTime(last, now).TotalMilliseconds, (cpu - lastCpu).TotalMilliseconds));
            }

            last = now;
            lastCpu = cpu;
        }));
        return times;
    }

    private static double Median(List<double> values)
    {
        var sorted = values.Order().ToList();
        return sorted.Count % 2 == 1 ? sorted[sorted.Count / 2] : 0.5 * (sorted[(sorted.Count / 2) - 1] + sorted[sorted.Count / 2]);
    }

    private sealed class Reporter(Action<TrainingProgress> report) : IProgress<TrainingProgress>
    {
        public void Report(TrainingProgress value) => report(value);
    }
}
