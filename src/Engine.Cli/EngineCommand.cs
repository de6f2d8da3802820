using System.CommandLine;
using Engine.Cli.Commands;

namespace Engine.Cli;

/// <summary>The root of the <c>engine</c> command tree and its error handling.</summary>
internal static class EngineCommand
{
    public static RootCommand Create()
    {
        var root = new RootCommand("Engine: a .NET-native transformer runtime and alignment trainer (pretrain, SFT, RM, PPO, DPO).");
        root.Add(BenchCommand.Create());
        root.Add(InfoCommand.Create());
        TokenizeCommand.AddTo(root);
        return root;
    }

    /// <summary>Parses and runs; user errors become one line on stderr and exit code 1.</summary>
    public static int Run(string[] args)
    {
        var parse = Create().Parse(args);
        try
        {
            return parse.Invoke(new InvocationConfiguration { EnableDefaultExceptionHandler = false });
        }
        catch (Exception e) when (e is CommandException or ArgumentException or InvalidOperationException or IOException)
        {
            Console.Error.WriteLine($"engine: error: {e.Message}");
            return 1;
        }
    }
}
