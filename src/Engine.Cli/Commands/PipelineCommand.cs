using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using Engine.Training.Pipeline;

namespace Engine.Cli.Commands;

/// <summary><c>engine pipeline</c>: tokenizer → pretrain → SFT → RM → PPO, DPO, online DPO, GRPO on the synthetic task, evaluated and reported.</summary>
internal static class PipelineCommand
{
    public static Command Create()
    {
        var defaults = new PipelineOptions();
        var outDir = new Option<string>("--out") { Description = "where every stage, summary.json and report.html go", DefaultValueFactory = _ => "pipeline-out" };
        var seed = new Option<ulong>("--seed") { Description = "seed of the task, the weights and the sampling", DefaultValueFactory = _ => defaults.Seed };
        var quick = new Option<bool>("--quick") { Description = "a tiny run of every stage (seconds): a smoke test, whose numbers mean nothing" };
        var resume = new Option<bool>("--resume") { Description = "continue a run stopped by Ctrl+C from its checkpoints in --out (same --seed and --quick)" };
        var device = DeviceOption.Create();
        var tf32 = DeviceOption.CreateTf32();
        var threads = new Option<int>("--threads") { Description = "CPU threads", DefaultValueFactory = _ => Environment.ProcessorCount };
        var command = new Command("pipeline", "Run the InstructGPT story on the bundled synthetic task: tokenizer, pretrain, SFT, RM, PPO, DPO, online DPO, GRPO; evaluate and report.");
        command.Add(outDir);
        command.Add(seed);
        command.Add(quick);
        command.Add(resume);
        command.Add(device);
        command.Add(tf32);
        command.Add(threads);
        var stagesOption = new Option<string?>("--stages")
        {
            Description = $"optional stages to add after pretrain, sft, rm, ppo, dpo, online_dpo and grpo (which always run), comma-separated: {string.Join(", ", PipelineRunner.OptionalStages)}",
        };
        command.Add(stagesOption);
        command.SetAction(parse =>
        {
            ulong s = parse.GetValue(seed);
            var options = (parse.GetValue(quick) ? PipelineOptions.Quick(s) : new PipelineOptions { Seed = s }) with
            {
                Resume = parse.GetValue(resume),
                ExtraStages = Stages(parse.GetValue(stagesOption)),
            };
            using var backend = DeviceOption.CreateBackend(parse.GetValue(device), Math.Max(1, parse.GetValue(threads)), tf32: parse.GetValue(tf32));
            using var signals = new StopSignals();
            try
            {
                string dir = parse.GetValue(outDir)!;
                var clock = Stopwatch.StartNew();
                if (options.SmokeTest)
                {
                    Console.Out.WriteLine(PipelineReport.SmokeTestNote);
                }

                var report = new PipelineRunner(options, backend, Console.Out).Run(dir, signals.Token);
                Console.Out.Write(report.ToTextTable());
                Console.Out.WriteLine(string.Create(CultureInfo.InvariantCulture, $"wrote {Path.Combine(dir, "summary.json")} and {Path.Combine(dir, "report.html")} in {clock.Elapsed.TotalSeconds:F0} s"));
                return 0;
            }
            catch (OperationCanceledException e)
            {
                Console.Error.WriteLine($"engine: pipeline cancelled: {e.Message}; continue with --resume");
                return signals.ExitCode;
            }
        });
        return command;
    }

    private static string[] Stages(string? list)
    {
        if (list is null)
        {
            return [];
        }

        string[] names = list.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
        if (names.FirstOrDefault(n => !PipelineRunner.OptionalStages.Contains(n)) is { } unknown)
        {
            throw new CommandException($"--stages: unknown stage '{unknown}'; the optional stages are {string.Join(", ", PipelineRunner.OptionalStages)} (the default seven always run)");
        }

        return names.Distinct().Count() == names.Length ? names : throw new CommandException($"--stages names a stage twice: {list}");
    }
}
