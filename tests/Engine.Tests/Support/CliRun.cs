namespace Engine.Tests.Support;

/// <summary>Runs the <c>engine</c> command in-process with stdout and stderr captured (tests in the "Console" collection).</summary>
internal static class CliRun
{
    public static (int Code, string Stdout, string Stderr) Engine(params string[] args)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        var (savedOut, savedError) = (Console.Out, Console.Error);
        Console.SetOut(output);
        Console.SetError(error);
        try
        {
            int code = global::Engine.Cli.Program.Main(args);
            return (code, output.ToString(), error.ToString());
        }
        finally
        {
            Console.SetOut(savedOut);
            Console.SetError(savedError);
        }
    }
}
