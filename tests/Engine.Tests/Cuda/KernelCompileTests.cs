using System.Text.RegularExpressions;
using Engine.Cuda.Compilation;
using Engine.Cuda.Runtime;
using Engine.Tests.Support;
using Xunit;
using Xunit.Abstractions;

namespace Engine.Tests.Cuda;

/// <summary>
/// The kernels of kernels/ compiled by NVRTC for sm_80 and sm_90 without a GPU, and the launch signatures of the CUDA
/// backend checked against the PTX entry points, so a syntax error or a caller/kernel mismatch fails here.
/// </summary>
[Trait("Category", "CudaCompile")]
public partial class KernelCompileTests(ITestOutputHelper output)
{
    public static TheoryData<string, int> ModulesAndArchitectures
    {
        get
        {
            var data = new TheoryData<string, int>();
            foreach (string module in KernelSources.Modules)
            {
                data.Add(module, 80);
                data.Add(module, 90);
            }

            return data;
        }
    }

    [NvrtcTheory]
    [MemberData(nameof(ModulesAndArchitectures))]
    public void Every_kernel_file_compiles_to_a_cubin(string module, int architecture)
    {
        var target = new KernelTarget(architecture / 10, architecture % 10, KernelImageKind.Cubin);
        CompiledKernel compiled;
        try
        {
            // The backend's default options. (-lineinfo is an opt-in: Debian's NVRTC 11.8.89 crashes in its sm_90 back end
            // when asked for line info on attention.cu, so it is not part of what CI compiles.)
            compiled = NvrtcCompiler.CompileEmbedded(module, target);
        }
        catch (Engine.Cuda.CudaException e)
        {
            output.WriteLine(e.Message);
            throw;
        }

        output.WriteLine($"{module} for {target}: {compiled.Image.Length} bytes; options {string.Join(' ', compiled.Options)}");
        if (compiled.Log.Length > 0)
        {
            output.WriteLine(compiled.Log);
        }

        Assert.True(compiled.Image.Length > 0);

        // A CUBIN is an ELF file.
        Assert.Equal([0x7f, (byte)'E', (byte)'L', (byte)'F'], compiled.Image[..4]);
        Assert.Empty(compiled.Log);
    }

    [NvrtcFact]
    public void Every_launch_signature_matches_a_ptx_entry_point()
    {
        var target = new KernelTarget(8, 0, KernelImageKind.Ptx);
        var entries = new Dictionary<string, string[]>(StringComparer.Ordinal);
        foreach (string module in KernelSources.Modules)
        {
            var compiled = NvrtcCompiler.CompileEmbedded(module, target);
            string ptx = System.Text.Encoding.UTF8.GetString(compiled.Image).TrimEnd('\0');
            foreach (Match m in EntryPattern().Matches(ptx))
            {
                string[] types = [.. ParamPattern().Matches(m.Groups["params"].Value).Select(p => p.Groups["type"].Value)];
                entries[$"{module}:{m.Groups["name"].Value}"] = types;
            }
        }

        foreach (var kernel in Kernels.All)
        {
            string key = $"{kernel.Module}:{kernel.Name}";
            Assert.True(entries.TryGetValue(key, out var types), $"{key} is launched by the backend but not an entry point of the PTX");
            string expected = string.Join(", ", kernel.PtxTypes);
            string actual = string.Join(", ", types!);
            output.WriteLine($"{key}({actual})");
            Assert.True(expected == actual, $"{key}: the backend passes ({expected}), the kernel takes ({actual})");
        }

        // Every entry point is launched by something (no dead kernels in kernels/).
        var launched = Kernels.All.Select(k => $"{k.Module}:{k.Name}").ToHashSet(StringComparer.Ordinal);
        string[] dead = [.. entries.Keys.Where(k => !launched.Contains(k))];
        Assert.True(dead.Length == 0, $"entry points nothing launches: {string.Join(", ", dead)}");
    }

