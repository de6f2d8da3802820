using System.CommandLine;
using Engine.Cli.Commands;
using Engine.Core;

namespace Engine.Cli;

/// <summary>The root of the <c>engine</c> command tree and its one error boundary.</summary>
internal static class EngineCommand
{
    /// <summary>Exit code of an expected failure (an <see cref="InputException"/>): a wrong file, flag, option or checkpoint.</summary>
    public const int InputErrorExitCode = 1;

    /// <summary>Exit code of a bug (any other exception), as BSD's <c>EX_SOFTWARE</c>: the message, its type and the stack trace are printed.</summary>
    public const int InternalErrorExitCode = 70;

    /// <summary>The global <c>--verbose</c> flag: expected failures print their stack trace and inner exceptions too.</summary>
    public static Option<bool> Verbose { get; } = new("--verbose") { Description = "on an error, print the stack trace and inner exceptions too", Recursive = true };

    public static RootCommand Create()
    {
        var root = new RootCommand("Engine: a .NET-native transformer runtime and alignment trainer (pretrain, SFT, RM, PPO, DPO).");
        root.Add(Verbose);
        root.Add(BenchCommand.Create());
        root.Add(InitCommand.Create());
        root.Add(InfoCommand.Create());
        TokenizeCommand.AddTo(root);
        TrainCommands.AddTo(root);
        root.Add(PpoCommand.Create());
        root.Add(GrpoCommand.Create());
        ScoreCommands.AddTo(root);
        root.Add(GenerateCommand.Create());
        root.Add(LoraCommand.Create());
        root.Add(PipelineCommand.Create());
        return root;
    }

    /// <summary>Parses and runs the <c>engine</c> command tree (see <see cref="Run(string[], RootCommand)"/>).</summary>
    public static int Run(string[] args) => Run(args, Create());

    /// <summary>
    /// Parses and runs <paramref name="root"/>. An <see cref="InputException"/> becomes one line
    /// <c>engine: error: …</c> on stderr and exit code <see cref="InputErrorExitCode"/>; anything else is a bug:
    /// <c>engine: internal error: Type: message</c> with the stack trace, exit code <see cref="InternalErrorExitCode"/>.
    /// Cancellation passes through unchanged (the commands that can be cancelled handle it themselves).
    /// </summary>
    public static int Run(string[] args, RootCommand root)
    {
        var parse = root.Parse(args);
        try
        {
            return parse.Invoke(new InvocationConfiguration { EnableDefaultExceptionHandler = false });
        }
        catch (InputException e)
        {
            Console.Error.WriteLine($"engine: error: {OneLine(e.Message)}");
            if (parse.GetValue(Verbose))
            {
                Console.Error.WriteLine(e.ToString());
            }

            return InputErrorExitCode;
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            Console.Error.WriteLine($"engine: internal error: {e.GetType().FullName}: {OneLine(e.Message)}");
            Console.Error.WriteLine(e.ToString());
            Console.Error.WriteLine("engine: this is a bug in engine, not in what you gave it; please report it with the lines above");
            return InternalErrorExitCode;
        }
    }

    // A message quoting a file's text can carry line breaks; the error stays one line.
    private static string OneLine(string message) => message.ReplaceLineEndings(" ");
}
