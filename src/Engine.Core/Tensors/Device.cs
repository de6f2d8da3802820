namespace Engine.Core.Tensors;

/// <summary>Kind of device a buffer lives on.</summary>
public enum DeviceKind
{
    /// <summary>Host memory, run by the SIMD CPU backend.</summary>
    Cpu,
    /// <summary>NVIDIA GPU memory, run by the CUDA backend.</summary>
    Cuda,
}

/// <summary>A device: its kind and ordinal (GPU index; 0 for the CPU).</summary>
public readonly record struct Device(DeviceKind Kind, int Ordinal = 0)
{
    /// <summary>The host CPU.</summary>
    public static Device Cpu => new(DeviceKind.Cpu);

    /// <inheritdoc/>
    public override string ToString() => Kind == DeviceKind.Cpu ? "cpu" : $"cuda:{Ordinal}";
}
