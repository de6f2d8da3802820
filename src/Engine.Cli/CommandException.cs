using Engine.Core;

namespace Engine.Cli;

/// <summary>A user-facing error about flags and arguments: printed as one line, exit code 1, no stack trace.</summary>
public sealed class CommandException : InputException
{
    /// <summary>Creates the error with the message shown to the user.</summary>
    public CommandException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the error with no message.</summary>
    public CommandException()
    {
    }

    /// <summary>Creates the error wrapping another.</summary>
    public CommandException(string message, Exception inner)
        : base(message, inner)
    {
    }
}
