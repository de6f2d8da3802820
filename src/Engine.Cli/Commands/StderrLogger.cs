using Microsoft.Extensions.Logging;

namespace Engine.Cli.Commands;

/// <summary>The trainers' warnings (a damaged checkpoint skipped, metrics lines dropped, temporaries removed) as lines on stderr.</summary>
internal sealed class StderrLogger : ILogger
{
    public static readonly StderrLogger Instance = new();

    public IDisposable? BeginScope<TState>(TState state)
        where TState : notnull => null;

    // Errors are thrown as well and printed once by the command; information is the progress already shown.
    public bool IsEnabled(LogLevel logLevel) => logLevel == LogLevel.Warning;

    public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
    {
        ArgumentNullException.ThrowIfNull(formatter);
        if (IsEnabled(logLevel))
        {
            ModelInputs.Warn(formatter(state, exception));
        }
    }
}
