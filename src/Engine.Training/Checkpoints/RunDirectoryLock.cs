using System.Globalization;
using System.Text;
using Engine.Core;

namespace Engine.Training.Checkpoints;

/// <summary>
/// A run's exclusive claim on its output directory, held from before anything is written there until the run ends: the
/// file <c>.lock</c> in the directory, locked by the operating system (a record lock on Unix, a region lock on Windows)
/// and holding the owner's process id and start time. The lock dies with the process, so a run killed with SIGKILL
/// never blocks the next one; the file itself stays (deleting it would let two runs lock two different files).
/// </summary>
public sealed class RunDirectoryLock : IDisposable
{
    /// <summary>The lock file's name in the output directory.</summary>
    public const string FileName = ".lock";

    // Record locks belong to the process: a second lock of the same file from this process would succeed, and closing
    // any descriptor of the file would release the first. Directories locked here are refused before the file is opened.
    private static readonly HashSet<string> HeldHere = new(StringComparer.Ordinal);

    private readonly FileStream stream;
    private readonly string key;

    private RunDirectoryLock(FileStream stream, string key)
    {
        this.stream = stream;
        this.key = key;
    }

    /// <summary>
    /// Creates <paramref name="directory"/> if needed and locks it for this run; <paramref name="flag"/> is how the user
    /// named it (e.g. <c>--out</c>), for the message.
    /// </summary>
    /// <exception cref="InputException">Another run (in this process or another) holds the directory: "DIR is in use by process N (started ...)".</exception>
    public static RunDirectoryLock Acquire(string directory, string flag = "--out")
    {
        ArgumentException.ThrowIfNullOrEmpty(directory);
        string full = Path.GetFullPath(directory);
        Directory.CreateDirectory(full);
        lock (HeldHere)
        {
            if (!HeldHere.Add(full))
            {
                throw InUse(directory, flag, $"process {Environment.ProcessId} (this one)");
            }
        }

        FileStream? stream = null;
        try
        {
            // macOS has no region locks in .NET: there the whole file is opened exclusively (its owner then cannot be read).
            bool regions = !OperatingSystem.IsMacOS();
            try
            {
                stream = new FileStream(
                    Path.Combine(full, FileName), FileMode.OpenOrCreate, FileAccess.ReadWrite, regions ? FileShare.ReadWrite | FileShare.Delete : FileShare.None);
                if (regions)
                {
                    stream.Lock(0, 1);
                }
            }
            catch (IOException) when (stream is not null || !regions)
            {
                throw InUse(directory, flag, stream is null ? "another process" : Owner(stream));
            }

            byte[] owner = Encoding.UTF8.GetBytes(string.Create(
                CultureInfo.InvariantCulture, $"pid {Environment.ProcessId}\nstarted {DateTime.UtcNow:yyyy-MM-dd HH:mm:ss} UTC\n"));
            stream.SetLength(0);
            stream.Write(owner);
            stream.Flush(flushToDisk: true);
            return new RunDirectoryLock(stream, full);
        }
        catch
        {
            stream?.Dispose();
            lock (HeldHere)
            {
                HeldHere.Remove(full);
            }

            throw;
        }
    }

    /// <summary>Releases the directory.</summary>
    public void Dispose()
    {
        stream.Dispose();
        lock (HeldHere)
        {
            HeldHere.Remove(key);
        }
    }

    private static InputException InUse(string directory, string flag, string owner) =>
        new($"{directory} is in use by {owner}; wait for that run to end, or give another {flag}");

    // "process N (started ...)" from the lock file, or a plain description when the owner has not written it yet.
    private static string Owner(FileStream stream)
    {
        try
        {
            var buffer = new byte[512];
            stream.Position = 0;
            int read = stream.Read(buffer);
            var lines = Encoding.UTF8.GetString(buffer, 0, read).Split('\n');
            string? pid = lines.FirstOrDefault(l => l.StartsWith("pid ", StringComparison.Ordinal))?[4..];
            string? started = lines.FirstOrDefault(l => l.StartsWith("started ", StringComparison.Ordinal))?[8..];
            return pid is null ? "another process" : $"process {pid}{(started is null ? "" : $" (started {started})")}";
        }
        catch (IOException)
        {
            return "another process";
        }
    }
}
