using Engine.Core;
using Engine.Core.IO;
using Xunit;

namespace Engine.Tests.Core;

public sealed class InputFilesTests : IDisposable
{
    private readonly string dir = Directory.CreateTempSubdirectory("engine-inputfiles-").FullName;

    public void Dispose() => Directory.Delete(dir, recursive: true);

    [Fact]
    public void A_regular_file_is_read_and_its_length_returned()
    {
        string file = Path.Combine(dir, "a.json");
        File.WriteAllText(file, "{}");
        Assert.Equal(2, InputFiles.RegularFile(file, "the file"));
        Assert.Equal("{}", InputFiles.ReadAllText(file, 10, "the file"));
    }

    [Fact]
    public void Special_files_are_refused_without_opening_them()
    {
        var e = Assert.Throws<InputException>(() => InputFiles.ReadAllBytes("/dev/zero", 100, "the weights file"));
        Assert.Contains("character device", e.Message, StringComparison.Ordinal);
        string fifo = Path.Combine(dir, "fifo");
        using (var mk = System.Diagnostics.Process.Start("mkfifo", fifo))
        {
            mk.WaitForExit();
        }

        e = Assert.Throws<InputException>(() => InputFiles.OpenRead(fifo, "the shard"));
        Assert.Contains("FIFO", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_file_over_the_limit_is_refused_before_reading()
    {
        string file = Path.Combine(dir, "big.json");
        File.WriteAllBytes(file, new byte[1000]);
        var e = Assert.Throws<InputException>(() => InputFiles.ReadAllBytes(file, 999, "the config"));
        Assert.Equal(file, e.File);
        Assert.Contains("over the limit", e.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("../outside.bin")]
    [InlineData("/etc/passwd")]
    [InlineData("sub/../../outside.bin")]
    [InlineData("link.bin")]
    public void Paths_that_leave_the_directory_are_refused(string relative)
    {
        string inner = Path.Combine(dir, "ckpt");
        Directory.CreateDirectory(inner);
        File.WriteAllText(Path.Combine(dir, "outside.bin"), "x");
        File.CreateSymbolicLink(Path.Combine(inner, "link.bin"), Path.Combine(dir, "outside.bin"));
        var e = Assert.Throws<InputException>(() => InputFiles.ResolveInside(inner, relative, "trainer_state.json", "files"));
        Assert.Equal("files", e.Field);
    }

    [Fact]
    public void A_file_inside_the_directory_resolves_to_its_full_path()
    {
        File.WriteAllText(Path.Combine(dir, "model.safetensors"), "x");
        Assert.Equal(Path.Combine(dir, "model.safetensors"), InputFiles.ResolveInside(dir, "model.safetensors", "index.json", "weight_map"));
    }
}