    [NvrtcFact]
    public void A_compile_error_carries_the_nvrtc_log()
    {
        var target = new KernelTarget(8, 0, KernelImageKind.Cubin);
        var e = Assert.Throws<Engine.Cuda.CudaException>(() => NvrtcCompiler.Compile(
            "broken.cu", "#include \"common.cuh\"\nextern \"C\" __global__ void k(float* x) { x[0] = undefined_name; }",
            KernelSources.Headers(), NvrtcCompiler.Options(target, false), target));
        output.WriteLine(e.Message);
        Assert.Equal("NVRTC_ERROR_COMPILATION", e.ErrorName);
        Assert.Contains("undefined_name", e.Message, StringComparison.Ordinal);
        Assert.Contains("broken.cu", e.Message, StringComparison.Ordinal);
    }

    [NvrtcFact]
    public void Nvrtc_reports_its_version_and_architectures()
    {
        var (major, minor) = NvrtcCompiler.Version;
        var archs = NvrtcCompiler.SupportedArchitectures;
        output.WriteLine($"{NvrtcCompiler.LibraryDescription}: NVRTC {major}.{minor}, architectures {string.Join(", ", archs)}");
        Assert.True(major >= 11);
        Assert.Contains(80, archs);
    }

    [Fact]
    public void The_embedded_sources_are_exactly_the_files_of_the_kernels_folder()
    {
        string root = RepositoryRoot();
        var onDisk = Directory.EnumerateFiles(Path.Combine(root, "kernels"), "*.cu*", SearchOption.AllDirectories)
            .Where(f => f.EndsWith(".cu", StringComparison.Ordinal) || f.EndsWith(".cuh", StringComparison.Ordinal))
            .Select(f => Path.GetRelativePath(Path.Combine(root, "kernels"), f).Replace('\\', '/'))
            .Order(StringComparer.Ordinal)
            .ToArray();
        Assert.Equal(onDisk, KernelSources.Names);
        Assert.Contains(KernelSources.HeaderName, KernelSources.Names);
        foreach (string name in KernelSources.Names)
        {
            Assert.Equal(File.ReadAllText(Path.Combine(root, "kernels", name)), KernelSources.Read(name));
        }
    }

    [Fact]
    public void Kernels_include_no_toolkit_header()
    {
        // NVRTC ships no include directory: only our own common.cuh may be included.
        foreach (string name in KernelSources.Names)
        {
            foreach (Match m in IncludePattern().Matches(KernelSources.Read(name)))
            {
                Assert.True(m.Groups[1].Value == KernelSources.HeaderName, $"{name} includes {m.Groups[1].Value}");
            }
        }
    }

    [Fact]
    public void The_target_is_a_cubin_for_a_known_architecture_and_ptx_for_a_newer_one()
    {
        int[] supported = [50, 60, 70, 75, 80, 86, 89, 90];
        Assert.Equal(new KernelTarget(9, 0, KernelImageKind.Cubin), KernelTarget.For(9, 0, supported));
        Assert.Equal(new KernelTarget(9, 0, KernelImageKind.Ptx), KernelTarget.For(10, 0, supported));
        Assert.Equal(new KernelTarget(8, 6, KernelImageKind.Ptx), KernelTarget.For(8, 7, supported));
        Assert.Equal(new KernelTarget(12, 0, KernelImageKind.Cubin), KernelTarget.For(12, 0, []));
        Assert.Equal("--gpu-architecture=compute_90", KernelTarget.For(10, 0, supported).ArchitectureOption);
        Assert.Throws<Engine.Cuda.CudaException>(() => KernelTarget.For(3, 5, supported));
    }

    internal static string RepositoryRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "Engine.sln")))
            {
                return dir.FullName;
            }
        }

        throw new DirectoryNotFoundException($"no Engine.sln above {AppContext.BaseDirectory}");
    }

    [GeneratedRegex(@"\.entry\s+(?<name>\w+)\s*\((?<params>[^)]*)\)", RegexOptions.Singleline)]
    private static partial Regex EntryPattern();

    [GeneratedRegex(@"\.param\s+(?<type>\.\w+)")]
    private static partial Regex ParamPattern();

    [GeneratedRegex("#include\\s+[\"<]([^\">]+)[\">]")]
    private static partial Regex IncludePattern();
}
