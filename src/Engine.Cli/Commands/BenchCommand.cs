using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using Engine.Cli.Bench;
using Engine.Core.Cpu;
using Engine.Models;
using Spectre.Console;

namespace Engine.Cli.Commands;

/// <summary><c>engine bench</c>: measurements of whole steps.</summary>
internal static class BenchCommand
{
    public static Command Create()
    {
        var bench = new Command("bench", "Measure the speed of whole training steps.");
        bench.Add(CreateTrainStep());
        return bench;
    }

    private static Command CreateTrainStep()
    {
        var defaults = new TrainStepOptions();
        var arch = new Option<string>("--arch") { Description = "gpt2 or llama", DefaultValueFactory = _ => "gpt2" };
        arch.AcceptOnlyFromAmong("gpt2", "llama");
        var layers = IntOption("--layers", "L, transformer blocks", defaults.Layers);
        var dim = IntOption("--dim", "C, model width", defaults.Channels);
        var heads = IntOption("--heads", "NH, attention heads", defaults.Heads);
        var kvHeads = IntOption("--kv-heads", "NKV, key/value heads (llama; default NH)", 0);
        var vocab = IntOption("--vocab", "V, vocabulary size", defaults.Vocab);
        var seq = IntOption("--seq", "T, sequence length", defaults.Sequence);
        var batch = IntOption("--batch", "B, batch size", defaults.Batch);
        var steps = IntOption("--steps", "timed steps", defaults.Steps);
        var warmup = IntOption("--warmup", "untimed steps first", defaults.Warmup);
        var threads = IntOption("--threads", "CPU threads (default: all cores)", 0);
        var json = new Option<bool>("--json") { Description = "print one JSON object instead of tables" };
        var checkpointing = new Option<bool>("--gradient-checkpointing") { Description = "recompute each layer in backward, keeping only its input (gradient_checkpointing)" };
        var device = DeviceOption.Create();
        var tf32 = DeviceOption.CreateTf32();
        var lora = new Option<string?>("--lora") { Description = "train LoRA adapters over the frozen model instead (r=16,alpha=32,targets=all-linear)" };

        var command = new Command("train-step", "Time full training steps (forward, backward, AdamW) of a random model on random tokens.")
        {
            arch, layers, dim, heads, kvHeads, vocab, seq, batch, steps, warmup, threads, json, checkpointing, device, tf32, lora,
        };
        command.SetAction(parse =>
        {
            var options = new TrainStepOptions
            {
                Architecture = parse.GetValue(arch) == "llama" ? Architecture.Llama : Architecture.Gpt2,
                Layers = parse.GetValue(layers),
                Channels = parse.GetValue(dim),
                Heads = parse.GetValue(heads),
                KvHeads = parse.GetValue(kvHeads),
                Vocab = parse.GetValue(vocab),
                Sequence = parse.GetValue(seq),
                Batch = parse.GetValue(batch),
                Steps = parse.GetValue(steps),
                Warmup = parse.GetValue(warmup),
                Threads = parse.GetValue(threads),
                GradientCheckpointing = parse.GetValue(checkpointing),
                Lora = parse.GetValue(lora) is string spec ? Engine.Models.Lora.LoraConfig.Parse(spec) : null,
            };
            bool asJson = parse.GetValue(json);
            using var backend = DeviceOption.CreateBackend(parse.GetValue(device), options.Threads, tf32: parse.GetValue(tf32));
            var result = TrainStepBenchmark.Run(options, backend, asJson ? null : (step, total, ms) =>
                Console.Error.WriteLine(string.Create(CultureInfo.InvariantCulture, $"step {step}/{total}: {ms:F1} ms")));
            if (asJson)
            {
                Console.WriteLine(ToJson(options, result));
            }
            else
            {
                PrintTables(options, result);
            }

            return 0;
        });
        return command;
    }

    private static Option<int> IntOption(string name, string description, int defaultValue) =>
        new(name) { Description = description, DefaultValueFactory = _ => defaultValue };

    internal static string ToJson(TrainStepOptions o, TrainStepResult r) => JsonSerializer.Serialize(new Dictionary<string, object>
    {
        ["arch"] = o.Architecture == Architecture.Gpt2 ? "gpt2" : "llama",
        ["layers"] = o.Layers,
        ["dim"] = o.Channels,
        ["heads"] = o.Heads,
        ["kv_heads"] = o.KvHeads > 0 ? o.KvHeads : o.Heads,
        ["vocab"] = o.Vocab,
        ["seq"] = o.Sequence,
        ["batch"] = o.Batch,
        ["steps"] = o.Steps,
        ["gradient_checkpointing"] = o.GradientCheckpointing,
        ["activation_bytes"] = r.ActivationBytes,
        ["parameters"] = r.ParameterCount,
        ["backend"] = r.Backend,
        ["ms_per_step"] = Math.Round(r.MillisecondsPerStep, 3),
        ["tokens_per_second"] = Math.Round(r.TokensPerSecond, 1),
        ["step_ms"] = r.StepMilliseconds.Select(x => Math.Round(x, 3)).ToArray(),
        ["losses"] = r.Losses.Select(x => Math.Round(x, 6)).ToArray(),
        ["ops"] = r.OpTable.Select(x => new Dictionary<string, object>
        {
            ["op"] = x.Op.ToString().ToLowerInvariant(), ["pass"] = x.Backward ? "backward" : "forward", ["ms"] = Math.Round(x.Milliseconds, 3),
        }).ToArray(),
    });

    private static void PrintTables(TrainStepOptions o, TrainStepResult r)
    {
        var console = AnsiConsole.Console;
        console.WriteLine(string.Create(
            CultureInfo.InvariantCulture,
            $"{(o.Architecture == Architecture.Gpt2 ? "gpt2" : "llama")} L={o.Layers} C={o.Channels} NH={o.Heads} V={o.Vocab} T={o.Sequence} B={o.Batch}: {r.ParameterCount / 1e6:F2}M parameters on {r.Backend}"));
        console.WriteLine(string.Create(
            CultureInfo.InvariantCulture,
            $"activations {r.ActivationBytes / 1048576.0:F1} MiB{(o.GradientCheckpointing ? " with gradient checkpointing (each layer recomputed in backward)" : "")}"));
        double total = r.OpTable.Sum(x => x.Milliseconds);
        var table = new Table().AddColumns("op", "pass", "ms", "share", "calls");
        table.Columns[2].RightAligned();
        table.Columns[3].RightAligned();
        table.Columns[4].RightAligned();
        foreach (var (op, backward, ms, calls) in r.OpTable)
        {
            table.AddRow(
                op.ToString().ToLowerInvariant(), backward ? "backward" : "forward", ms.ToString("F2", CultureInfo.InvariantCulture),
                (100 * ms / total).ToString("F1", CultureInfo.InvariantCulture) + "%", calls.ToString(CultureInfo.InvariantCulture));
        }

        console.Write(table);
        console.WriteLine(string.Create(
            CultureInfo.InvariantCulture,
            $"median {r.MillisecondsPerStep:F1} ms/step, {r.TokensPerSecond:F0} tokens/s over {r.StepMilliseconds.Count} steps; loss {r.Losses[0]:F4} -> {r.Losses[^1]:F4}"));
    }
}
