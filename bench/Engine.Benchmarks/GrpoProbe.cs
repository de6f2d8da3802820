using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Engine.Core.Cpu;
using Engine.Models;
using Engine.Training;
using Engine.Training.Data;
using Engine.Training.Rl.Grpo;
using Engine.Training.Rl.Rewards;

namespace Engine.Benchmarks;

/// <summary>
/// Where one GRPO step of a GPT-2 124M-sized policy goes on the CPU, to set beside <see cref="PpoProbe"/>:
/// <c>dotnet run -c Release --project bench/Engine.Benchmarks -- grpo-probe [threads] [prompts] [generations] [new tokens] [prompt length] [iterations] [steps]</c>
/// (defaults 2, 2, 4, 64, 16, 1, 2). One role, the policy (random weights, trained; β = 0 so no reference), scored by a
/// C# reward of the completion's ids; completions run to the full length (random weights never pick EOS). Each step is
/// timed by the trainer (metrics.jsonl): generation, scoring (rewards, the sampling policy's log-probs when μ &gt; 1, the
/// advantages) and training (μ updates). The first step includes JIT warm-up; the last one is the figure to quote.
/// </summary>
internal static class GrpoProbe
{
    public static void Run(string[] args)
    {
        int Arg(int i, int fallback) => args.Length > i ? int.Parse(args[i], CultureInfo.InvariantCulture) : fallback;
        int threads = Arg(0, 2), prompts = Arg(1, 2), generations = Arg(2, 4), newTokens = Arg(3, 64), promptLength = Arg(4, 16), iterations = Arg(5, 1), steps = Arg(6, 2);
        using var backend = new CpuBackend(threads);
        var config = TransformerConfig.Gpt2(50257, 1024, 12, 768, 12);
        const int eos = 50256;
        using var policy = new Transformer(config, backend);
        policy.InitializeWeights(1);
        var rows = Enumerable.Range(0, prompts).Select(p => new GrpoPrompt(
            new PromptExample(TextOrChat.FromText($"prompt {p}")), [.. Enumerable.Range(0, promptLength).Select(t => ((p * 7919) + (t * 104729)) % eos)])).ToList();
        var rewards = new RewardSet([new DelegateReward("ids", s => s.CompletionIds.Sum(x => (long)x) % 7 / 7f)]);
        string output = Directory.CreateTempSubdirectory("engine-grpo-probe-").FullName;
        var options = new GrpoOptions
        {
            OutputDirectory = output, MaxSteps = steps, BatchSize = prompts, NumGenerations = generations, NumIterations = iterations,
            MaxCompletionLength = newTokens, MaxLength = promptLength + newTokens, KeepLast = 1, CheckpointInterval = 0,
        };
        Console.WriteLine(
            $"{backend.Description}; GPT-2 124M shape, policy only (random weights), {prompts} prompts × {generations} completions × {promptLength} tokens, "
            + $"{newTokens} new tokens, num_iterations {iterations}, {Environment.ProcessorCount} logical CPUs");
        try
        {
            var clock = Stopwatch.StartNew();
            var trainer = new GrpoTrainer(policy, null, rewards, rows, _ => "", eos, options);
            trainer.Run(new StepReport(p => Console.WriteLine($"step {p.Step}/{p.TotalSteps} done after {clock.Elapsed.TotalSeconds:F1} s")));
            Console.WriteLine("step  generation  scoring  training  total   generation share  completion tokens");
            foreach (string line in File.ReadLines(Path.Combine(output, Trainer<SequenceBatch>.MetricsFile)))
            {
                var m = JsonSerializer.Deserialize<Dictionary<string, double>>(line)!;
                double total = m["time/generation"] + m["time/scoring"] + m["time/training"];
                Console.WriteLine(
                    $"{m["step"],4:F0}  {m["time/generation"],8:F2} s {m["time/scoring"],6:F2} s {m["time/training"],7:F2} s {total,6:F2} s  "
                    + $"{m["time/generation"] / total,15:P1}  {m["completions/mean_length"] * prompts * generations,15:F0}");
            }
        }
        finally
        {
            Directory.Delete(output, recursive: true);
        }
    }

    private sealed class StepReport(Action<GrpoProgress> report) : IProgress<GrpoProgress>
    {
        public void Report(GrpoProgress value) => report(value);
    }
}
