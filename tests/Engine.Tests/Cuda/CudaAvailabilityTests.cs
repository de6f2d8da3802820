using Engine.Cli.Commands;
using Engine.Core.Cpu;
using Engine.Cuda;
using Engine.Cuda.Interop;
using Xunit;
using Xunit.Abstractions;

namespace Engine.Tests.Cuda;

/// <summary>Library probing and the availability report: on a machine without a GPU they must say why, never crash.</summary>
[Trait("Category", "CudaCompile")]
public class CudaAvailabilityTests(ITestOutputHelper output)
{
    [Fact]
    public void The_report_says_why_cuda_is_unavailable_or_what_was_found()
    {
        var report = CudaAvailability.Probe();
        output.WriteLine($"available: {report.IsAvailable}; {report.Reason}");
        Assert.False(string.IsNullOrWhiteSpace(report.Reason));
        Assert.DoesNotContain('\n', report.Reason);
        if (report.IsAvailable)
        {
            Assert.NotEmpty(report.Devices);
        }
        else
        {
            // One of the documented causes, with its detail.
            Assert.True(
                report.Reason.StartsWith("no CUDA driver: not found (tried ", StringComparison.Ordinal)
                || report.Reason.StartsWith("cuInit failed: CUDA_ERROR_", StringComparison.Ordinal)
                || report.Reason.StartsWith("the CUDA driver found no device", StringComparison.Ordinal)
                || report.Reason.StartsWith("NVRTC ", StringComparison.Ordinal)
                || report.Reason.StartsWith("cuBLAS ", StringComparison.Ordinal),
                report.Reason);
        }
    }

    [Fact]
    public void TryCreate_returns_false_with_the_reason_instead_of_throwing()
    {
        bool created = CudaBackend.TryCreate(out var backend, out string reason);
        using (backend)
        {
            output.WriteLine(created ? backend!.Description : reason);
            Assert.Equal(CudaAvailability.Probe().IsAvailable, created);
            if (!created)
            {
                Assert.Null(backend);
                Assert.Contains(CudaAvailability.Probe().Reason, reason, StringComparison.Ordinal);
            }
        }
    }

    [Fact]
    public void Library_candidates_try_versioned_sonames_first()
    {
        var nvrtc = NativeLibraries.Candidates(NativeLibraries.Nvrtc);
        var cublas = NativeLibraries.Candidates(NativeLibraries.Cublas);
        var driver = NativeLibraries.Candidates(NativeLibraries.Driver);
        if (OperatingSystem.IsLinux())
        {
            Assert.Equal(["libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so.11.2"], nvrtc.Where(n => !n.Contains('/')).Take(3));
            Assert.Equal("libnvrtc.so", nvrtc[^1]);
            Assert.Equal("libcuda.so.1", driver.First(n => n.StartsWith("libcuda", StringComparison.Ordinal)));
            Assert.Equal("libcublas.so", cublas[^1]);
        }

        var probe = NativeLibraries.Probe(NativeLibraries.Nvrtc);
        output.WriteLine($"nvrtc: {probe.Describe()}; cublas: {NativeLibraries.Probe(NativeLibraries.Cublas).Describe()}; " +
                         $"driver: {NativeLibraries.Probe(NativeLibraries.Driver).Describe()}");
        Assert.Equal(probe.IsLoaded, probe.LoadedName is not null);
        if (!probe.IsLoaded)
        {
            Assert.Contains("tried", probe.Describe(), StringComparison.Ordinal);
        }
    }

    [Fact]
    public void Device_auto_falls_back_to_the_cpu_with_a_note_and_cuda_fails_with_the_reason()
    {
        if (CudaAvailability.Probe().IsAvailable)
        {
            using var gpu = DeviceOption.CreateBackend("auto", 1);
            Assert.IsType<CudaBackend>(gpu);
            return;
        }

        var notes = new StringWriter();
        using (var backend = DeviceOption.CreateBackend("auto", 1, notes))
        {
            Assert.IsType<CpuBackend>(backend);
        }

        string note = notes.ToString();
        output.WriteLine(note);
        Assert.StartsWith("note: --device auto runs on the CPU (", note, StringComparison.Ordinal);
        Assert.Single(note.Split('\n', StringSplitOptions.RemoveEmptyEntries));

        var e = Assert.Throws<Engine.Cli.CommandException>(() => DeviceOption.CreateBackend("cuda", 1));
        output.WriteLine(e.Message);
        Assert.StartsWith("--device cuda: CUDA is not available: ", e.Message, StringComparison.Ordinal);
    }
}
