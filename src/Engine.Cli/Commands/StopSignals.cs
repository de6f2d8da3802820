using System.Runtime.InteropServices;

namespace Engine.Cli.Commands;

/// <summary>
/// SIGINT (Ctrl+C), SIGTERM (what <c>kill</c>, <c>timeout</c> and job schedulers send) and SIGHUP (the terminal closed)
/// as one cancellation of a run: the first one stops it at the end of its current step with a checkpoint, and the
/// command then exits with 128 + the signal's number (130, 143, 129). While registered, none of them ends the process
/// mid-write; later ones are ignored.
/// </summary>
internal sealed class StopSignals : IDisposable
{
    /// <summary>Exit code of a run stopped by SIGINT (128 + 2); also the code when no signal was received.</summary>
    public const int InterruptExitCode = 130;

    private readonly CancellationTokenSource source = new();
    private readonly PosixSignalRegistration[] registrations;
    private int received;

    public StopSignals() =>
        registrations = [Register(PosixSignal.SIGINT, "SIGINT", 2), Register(PosixSignal.SIGTERM, "SIGTERM", 15), Register(PosixSignal.SIGHUP, "SIGHUP", 1)];

    /// <summary>Fires at the first signal.</summary>
    public CancellationToken Token => source.Token;

    /// <summary>128 + the number of the first signal received (<see cref="InterruptExitCode"/> when none was).</summary>
    public int ExitCode => received == 0 ? InterruptExitCode : 128 + received;

    public void Dispose()
    {
        foreach (var registration in registrations)
        {
            registration.Dispose();
        }

        source.Dispose();
    }

    private PosixSignalRegistration Register(PosixSignal signal, string name, int number) => PosixSignalRegistration.Create(signal, context =>
    {
        context.Cancel = true;
        if (Interlocked.CompareExchange(ref received, number, 0) == 0)
        {
            Console.Error.WriteLine($"engine: {name} received; stopping after the current step with a checkpoint");
            source.Cancel();
        }
    });
}
