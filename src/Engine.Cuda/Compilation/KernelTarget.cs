namespace Engine.Cuda.Compilation;

/// <summary>What NVRTC produces: a CUBIN for one exact architecture, or PTX the driver compiles for a newer one.</summary>
public enum KernelImageKind
{
    /// <summary>Machine code for <c>sm_XY</c>.</summary>
    Cubin,
    /// <summary>PTX for <c>compute_XY</c>, compiled by the driver at load time.</summary>
    Ptx,
}

/// <summary>An architecture to compile for (compute capability X.Y) and the kind of image to produce.</summary>
/// <param name="Major">Compute capability major version.</param>
/// <param name="Minor">Compute capability minor version.</param>
/// <param name="Kind">CUBIN or PTX.</param>
public readonly record struct KernelTarget(int Major, int Minor, KernelImageKind Kind)
{
    /// <summary>The architecture number NVRTC uses (80 for 8.0).</summary>
    public int Number => (Major * 10) + Minor;

    /// <summary>The <c>--gpu-architecture</c> option: <c>sm_XY</c> for CUBIN, <c>compute_XY</c> for PTX.</summary>
    public string ArchitectureOption => $"--gpu-architecture={(Kind == KernelImageKind.Cubin ? "sm" : "compute")}_{Number}";

    /// <summary>
    /// The target for a device of compute capability <paramref name="major"/>.<paramref name="minor"/>: a CUBIN when NVRTC
    /// knows that architecture, else PTX for the newest architecture NVRTC knows that is not newer than the device
    /// (the driver JIT-compiles PTX forward). <paramref name="supported"/> empty means "unknown": assume the device's.
    /// </summary>
    public static KernelTarget For(int major, int minor, IReadOnlyCollection<int> supported)
    {
        int device = (major * 10) + minor;
        if (supported.Count == 0 || supported.Contains(device))
        {
            return new KernelTarget(major, minor, KernelImageKind.Cubin);
        }

        int best = supported.Where(a => a <= device).DefaultIfEmpty(-1).Max();
        if (best < 0)
        {
            throw new CudaException(
                $"NVRTC supports architectures {string.Join(", ", supported.Order())}, none of which runs on a device of compute capability {major}.{minor}");
        }

        return new KernelTarget(best / 10, best % 10, KernelImageKind.Ptx);
    }

    /// <inheritdoc/>
    public override string ToString() => Kind == KernelImageKind.Cubin ? $"sm_{Number} (cubin)" : $"compute_{Number} (ptx)";
}
