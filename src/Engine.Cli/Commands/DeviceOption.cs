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

    /// <summary>
    /// The backend for a --device value: <c>cuda</c> fails with the one-line reason when CUDA cannot be used; <c>auto</c>
    /// takes CUDA when it can and otherwise the CPU, saying why on <paramref name="notes"/> (stderr by default).
    /// With the environment variable <c>ENGINE_CUDA_EMULATED=1</c>, <c>cuda</c> is the emulated device (every kernel
    /// compiled by g++ and run on the CPU), so the CUDA host paths of any command can be run on a machine without a GPU.
    /// </summary>
    public static Backend CreateBackend(string? device, int threads, TextWriter? notes = null)
    {
        switch (device)
        {
            case "cuda" when Environment.GetEnvironmentVariable("ENGINE_CUDA_EMULATED") == "1":
                (notes ?? Console.Error).WriteLine("note: --device cuda runs on the emulated device (ENGINE_CUDA_EMULATED=1)");
                return CudaBackend.CreateEmulated();
            case "cuda":
                return CudaBackend.TryCreate(out var cuda, out string reason)
                    ? cuda!
                    : throw new CommandException($"--device cuda: {reason}");
            case "auto":
                if (CudaBackend.TryCreate(out var found, out string why))
                {
                    return found!;
                }

                (notes ?? Console.Error).WriteLine($"note: --device auto runs on the CPU ({why})");
                return new CpuBackend(threads);
            default:
                return new CpuBackend(threads);
        }
    }
}
