namespace Engine.Cuda;

/// <summary>Settings of a <see cref="CudaBackend"/>; the defaults favour parity with the CPU backend.</summary>
public sealed record CudaBackendOptions
{
    /// <summary>Which GPU (default 0).</summary>
    public int DeviceOrdinal { get; init; }

    /// <summary>
    /// Let cuBLAS run fp32 GEMMs on TF32 tensor cores (10-bit mantissa inputs, fp32 accumulation). Off by default: results
    /// then match the CPU backend to fp32 rounding; on, GEMMs are several times faster and differ at about 1e-3.
    /// </summary>
    public bool AllowTf32 { get; init; }

    /// <summary>Folder of the compiled-kernel cache; null means <see cref="Compilation.KernelCache.DefaultDirectory"/>.</summary>
    public string? CacheDirectory { get; init; }

    /// <summary>Whether compiled kernels are read from and written to the disk cache (default true).</summary>
    public bool UseDiskCache { get; init; } = true;

    /// <summary>
    /// Compile kernels with <c>-lineinfo</c> so profilers map instructions to source lines. Off by default; NVRTC 11.8.89
    /// crashes (segmentation fault) compiling attention.cu for sm_90 with it, so use it with NVRTC 12 or newer.
    /// </summary>
    public bool LineInfo { get; init; }

    /// <summary>
    /// Device memory the token log-prob kernels may use for one chunk of logits (default 256 MiB). Rows are processed a
    /// chunk at a time and, when even a few hundred rows of the whole vocabulary would not fit, the vocabulary is split
    /// into chunks too; a smaller budget costs speed, never correctness.
    /// </summary>
    public long LogProbWorkspaceBytes { get; init; } = 256L << 20;

    /// <summary>Rows per log-prob chunk (0 = from <see cref="LogProbWorkspaceBytes"/>); tests set it to cross chunk edges.</summary>
    internal int LogProbRowChunk { get; init; }

    /// <summary>Vocabulary columns per log-prob chunk (0 = from <see cref="LogProbWorkspaceBytes"/>); tests set it to cross chunk edges.</summary>
    internal int LogProbVocabChunk { get; init; }
}
