namespace Engine.Cli;

/// <summary>The root of the command tree.</summary>
internal static class EngineCommand
{
    public static int Run(string[] args)
    {
        Console.Error.WriteLine("engine: no commands yet");
        return args.Length == 0 ? 1 : 2;
    }
}
