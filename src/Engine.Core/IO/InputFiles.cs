using System.Runtime.InteropServices;
using System.Text;

namespace Engine.Core.IO;

/// <summary>
/// Opening files that come from the user or from other files (a shard index, a trainer state's file list) safely:
/// only regular files (a FIFO would hang, <c>/dev/zero</c> never ends), never over a size limit, never outside the
/// directory they were named in, and every failure an <see cref="InputException"/> naming the file.
/// </summary>
public static partial class InputFiles
{
    /// <summary>
    /// Checks that <paramref name="path"/> is an existing regular file (following symbolic links) and returns its length.
    /// <paramref name="what"/> says what the file is for, e.g. <c>"the weights file"</c>.
    /// </summary>
    public static long RegularFile(string path, string what)
    {
        var info = new FileInfo(path);
        if (!info.Exists)
        {
            throw new InputException(path, null, null, Directory.Exists(path) ? $"{what} is a directory, not a file" : $"{what} does not exist");
        }

        if (UnixFileType(path) is char type && type != '-')
        {
            throw new InputException(path, null, null, $"{what} is not a regular file ({Describe(type)}); refusing to read it");
        }

        return info.Length;
    }

    /// <summary>
    /// Reads <paramref name="path"/> whole after <see cref="RegularFile"/>; a file over <paramref name="maxBytes"/>
    /// is refused before anything is read, and access errors become <see cref="InputException"/>.
    /// </summary>
    public static byte[] ReadAllBytes(string path, long maxBytes, string what)
    {
        CheckSize(path, RegularFile(path, what), maxBytes, what);
        return Guard(path, what, () => File.ReadAllBytes(path));
    }

    /// <summary>Reads <paramref name="path"/> as UTF-8 text with the checks of <see cref="ReadAllBytes"/>.</summary>
    public static string ReadAllText(string path, long maxBytes, string what)
    {
        CheckSize(path, RegularFile(path, what), maxBytes, what);
        return Guard(path, what, () => File.ReadAllText(path, Encoding.UTF8));
    }

    /// <summary>Opens <paramref name="path"/> for reading after <see cref="RegularFile"/>; access errors become <see cref="InputException"/>.</summary>
    public static FileStream OpenRead(string path, string what, FileOptions options = FileOptions.None)
    {
        RegularFile(path, what);
        return Guard(path, what, () => new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16, options));
    }

    /// <summary>
    /// Resolves <paramref name="relative"/>, a path read from field <paramref name="field"/> of <paramref name="source"/>,
    /// against <paramref name="directory"/>. It must be a plain relative path that stays inside the directory (no rooted
    /// path, no <c>..</c> escape, no symbolic link leading out) and name a regular file.
    /// </summary>
    public static string ResolveInside(string directory, string relative, string source, string field)
    {
        if (string.IsNullOrEmpty(relative) || Path.IsPathRooted(relative) || relative.Contains('\0', StringComparison.Ordinal))
        {
            throw new InputException(source, null, field, $"'{relative}' must be a file name relative to {directory}");
        }

        string root = Path.GetFullPath(directory);
        string full = Path.GetFullPath(Path.Combine(root, relative));
        string resolved = ResolveLinks(full);
        string resolvedRoot = ResolveLinks(root);
        if (!IsUnder(full, root) || !IsUnder(resolved, resolvedRoot))
        {
            throw new InputException(source, null, field, $"'{relative}' points outside {directory}; refusing to read it");
        }

        RegularFile(full, $"'{relative}' (named in field '{field}' of {source})");
        return full;
    }

    /// <summary>Runs a file operation, turning permission and I/O errors into an <see cref="InputException"/> naming the file.</summary>
    public static T Guard<T>(string path, string what, Func<T> operation)
    {
        try
        {
            return operation();
        }
        catch (UnauthorizedAccessException e)
        {
            throw new InputException(path, null, null, $"cannot read {what}: permission denied", e);
        }
        catch (IOException e) when (e is not FileNotFoundException and not DirectoryNotFoundException)
        {
            throw new InputException(path, null, null, $"cannot read {what}: {e.Message}", e);
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            throw new InputException(path, null, null, $"{what} does not exist", e);
        }
    }

    private static void CheckSize(string path, long length, long maxBytes, string what)
    {
        if (length > maxBytes)
        {
            throw new InputException(path, null, null, $"{what} is {length:N0} bytes, over the limit of {maxBytes:N0}");
        }
    }

    private static bool IsUnder(string path, string root)
    {
        string withSeparator = root.EndsWith(Path.DirectorySeparatorChar) ? root : root + Path.DirectorySeparatorChar;
        return path.StartsWith(withSeparator, StringComparison.Ordinal);
    }

    /// <summary>The path with every symbolic link along it resolved (the path itself when nothing is a link or it does not exist).</summary>
    private static string ResolveLinks(string fullPath)
    {
        string? parent = Path.GetDirectoryName(fullPath);
        string resolvedParent = parent is null ? fullPath : ResolveLinks(parent);
        string current = parent is null ? fullPath : Path.Combine(resolvedParent, Path.GetFileName(fullPath));
        for (int hops = 0; hops < 40; hops++)
        {
            FileSystemInfo info = Directory.Exists(current) ? new DirectoryInfo(current) : new FileInfo(current);
            if (info.LinkTarget is not string target)
            {
                return current;
            }

            current = Path.GetFullPath(target, Path.GetDirectoryName(current) ?? "/");
        }

        throw new InputException(fullPath, null, null, "too many levels of symbolic links");
    }

    private static string Describe(char type) => type switch
    {
        'p' => "a FIFO",
        'c' => "a character device",
        'b' => "a block device",
        's' => "a socket",
        'd' => "a directory",
        _ => "a special file",
    };

    /// <summary>
    /// The file type as <c>ls -l</c> prints it ('-' regular, 'd', 'p', 'c', 'b', 's') from stat(2), following links; null
    /// where it cannot be told (not Linux on x64 or arm64), in which case only .NET's own checks apply.
    /// </summary>
    private static char? UnixFileType(string path)
    {
        int modeOffset = RuntimeInformation.ProcessArchitecture switch
        {
            Architecture.X64 => 24,
            Architecture.Arm64 => 16,
            _ => -1,
        };
        if (!OperatingSystem.IsLinux() || modeOffset < 0)
        {
            return null;
        }

        Span<byte> buffer = stackalloc byte[256];
        if (Stat(path, ref MemoryMarshal.GetReference(buffer)) != 0)
        {
            return null;
        }

        uint mode = BitConverter.ToUInt32(buffer.Slice(modeOffset, 4)) & 0xF000;
        return mode switch
        {
            0x8000 => '-',
            0x4000 => 'd',
            0x1000 => 'p',
            0x2000 => 'c',
            0x6000 => 'b',
            0xC000 => 's',
            _ => '?',
        };
    }

    [LibraryImport("libc", EntryPoint = "stat", StringMarshalling = StringMarshalling.Utf8)]
    private static partial int Stat(string path, ref byte buffer);
}
