using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Engine.Core.Cpu;
using Engine.Models;
using Engine.Training;
using Engine.Training.Data;
using Engine.Training.Rl.Ppo;

namespace Engine.Benchmarks;

/// <summary>
/// Where one PPO step of GPT-2 124M-sized models goes on the CPU, without BenchmarkDotNet:
/// <c>dotnet run -c Release --project bench/Engine.Benchmarks -- ppo-probe [threads] [prompts] [new tokens] [prompt length] [ppo epochs] [steps]</c>
/// (defaults 2, 8, 64, 16, 4, 2). The four roles have random weights (actor and critic trained, reference and reward
/// model frozen and resident); the responses run to the full length (random weights never pick EOS). Each step is
/// timed by the trainer itself (metrics.jsonl): generation (KV-cached sampling), scoring (the reference, actor, critic
/// and reward-model forward passes over the rollout) and training (num_ppo_epochs minibatch updates of actor and
/// critic). The first step includes JIT warm-up; the last one is the figure to quote.
/// </summary>
internal static class PpoProbe
{
    public static void Run(string[] args)
    {
        int Arg(int i, int fallback) => args.Length > i ? int.Parse(args[i], CultureInfo.InvariantCulture) : fallback;
        int threads = Arg(0, 2), prompts = Arg(1, 8), newTokens = Arg(2, 64), promptLength = Arg(3, 16), epochs = Arg(4, 4), steps = Arg(5, 2);
        using var backend = new CpuBackend(threads);
        var config = TransformerConfig.Gpt2(50257, 1024, 12, 768, 12);
        const int eos = 50256;
        using var actor = new Transformer(config, backend);
        using var critic = new Transformer(config with { Head = HeadKind.Scalar }, backend);
        using var reward = new Transformer(config with { Head = HeadKind.Scalar }, backend, trainable: false);
        using var referenceModel = new Transformer(config, backend, trainable: false);
        actor.InitializeWeights(1);
        referenceModel.InitializeWeights(1);
        critic.InitializeWeights(2);
        reward.InitializeWeights(3);
        using var reference = PolicyReference.Resident(referenceModel);

        var promptIds = Enumerable.Range(0, prompts).Select(p => Enumerable.Range(0, promptLength).Select(t => ((p * 7919) + (t * 104729)) % eos).ToArray()).ToList();
        string output = Directory.CreateTempSubdirectory("engine-ppo-probe-").FullName;
        var options = new PpoOptions
        {
            OutputDirectory = output, MaxSteps = steps, BatchSize = prompts, NumPpoEpochs = epochs, ResponseLength = newTokens,
            MaxLength = promptLength + newTokens, Temperature = 1f, KeepLast = 1, CheckpointInterval = 0,
        };
        Console.WriteLine(
            $"{backend.Description}; GPT-2 124M shape ×4 roles (random weights), {prompts} prompts × {promptLength} tokens, {newTokens} new tokens, "
            + $"{epochs} PPO epochs of 1 minibatch, {Environment.ProcessorCount} logical CPUs");
        try
        {
            var clock = Stopwatch.StartNew();
            var trainer = new PpoTrainer(new PpoModels(actor, critic, reward, reference), promptIds, null, eos, options);
            trainer.Run(new StepReport(p => Console.WriteLine($"step {p.Step}/{p.TotalSteps} done after {clock.Elapsed.TotalSeconds:F1} s")));
            Console.WriteLine("step  generation  scoring  training  total   generation share  response tokens");
            foreach (string line in File.ReadLines(Path.Combine(output, Trainer<SequenceBatch>.MetricsFile)))
            {
                var m = JsonSerializer.Deserialize<Dictionary<string, double>>(line)!;
                double total = m["time/generation"] + m["time/scoring"] + m["time/training"];
                Console.WriteLine(
                    $"{m["step"],4:F0}  {m["time/generation"],8:F2} s {m["time/scoring"],6:F2} s {m["time/training"],7:F2} s {total,6:F2} s  "
                    + $"{m["time/generation"] / total,15:P1}  {m["val/response_length"] * prompts,15:F0}");
            }
        }
        finally
        {
            Directory.Delete(output, recursive: true);
        }
    }

    private sealed class StepReport(Action<PpoProgress> report) : IProgress<PpoProgress>
    {
        public void Report(PpoProgress value) => report(value);
    }
}
