using System.Diagnostics;
using Engine.Core.Backends;
using Engine.Core.Numerics;
using Engine.Models;

namespace Engine.Cli.Bench;

/// <summary>Options of <c>engine bench train-step</c>, with their defaults in one place.</summary>
public sealed record TrainStepOptions
{
    /// <summary>gpt2 or llama.</summary>
    public Architecture Architecture { get; init; } = Architecture.Gpt2;

    /// <summary>L.</summary>
    public int Layers { get; init; } = 4;

    /// <summary>C.</summary>
    public int Channels { get; init; } = 256;

    /// <summary>NH.</summary>
    public int Heads { get; init; } = 4;

    /// <summary>NKV (0 = NH).</summary>
    public int KvHeads { get; init; }

    /// <summary>V.</summary>
    public int Vocab { get; init; } = 8192;

    /// <summary>T.</summary>
    public int Sequence { get; init; } = 128;

    /// <summary>B.</summary>
    public int Batch { get; init; } = 4;

    /// <summary>Timed steps.</summary>
    public int Steps { get; init; } = 10;

    /// <summary>Untimed steps first (JIT, caches, page faults).</summary>
    public int Warmup { get; init; } = 2;

    /// <summary>Worker threads (0 = all cores).</summary>
    public int Threads { get; init; }

    /// <summary>LoRA adapters trained over the frozen model instead of every weight; null trains in full.</summary>
    public Engine.Models.Lora.LoraConfig? Lora { get; init; }

    /// <summary>Seed of weights and tokens.</summary>
    public ulong Seed { get; init; } = 1337;

    /// <summary>Activation recomputation (<see cref="Transformer.GradientCheckpointing"/>).</summary>
    public bool GradientCheckpointing { get; init; }

    /// <summary>Largest B·T: the activation layout indexes the N = B·T positions with an int.</summary>
    public const int MaxTokens = 1 << 24;

    /// <summary>The flag that sets a <see cref="TransformerConfig"/> property, for error messages.</summary>
    public static string Flag(string property) => property switch
    {
        nameof(TransformerConfig.VocabSize) => "--vocab",
        nameof(TransformerConfig.MaxSequenceLength) => "--seq",
        nameof(TransformerConfig.Layers) => "--layers",
        nameof(TransformerConfig.Channels) => "--dim",
        nameof(TransformerConfig.Heads) => "--heads",
        nameof(TransformerConfig.KvHeads) => "--kv-heads",
        _ => property,
    };

    /// <summary>The model configuration these options describe.</summary>
    public TransformerConfig ToConfig() => Architecture == Architecture.Gpt2
        ? TransformerConfig.Gpt2(Vocab, Sequence, Layers, Channels, Heads)
        : TransformerConfig.Llama(Vocab, Sequence, Layers, Channels, Heads, KvHeads > 0 ? KvHeads : Heads);
}

/// <summary>What a train-step benchmark measured.</summary>
/// <param name="MillisecondsPerStep">Median wall time of one step (forward, backward, AdamW).</param>
/// <param name="TokensPerSecond">B·T divided by the median step time.</param>
/// <param name="StepMilliseconds">Every timed step.</param>
/// <param name="Losses">Loss of every step, warm-up included (it should fall: the batch repeats).</param>
/// <param name="ParameterCount">Number of trained parameters (the adapters' with LoRA).</param>
/// <param name="OpTable">Per-op times of one profiled step (op, direction, ms, calls).</param>
/// <param name="Backend">Backend description.</param>
/// <param name="ActivationBytes">Bytes of the activation plan the steps ran with.</param>
public sealed record TrainStepResult(
    double MillisecondsPerStep,
    double TokensPerSecond,
    IReadOnlyList<double> StepMilliseconds,
    IReadOnlyList<double> Losses,
    long ParameterCount,
    IReadOnlyList<(OpKind Op, bool Backward, double Milliseconds, long Calls)> OpTable,
    string Backend,
    long ActivationBytes);

/// <summary>Times full training steps of a randomly initialised model on random tokens.</summary>
public static class TrainStepBenchmark
{
    /// <summary>Runs the benchmark; <paramref name="progress"/> receives (step, total, ms) after every step.</summary>
    public static TrainStepResult Run(TrainStepOptions options, Backend backend, Action<int, int, double>? progress = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(backend);
        if (options.Steps < 1 || options.Warmup < 0)
        {
            throw new Engine.Core.InputException($"--steps must be at least 1 and --warmup at least 0, got {options.Steps} and {options.Warmup}");
        }

        var config = options.ToConfig();
        if (config.Fault(TrainStepOptions.Flag) is (string flag, string detail))
        {
            throw new Engine.Core.InputException(flag, null, null, detail);
        }

        if ((long)options.Batch * options.Sequence > TrainStepOptions.MaxTokens || options.Batch < 1)
        {
            throw new Engine.Core.InputException(
                "--batch", null, null, $"must be at least 1, with --batch × --seq at most {TrainStepOptions.MaxTokens:N0}, got {options.Batch} × {options.Sequence}");
        }

        using var model = new Transformer(config, backend, trainable: options.Lora is null);
        model.InitializeWeights(options.Seed);
        if (options.Lora is { } lora)
        {
            model.AddLora(lora, options.Seed);
        }

        model.GradientCheckpointing = options.GradientCheckpointing;
        int b = options.Batch, t = options.Sequence, n = b * t;
        var rng = new RandomStream(options.Seed + 1);
        var stream = new int[n + 1];
        for (int i = 0; i < stream.Length; i++)
        {
            stream[i] = rng.NextInt(config.VocabSize);
        }

        var tokens = stream.AsSpan(0, n).ToArray();
        var targets = stream.AsSpan(1, n).ToArray();
        var settings = new AdamWSettings();
        var losses = new List<double>();
        var times = new List<double>();
        int total = options.Warmup + options.Steps;
        for (int step = 1; step <= total + 1; step++)
        {
            bool profiled = step == total + 1;
            model.Profiler.Enabled = profiled;
            long start = Stopwatch.GetTimestamp();
            model.ZeroGradients();
            double loss = model.ForwardBackward(tokens, targets, b, t);
            model.OptimizerStep(3e-4f, step, settings);
            backend.Synchronize();
            double ms = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
            if (profiled)
            {
                break;
            }

            losses.Add(loss);
            if (step > options.Warmup)
            {
                times.Add(ms);
            }

            progress?.Invoke(step, total, ms);
        }

        var sorted = times.Order().ToArray();
        double median = sorted.Length % 2 == 1 ? sorted[sorted.Length / 2] : (sorted[(sorted.Length / 2) - 1] + sorted[sorted.Length / 2]) / 2;
        return new TrainStepResult(
            median, n / (median / 1000.0), times, losses, model.TrainableParameters.ElementCount, model.Profiler.Rows(), backend.Description, model.ActivationBytes);
    }
}
