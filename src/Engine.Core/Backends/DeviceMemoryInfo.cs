using System.Globalization;
using Engine.Core.Tensors;

namespace Engine.Core.Backends;

/// <summary>What a device can still hold, as <see cref="Backend.QueryMemory"/> reports it.</summary>
/// <param name="AvailableBytes">Bytes that can still be allocated on the device.</param>
/// <param name="TotalBytes">The device's (or the process's memory limit's) size in bytes.</param>
/// <param name="AllocatedBytes">Bytes this process already holds in buffers of this kind of device (they are not in <paramref name="AvailableBytes"/>).</param>
/// <param name="Source">Where the figures come from, e.g. <c>/proc/meminfo MemAvailable</c> or <c>cuMemGetInfo</c>.</param>
public sealed record DeviceMemoryInfo(long AvailableBytes, long TotalBytes, long AllocatedBytes, string Source);

/// <summary>The host's memory as the operating system and the .NET runtime report it.</summary>
public static class HostMemory
{
    /// <summary>
    /// Host memory available to this process: <c>MemAvailable</c> of <c>/proc/meminfo</c> where there is one (Linux),
    /// capped by the runtime's limit (<see cref="GCMemoryInfo.TotalAvailableMemoryBytes"/>, a container's memory limit
    /// when there is one) minus this process's working set; elsewhere that limit minus the working set alone.
    /// </summary>
    public static DeviceMemoryInfo Query()
    {
        long limit = GC.GetGCMemoryInfo().TotalAvailableMemoryBytes;
        long used = Environment.WorkingSet;
        long fromLimit = Math.Max(0, limit - used);
        if (ReadMemAvailable("/proc/meminfo") is long available)
        {
            return available <= fromLimit
                ? new DeviceMemoryInfo(available, limit, HostBuffer.LiveBytes, "/proc/meminfo MemAvailable")
                : new DeviceMemoryInfo(fromLimit, limit, HostBuffer.LiveBytes, "the runtime's memory limit (GC TotalAvailableMemoryBytes) minus the working set");
        }

        return new DeviceMemoryInfo(fromLimit, limit, HostBuffer.LiveBytes, "GC TotalAvailableMemoryBytes minus the working set");
    }

    /// <summary>The <c>MemAvailable</c> line of a meminfo file in bytes, or null when the file or the line is missing or malformed.</summary>
    public static long? ReadMemAvailable(string path)
    {
        try
        {
            foreach (string line in File.ReadLines(path))
            {
                if (!line.StartsWith("MemAvailable:", StringComparison.Ordinal))
                {
                    continue;
                }

                var parts = line["MemAvailable:".Length..].Split(' ', StringSplitOptions.RemoveEmptyEntries);
                return parts.Length == 2 && parts[1] == "kB" && long.TryParse(parts[0], NumberStyles.None, CultureInfo.InvariantCulture, out long kb)
                    ? kb * 1024
                    : null;
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }

        return null;
    }
}
