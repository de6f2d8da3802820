using System.CommandLine;
using Engine.Core.Backends;
using Engine.Core.Cpu;
using Engine.Cuda;

namespace Engine.Cli.Commands;

/// <summary>The shared <c>--device cpu|cuda|auto</c> option and the backend it selects.</summary>
internal static class DeviceOption
{
    public static Option<string> Create()
    {
        var option = new Option<string>("--device") { Description = "cpu, cuda or auto (auto = CUDA when present)", DefaultValueFactory = _ => "cpu" };
        option.AcceptOnlyFromAmong("cpu", "cuda", "auto");
        return option;
    }

    /// <summary>The shared <c>--tf32</c> flag: CUDA matrix products in TF32 (no effect on the CPU).</summary>
    public static Option<bool> CreateTf32() =>
        new("--tf32") { Description = "run CUDA matrix products in TF32 (faster, ~10-bit mantissa inputs; no effect on the CPU)" };

    /// <summary>
    /// The backend for a --device value: <c>cuda</c> fails with the one-line reason when CUDA cannot be used; <c>auto</c>
    /// takes CUDA when it can and otherwise the CPU, saying why on <paramref name="notes"/> (stderr by default).
    /// With the environment variable <c>ENGINE_CUDA_EMULATED=1</c>, <c>cuda</c> is the emulated device (every kernel
    /// compiled by g++ and run on the CPU), so the CUDA host paths of any command can be run on a machine without a GPU.
    /// <paramref name="tf32"/> (<c>--tf32</c>) lets CUDA run its matrix products in TF32; on the CPU it does nothing
    /// and says so in one note line.
    /// </summary>
    public static Backend CreateBackend(string? device, int threads, TextWriter? notes = null, bool tf32 = false)
    {
        var options = new CudaBackendOptions { AllowTf32 = tf32 };
        var say = notes ?? Console.Error;
        switch (device)
        {
            case "cuda" when Environment.GetEnvironmentVariable("ENGINE_CUDA_EMULATED") == "1":
                say.WriteLine("note: --device cuda runs on the emulated device (ENGINE_CUDA_EMULATED=1)");
                return CudaBackend.CreateEmulated(options);
            case "cuda":
                return CudaBackend.TryCreate(out var cuda, out string reason, options)
                    ? cuda!
                    : throw new CommandException($"--device cuda: {reason}");
            case "auto":
                if (CudaBackend.TryCreate(out var found, out string why, options))
                {
                    return found!;
                }

                say.WriteLine($"note: --device auto runs on the CPU ({why})");
                return Cpu(threads, say, tf32);
            default:
                return Cpu(threads, say, tf32);
        }
    }

    private static CpuBackend Cpu(int threads, TextWriter say, bool tf32)
    {
        if (tf32)
        {
            say.WriteLine("note: --tf32 has no effect on the CPU");
        }

        return new CpuBackend(threads);
    }
}
