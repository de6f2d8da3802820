using Engine.Cuda.Compilation;
using Xunit;

namespace Engine.Tests.Cuda;

/// <summary>The on-disk cache of compiled kernels: the key covers every input, writes are atomic.</summary>
[Trait("Category", "CudaCompile")]
public sealed class KernelCacheTests : IDisposable
{
    private readonly string directory = Path.Combine(Path.GetTempPath(), "engine-cache-test-" + Guid.NewGuid().ToString("N"));

    private static readonly Dictionary<string, string> Headers = new() { ["common.cuh"] = "// header" };

    public void Dispose()
    {
        if (Directory.Exists(directory))
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    [Fact]
    public void The_key_is_a_sha256_that_changes_with_every_input()
    {
        string[] options = ["--gpu-architecture=sm_90", "-default-device"];
        string key = KernelCache.Key("src", Headers, options, "H100 sm_90", "11.8");
        Assert.Matches("^[0-9a-f]{64}$", key);
        Assert.Equal(key, KernelCache.Key("src", new Dictionary<string, string>(Headers), options, "H100 sm_90", "11.8"));
        Assert.NotEqual(key, KernelCache.Key("src2", Headers, options, "H100 sm_90", "11.8"));
        Assert.NotEqual(key, KernelCache.Key("src", new Dictionary<string, string> { ["common.cuh"] = "// other" }, options, "H100 sm_90", "11.8"));
        Assert.NotEqual(key, KernelCache.Key("src", Headers, ["--gpu-architecture=sm_80", "-default-device"], "H100 sm_90", "11.8"));
        Assert.NotEqual(key, KernelCache.Key("src", Headers, options, "A100 sm_80", "11.8"));
        Assert.NotEqual(key, KernelCache.Key("src", Headers, options, "H100 sm_90", "12.4"));

        // Length prefixes keep a boundary shift from colliding.
        Assert.NotEqual(KernelCache.Key("ab", Headers, ["c"], "d", "e"), KernelCache.Key("a", Headers, ["bc"], "d", "e"));
    }

    [Fact]
    public void Write_then_read_round_trips_and_leaves_no_temporary_file()
    {
        var cache = new KernelCache(directory);
        string key = KernelCache.Key("src", Headers, [], "dev", "1.0");
        Assert.Null(cache.TryRead(key, KernelImageKind.Cubin));
        byte[] image = [0x7f, (byte)'E', (byte)'L', (byte)'F', 1, 2, 3];
        Assert.True(cache.Write(key, KernelImageKind.Cubin, image));
        Assert.Equal(image, cache.TryRead(key, KernelImageKind.Cubin));
        Assert.Null(cache.TryRead(key, KernelImageKind.Ptx));
        Assert.Equal([Path.Combine(directory, key + ".cubin")], Directory.GetFiles(directory));

        // Overwriting replaces the whole file in one rename.
        Assert.True(cache.Write(key, KernelImageKind.Cubin, [9, 9]));
        Assert.Equal([9, 9], cache.TryRead(key, KernelImageKind.Cubin));
        Assert.Single(Directory.GetFiles(directory));
    }

    [Fact]
    public void Concurrent_writers_of_one_key_leave_one_complete_file()
    {
        var cache = new KernelCache(directory);
        string key = KernelCache.Key("src", Headers, [], "dev", "1.0");
        var images = Enumerable.Range(0, 8).Select(i => Enumerable.Repeat((byte)i, 100_000).ToArray()).ToArray();
        Parallel.For(0, images.Length, i => Assert.True(cache.Write(key, KernelImageKind.Ptx, images[i])));
        byte[] read = cache.TryRead(key, KernelImageKind.Ptx)!;
        Assert.Contains(images, img => img.AsSpan().SequenceEqual(read));
        Assert.Single(Directory.GetFiles(directory));
    }

    [Fact]
    public void An_unwritable_folder_is_skipped_not_fatal()
    {
        string file = Path.Combine(Path.GetTempPath(), "engine-cache-file-" + Guid.NewGuid().ToString("N"));
        File.WriteAllText(file, "not a folder");
        try
        {
            var cache = new KernelCache(Path.Combine(file, "sub"));
            Assert.False(cache.Write("k", KernelImageKind.Cubin, [1]));
            Assert.Null(cache.TryRead("k", KernelImageKind.Cubin));
        }
        finally
        {
            File.Delete(file);
        }
    }

    [Fact]
    public void The_default_folder_honours_the_environment()
    {
        string? saved = Environment.GetEnvironmentVariable("ENGINE_CUDA_CACHE");
        try
        {
            Environment.SetEnvironmentVariable("ENGINE_CUDA_CACHE", directory);
            Assert.Equal(directory, KernelCache.DefaultDirectory);
            Environment.SetEnvironmentVariable("ENGINE_CUDA_CACHE", null);
            Assert.EndsWith(Path.Combine("engine", "cuda"), KernelCache.DefaultDirectory, StringComparison.Ordinal);
        }
        finally
        {
            Environment.SetEnvironmentVariable("ENGINE_CUDA_CACHE", saved);
        }
    }
}
