using System.Diagnostics;
using Engine.Core.Cpu;
using Engine.Models;
using Engine.Models.HuggingFace;
using Engine.Models.Tokenizers;

namespace Engine.Tests.Cli;

/// <summary>What the CLI tests share: a tiny GPT-2 checkpoint with a byte-level tokenizer, and running the command in-process.</summary>
internal static class CliHarness
{
    /// <summary>The end-of-text id of <see cref="SaveTinyModel"/>'s tokenizer (the one added special token after the 256 bytes).</summary>
    public const int Eos = 256;

    /// <summary>Saves a 1-layer (or <paramref name="layers"/>), 16-channel GPT-2 (V=257, T=32), its byte-level tokenizer and its model.json into <paramref name="directory"/>.</summary>
    public static void SaveTinyModel(string directory, int maxLength = 32, int layers = 1)
    {
        var config = TransformerConfig.Gpt2(257, maxLength, layers: layers, channels: 16, heads: 2);
        using var backend = new CpuBackend(1);
        using var model = new Transformer(config, backend);
        model.InitializeWeights(7);
        HfCheckpoint.Save(model, directory, new HfSaveOptions { Config = HfModelConfig.For(config) with { EosTokenIds = [Eos] } });
        BpeTrainer.ByteLevel(["<|endoftext|>"]).Save(Path.Combine(directory, "tokenizer.json"));
        File.WriteAllText(Path.Combine(directory, "model.json"), HfConfig.ToJson(config));
    }

    /// <summary>
    /// Starts the built <c>engine</c> (engine.dll beside the tests) as a child process with stdout and stderr redirected.
    /// It goes through <c>env --default-signal=INT</c> because a process started from a non-interactive shell's background
    /// job inherits SIGINT ignored, and .NET keeps an ignored SIGINT ignored.
    /// </summary>
    public static Process Start(IEnumerable<string> args)
    {
        string host = Environment.GetEnvironmentVariable("DOTNET_HOST_PATH")
            ?? (Path.GetFileNameWithoutExtension(Environment.ProcessPath) == "dotnet" ? Environment.ProcessPath! : "dotnet");
        var start = new ProcessStartInfo("env") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (string arg in (string[])["--default-signal=INT", host, Path.Combine(AppContext.BaseDirectory, "engine.dll"), .. args])
        {
            start.ArgumentList.Add(arg);
        }

        return Process.Start(start) ?? throw new InvalidOperationException("could not start engine");
    }

    /// <summary>Sends SIGINT (what Ctrl+C sends), or the signal named by <paramref name="signal"/> (TERM, HUP), to <paramref name="process"/>.</summary>
    public static void Interrupt(Process process, string signal = "INT")
    {
        using var kill = Process.Start(new ProcessStartInfo("kill") { ArgumentList = { "-" + signal, process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture) }, UseShellExecute = false })!;
        kill.WaitForExit();
        if (kill.ExitCode != 0)
        {
            throw new InvalidOperationException($"kill -{signal} {process.Id} failed with {kill.ExitCode}");
        }
    }

    /// <summary>Runs <c>engine <paramref name="args"/></c> in this process with stdout and stderr captured.</summary>
    public static (int Code, string Output, string Error) Run(string[] args) => Engine.Tests.Support.CliRun.Engine(args);
}
