using System.Security.Cryptography;
using System.Text;

namespace Engine.Cuda.Compilation;

/// <summary>
/// Compiled kernel images on disk, so NVRTC runs once per (source, options, device, NVRTC version) instead of once per
/// process. Files are named by the SHA-256 of everything that affects the image and written atomically (a temporary
/// file in the same folder renamed over the final name), so concurrent processes never read half a file.
/// The cache is an optimisation only: a folder that cannot be written is skipped silently.
/// </summary>
public sealed class KernelCache
{
    /// <summary>Uses <paramref name="directory"/> (created on first write).</summary>
    public KernelCache(string directory)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(directory);
        Directory = directory;
    }

    /// <summary>The folder holding the images.</summary>
    public string Directory { get; }

    /// <summary>
    /// <c>$ENGINE_CUDA_CACHE</c> if set, else <c>$XDG_CACHE_HOME/engine/cuda</c>, else <c>~/.cache/engine/cuda</c>
    /// (on Windows, <c>%LOCALAPPDATA%\engine\cuda</c>).
    /// </summary>
    public static string DefaultDirectory
    {
        get
        {
            string? explicitDir = Environment.GetEnvironmentVariable("ENGINE_CUDA_CACHE");
            if (!string.IsNullOrWhiteSpace(explicitDir))
            {
                return explicitDir;
            }

            if (OperatingSystem.IsWindows())
            {
                return Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.LocalApplicationData), "engine", "cuda");
            }

            string? xdg = Environment.GetEnvironmentVariable("XDG_CACHE_HOME");
            string root = !string.IsNullOrWhiteSpace(xdg)
                ? xdg
                : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache");
            return Path.Combine(root, "engine", "cuda");
        }
    }

    /// <summary>
    /// The cache key: lower-case hex SHA-256 over the source, every header (name and text, in name order), the options,
    /// the device description and the NVRTC version, each length-prefixed so no two different inputs can concatenate
    /// to the same bytes.
    /// </summary>
    public static string Key(
        string source, IReadOnlyDictionary<string, string> headers, IEnumerable<string> options, string device, string nvrtcVersion)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        void Add(string part)
        {
            byte[] bytes = Encoding.UTF8.GetBytes(part);
            hash.AppendData(BitConverter.GetBytes((long)bytes.Length));
            hash.AppendData(bytes);
        }

        Add("engine-kernel-cache-v1");
        Add(source);
        foreach (var name in headers.Keys.Order(StringComparer.Ordinal))
        {
            Add(name);
            Add(headers[name]);
        }

        foreach (string option in options)
        {
            Add(option);
        }

        Add(device);
        Add(nvrtcVersion);
        return Convert.ToHexStringLower(hash.GetHashAndReset());
    }

    /// <summary>The file an image of <paramref name="kind"/> with <paramref name="key"/> lives in.</summary>
    public string PathFor(string key, KernelImageKind kind) =>
        Path.Combine(Directory, key + (kind == KernelImageKind.Cubin ? ".cubin" : ".ptx"));

    /// <summary>The cached image, or null when absent or unreadable.</summary>
    public byte[]? TryRead(string key, KernelImageKind kind)
    {
        string path = PathFor(key, kind);
        try
        {
            return File.Exists(path) ? File.ReadAllBytes(path) : null;
        }
        catch (IOException)
        {
            return null;
        }
        catch (UnauthorizedAccessException)
        {
            return null;
        }
    }

    /// <summary>Stores an image atomically; returns false (and leaves no temporary file) when the folder is not writable.</summary>
    public bool Write(string key, KernelImageKind kind, ReadOnlySpan<byte> image)
    {
        string final = PathFor(key, kind);
        string temporary = Path.Combine(Directory, $".{key}.{Environment.ProcessId}.{Guid.NewGuid():N}.tmp");
        try
        {
            System.IO.Directory.CreateDirectory(Directory);
            using (var file = new FileStream(temporary, FileMode.CreateNew, FileAccess.Write, FileShare.None))
            {
                file.Write(image);
                file.Flush(flushToDisk: true);
            }

            File.Move(temporary, final, overwrite: true);
            return true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            try
            {
                File.Delete(temporary);
            }
            catch (Exception cleanup) when (cleanup is IOException or UnauthorizedAccessException)
            {
                // Nothing more to do: the temporary name is unique and never read.
            }

            return false;
        }
    }
}
