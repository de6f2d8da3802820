using System.CommandLine;
using Engine.Cli.Commands;
using Engine.Models.Formats;
using Engine.Models.Tokenizers;
using Engine.Training;

namespace Engine.Cli;

/// <summary>The root of the <c>engine</c> command tree and its error handling.</summary>
internal static class EngineCommand
{
    public static RootCommand Create()
    {
        var root = new RootCommand("Engine: a .NET-native transformer runtime and alignment trainer (pretrain, SFT, RM, PPO, DPO).");
        root.Add(BenchCommand.Create());
        root.Add(InitCommand.Create());
        root.Add(InfoCommand.Create());
        TokenizeCommand.AddTo(root);
        TrainCommands.AddTo(root);
        root.Add(PpoCommand.Create());
        ScoreCommands.AddTo(root);
        root.Add(GenerateCommand.Create());
        root.Add(PipelineCommand.Create());
        return root;
    }

    /// <summary>Parses and runs; user errors (bad flags, options, datasets, tokenizers, checkpoints) become one line on stderr and exit code 1.</summary>
    public static int Run(string[] args)
    {
        var parse = Create().Parse(args);
        try
        {
            return parse.Invoke(new InvocationConfiguration { EnableDefaultExceptionHandler = false });
        }
        catch (Exception e) when (e is Engine.Core.InputException or CommandException or ArgumentException or InvalidOperationException or IOException or FormatException
            or TokenizerFormatException or SafetensorsException or TrainingDivergedException)
        {
            Console.Error.WriteLine($"engine: error: {e.Message}");
            return 1;
        }
    }
}
