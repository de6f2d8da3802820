using System.CommandLine;
using Engine.Core.Backends;
using Engine.Core.Cpu;

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

    /// <summary>The backend for a --device value. CUDA is not built yet: asking for it is an error, auto falls back to the CPU.</summary>
    public static Backend CreateBackend(string? device, int threads) => device switch
    {
        "cuda" => throw new CommandException("--device cuda: the CUDA backend is not available in this build (it arrives with Engine.Cuda); use --device cpu"),
        _ => new CpuBackend(threads),
    };
}
